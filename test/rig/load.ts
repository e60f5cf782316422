// A mixed read/write HTTP load for the rig: keep-alive clients that each loop over GETs and
// POSTs through the site's normal write path (the example site's POST /api/notes creates a
// note; when `update` is given, later POSTs change notes created earlier), counting every
// answer and every failure (a status outside 2xx/3xx, an error, a timeout) in the phase it
// happened in (fetch, backup, migrate, activate, cutover, rollback, ...), reads and writes
// apart. Bounded: it stops by itself after `maxRequests` requests or `maxMs`, whichever comes
// first, and it only talks to loopback addresses or to the rig's own test hosts, named in
// `testHosts`. The tests and the benchmark (bench/) share it: each phase also says which release
// answered (the body's "release" field, or the health path's plain-text release id), how often
// each path was asked, and when each failure happened (to tell the step it happened in); paced
// clients (`ratePerClient`) keep the load the same whatever the answers.
// A 503 that carries Retry-After (the hosts' maintenance page) is still a failure,
// counted under its own reason, MAINTENANCE, so a scenario can tell it from every other one.
import * as assert from "assert";
import * as http from "http";
import * as net from "net";

export type Kind = "read" | "write";

/** The reason a 503 with a Retry-After header (maintenance mode) is counted under. */
export const MAINTENANCE = "503 maintenance";

/** A write the site acknowledged (2xx), in the phase it was answered in. */
export interface Acknowledged {
  /** The row's id, when the answer named it. */
  id?: number;
  op: "create" | "update";
  title: string;
  phase: string;
  at: number;
}

export interface Tally {
  ok: number;
  failed: number;
  /** "500", "ECONNRESET", "timeout", ... and how often. */
  reasons: Record<string, number>;
}

export interface Failure {
  /** ms since the epoch */
  at: number;
  kind: Kind;
  path: string;
  reason: string;
}

export interface PhaseTally {
  phase: string;
  ms: number;
  read: Tally;
  write: Tally;
  /** Which release answered the reads how often (the body's "release", or a plain-text body). */
  releases: Record<string, number>;
  /** Requests per path (reads and writes, answered or not). */
  paths: Record<string, number>;
  /** Each failure, in order (the first 5,000 of the phase). */
  failures: Failure[];
}

export interface MixedLoadOptions {
  /** Base URLs (http://address:port), spread over the clients. */
  bases: string[];
  /** Host header (the load balancer's name), if any. */
  host?: string;
  /** GET paths, e.g. ["/", "/api/notes"]. */
  reads: string[];
  /** Path of the POST that creates a row (form fields title and body). Default /api/notes. */
  create?: string;
  /** Path of the POST that updates row `id`, when the site has one. */
  update?: (id: number) => string;
  /** One write every `writeEvery` requests of a client (default 3: two reads, one write). */
  writeEvery?: number;
  concurrency?: number;
  timeoutMs?: number;
  maxRequests?: number;
  maxMs?: number;
  /** Addresses of the rig's test hosts (network namespaces) that may be targets besides loopback. */
  testHosts?: string[];
  /** First phase's name. */
  phase?: string;
  /**
   * Requests per second per client. Paced, the load is the same whatever the answers (a fast 502
   * does not make the clients spin), so failed requests measure how long a site failed. Unset:
   * each client sends its next request as soon as the previous one answered.
   */
  ratePerClient?: number;
  /** The first word of the titles it writes ("load 12", "updated 13"): default "load". */
  label?: string;
}

export interface MixedLoad {
  /** Ends the current phase and starts `next`; returns the one that ended (the current one, unchanged, if it is `next`). */
  phase(next: string): PhaseTally;
  /** Requests answered so far in the current phase (reads and writes). */
  count(): number;
  /** Waits until the current phase has `n` requests answered (or the load stopped). */
  until(n: number): Promise<void>;
  /** Stops the clients and returns every phase, in order. */
  stop(): Promise<PhaseTally[]>;
  /** True once a bound (count or time) stopped the load by itself. */
  readonly bounded: boolean;
  /** Every write the site acknowledged so far, in order. */
  acknowledged(): Acknowledged[];
  /** Forgets the rows it created (a restore discarded them): later writes update only new ones. */
  forget(): void;
}

/** Loopback (127.0.0.0/8, ::1, localhost) or one of `testHosts`; anything else throws. */
export function checkTarget(base: string, testHosts: string[] = []): URL {
  const url = new URL(base);
  if (url.protocol !== "http:") throw new Error(`load target ${base}: only http:// is supported`);
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const loopback = host === "localhost" || host === "::1" || (net.isIPv4(host) && host.startsWith("127."));
  if (!loopback && !testHosts.includes(host)) {
    throw new Error(
      `load target ${base}: not a loopback address or one of the rig's test hosts (${testHosts.join(", ") || "none given"})`,
    );
  }
  return url;
}

function freshTally(): Tally {
  return { ok: 0, failed: 0, reasons: {} };
}

function freshPhase(phase: string): PhaseTally {
  return { phase, ms: 0, read: freshTally(), write: freshTally(), releases: {}, paths: {}, failures: [] };
}

/** All requests of a phase, reads and writes, answered or not. */
export function requestsOf(p: PhaseTally): number {
  return p.read.ok + p.read.failed + p.write.ok + p.write.failed;
}

/** A phase's failures, reads and writes together. */
export function failedOf(p: PhaseTally): number {
  return p.read.failed + p.write.failed;
}

/** Which release a read's answer names: JSON's "release" field, or a short plain-text body. */
function releaseOf(body: string): string | undefined {
  const text = body.trim();
  if (text.startsWith("{")) {
    try {
      const r = (JSON.parse(text) as { release?: unknown }).release;
      return r === undefined ? undefined : String(r);
    } catch {
      return undefined;
    }
  }
  return text.length > 0 && text.length <= 64 && !/[\s<]/.test(text) ? text : undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function startMixedLoad(opts: MixedLoadOptions): MixedLoad {
  if (opts.bases.length === 0 || opts.reads.length === 0) throw new Error("startMixedLoad needs bases and reads");
  const bases = opts.bases.map((b) => checkTarget(b, opts.testHosts));
  const concurrency = opts.concurrency ?? 4;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const maxRequests = opts.maxRequests ?? 20_000;
  const maxMs = opts.maxMs ?? 10 * 60_000;
  const writeEvery = Math.max(1, opts.writeEvery ?? 3);
  const create = opts.create ?? "/api/notes";
  const label = opts.label ?? "load";
  const updated = opts.label ? `${opts.label}-updated` : "updated";
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const started = Date.now();
  const deadline = setTimeout(() => {
    bounded = true;
    running = false;
  }, maxMs);
  deadline.unref();
  let running = true;
  let bounded = false;
  let total = 0;
  let seq = 0;
  const created: number[] = [];
  const acked: Acknowledged[] = [];
  const phases: PhaseTally[] = [];
  let current: PhaseTally = freshPhase(opts.phase ?? "start");
  let phaseStarted = started;

  const record = (kind: Kind, path: string, failure?: string) => {
    const t = current[kind];
    current.paths[path] = (current.paths[path] ?? 0) + 1;
    if (failure === undefined) t.ok++;
    else {
      t.failed++;
      t.reasons[failure] = (t.reasons[failure] ?? 0) + 1;
      if (current.failures.length < 5000) current.failures.push({ at: Date.now(), kind, path, reason: failure });
    }
  };

  const send = (base: URL, kind: Kind, method: string, path: string, form?: Record<string, string>) =>
    new Promise<void>((resolve) => {
      const body = form ? Buffer.from(new URLSearchParams(form).toString()) : undefined;
      const headers: Record<string, string> = opts.host ? { host: opts.host } : {};
      if (body) {
        headers["content-type"] = "application/x-www-form-urlencoded";
        headers["content-length"] = String(body.length);
      }
      let done = false;
      const finish = (failure?: string) => {
        if (done) return;
        done = true;
        record(kind, path, failure);
        resolve();
      };
      const req = http.request(new URL(path, base), { method, agent, headers, timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", (e) => finish((e as NodeJS.ErrnoException).code ?? e.message));
        res.on("end", () => {
          const status = res.statusCode ?? 0;
          if (status === 503 && res.headers["retry-after"] !== undefined) return finish(MAINTENANCE);
          if (status < 200 || status >= 400) return finish(String(status));
          if (kind === "read") {
            const release = releaseOf(Buffer.concat(chunks).toString("utf8"));
            if (release !== undefined) current.releases[release] = (current.releases[release] ?? 0) + 1;
          }
          if (kind === "write" && method === "POST") {
            let id: number | undefined;
            try {
              const said = (JSON.parse(Buffer.concat(chunks).toString("utf8")) as { id?: unknown }).id;
              if (typeof said === "number") id = said;
            } catch {
              // a redirect or a page: the row was written, its id is just not known
            }
            if (path === create && id !== undefined) created.push(id);
            if (status < 300) {
              const op = path === create ? "create" : "update";
              acked.push({ id, op, title: form?.title ?? "", phase: current.phase, at: Date.now() });
            }
          }
          finish();
        });
      });
      req.on("timeout", () => req.destroy(Object.assign(new Error("timeout"), { code: "timeout" })));
      req.on("error", (e) => finish((e as NodeJS.ErrnoException).code ?? e.message));
      req.end(body);
    });

  const every = opts.ratePerClient ? 1000 / opts.ratePerClient : 0;
  const client = async (i: number) => {
    const base = bases[i % bases.length];
    // Paced clients start spread over one interval, each on its own schedule.
    let next = Date.now() + (every * i) / concurrency;
    for (let n = 0; running; n++) {
      if (every) {
        const wait = next - Date.now();
        if (wait > 0) await sleep(wait);
        next = Math.max(next + every, Date.now() - every);
        if (!running) break;
      }
      if (total >= maxRequests) {
        bounded = true;
        running = false;
        break;
      }
      total++;
      if (n % writeEvery === writeEvery - 1) {
        const k = ++seq;
        // Every other write updates one of the last few rows created (one client's create may
        // still be in flight: the list only holds ids the site answered with).
        const recent = Math.min(created.length, 5);
        const target =
          opts.update && recent > 0 && k % 2 === 0 ? created[created.length - 1 - (k % recent)] : undefined;
        if (target !== undefined) {
          await send(base, "write", "POST", opts.update!(target), { title: `${updated} ${k}`, body: `by client ${i}` });
        } else {
          await send(base, "write", "POST", create, { title: `${label} ${k}`, body: `by client ${i}` });
        }
      } else {
        await send(base, "read", "GET", opts.reads[(i + n) % opts.reads.length]);
      }
    }
  };
  const clients = Array.from({ length: concurrency }, (_, i) => client(i));

  const endPhase = (next: string): PhaseTally => {
    const done = current;
    done.ms = Date.now() - phaseStarted;
    phases.push(done);
    current = freshPhase(next);
    phaseStarted = Date.now();
    return done;
  };

  return {
    phase: (next) => (next === current.phase ? current : endPhase(next)),
    count: () => requestsOf(current),
    async until(n) {
      while (running && requestsOf(current) < n) await sleep(50);
    },
    get bounded() {
      return bounded;
    },
    acknowledged: () => [...acked],
    forget: () => {
      created.length = 0;
    },
    async stop() {
      running = false;
      await Promise.all(clients);
      clearTimeout(deadline);
      agent.destroy();
      endPhase("stopped");
      return phases;
    },
  };
}

/** "migrate: 120 reads (0 failed), 40 writes (2 failed: 500 x2)", one line per phase. */
export function describeTallies(phases: PhaseTally[]): string {
  const part = (name: string, t: Tally) => {
    const why = Object.entries(t.reasons)
      .map(([r, n]) => `${r} x${n}`)
      .join(", ");
    return `${t.ok + t.failed} ${name} (${t.failed} failed${why ? `: ${why}` : ""})`;
  };
  return phases.map((p) => `${p.phase}: ${part("reads", p.read)}, ${part("writes", p.write)}`).join("\n");
}

/** Failures other than maintenance answers (503 with Retry-After), reads and writes together. */
export function otherFailures(phases: PhaseTally[]): number {
  return phases.reduce(
    (n, p) =>
      n + p.read.failed + p.write.failed - (p.read.reasons[MAINTENANCE] ?? 0) - (p.write.reasons[MAINTENANCE] ?? 0),
    0,
  );
}

/** Every failure of the phases, reads and writes. */
export function allFailures(phases: PhaseTally[]): number {
  return phases.reduce((n, p) => n + p.read.failed + p.write.failed, 0);
}

/**
 * Runs `body` under a mixed load (`opts`) and asserts what every zero-downtime test claims:
 * the load ran for the whole scenario, not up to its bound; no read and no write failed in any
 * phase, except that in `maintenance` phases 503s with Retry-After (MAINTENANCE) may be
 * answered, and in `closed` ones nothing else at all (the window is fully on); and it both read
 * and wrote. Each scenario's tallies go to `log`, for the end of the run.
 */
export async function underMixedLoad<T>(
  opts: MixedLoadOptions,
  body: (load: MixedLoad) => Promise<T>,
  o: { log?: string[]; maintenance?: string[]; closed?: string[] } = {},
): Promise<{ result: T; phases: PhaseTally[]; load: MixedLoad }> {
  const load = startMixedLoad(opts);
  let result: T;
  let phases: PhaseTally[];
  try {
    result = await body(load);
  } finally {
    phases = await load.stop();
    o.log?.push(describeTallies(phases));
  }
  const tallies = describeTallies(phases);
  assert.ok(!load.bounded, `the load ran for the whole scenario, not up to its bound:\n${tallies}`);
  for (const p of phases) {
    const allowed = o.maintenance?.includes(p.phase) ? [MAINTENANCE] : [];
    for (const kind of ["read", "write"] as const) {
      const other = Object.keys(p[kind].reasons).filter((r) => !allowed.includes(r));
      assert.deepEqual(
        other,
        [],
        `no ${kind} failed in phase ${p.phase} but with ${allowed.join(" ") || "-"}:\n${tallies}`,
      );
      if (o.closed?.includes(p.phase))
        assert.equal(p[kind].ok, 0, `only maintenance answers in ${p.phase}:\n${tallies}`);
    }
  }
  const sum = (k: "read" | "write") => phases.reduce((n, p) => n + p[k].ok, 0);
  assert.ok(sum("read") > 0 && sum("write") > 0, `the load read and wrote:\n${tallies}`);
  return { result: result!, phases, load };
}
