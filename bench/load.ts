// A steady concurrent HTTP load: `concurrency` keep-alive clients, each sending its next GET (of
// one of `paths`, client i always the same: paths[i % paths.length]) as soon as the previous
// answered, until stopped. Every answer that is not a 200, every error and
// every timeout is a failed request. Phases split the count (a release, a rollback) without
// stopping the load, so the clients never pause at a phase boundary.
import * as http from "http";
import { sleep } from "./lib";

export interface PhaseCount {
  requests: number;
  failed: number;
  /** Failure reasons ("503", "ECONNRESET", "timeout") and how often each happened. */
  reasons: Record<string, number>;
  /** Which release answered how often (the body's "release" field, or the body itself). */
  releases: Record<string, number>;
  /** Requests per path. */
  paths: Record<string, number>;
  /** When each failure happened (ms since the epoch), to tell in which step of a release (the first 5,000). */
  failures: { at: number; path: string; reason: string }[];
  ms: number;
}

export interface Load {
  /** Starts counting a new phase; returns the one that ended. */
  phase(): PhaseCount;
  /** Requests answered (ok or not) in the current phase. */
  count(): number;
  /** Waits until the current phase has seen at least `n` requests. */
  until(n: number): Promise<void>;
  /** Stops every client and returns the last phase. */
  stop(): Promise<PhaseCount>;
}

export function startLoad(
  base: string,
  opts: {
    paths: string[];
    concurrency: number;
    host?: string;
    timeoutMs?: number;
    /**
     * Requests per second per client: paced, the load is the same whatever the answers (a fast
     * 502 does not make the clients spin), so failed requests measure how long a site failed.
     * Unset: each client sends its next request as soon as the previous one answered.
     */
    ratePerClient?: number;
  },
): Load {
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.concurrency });
  let running = true;
  const fresh = (): PhaseCount => ({
    requests: 0,
    failed: 0,
    reasons: {},
    releases: {},
    paths: {},
    failures: [],
    ms: 0,
  });
  let current = fresh();
  let phaseStarted = Date.now();

  const fail = (p: string, why: string) => {
    current.paths[p] = (current.paths[p] ?? 0) + 1;
    current.requests++;
    current.failed++;
    current.reasons[why] = (current.reasons[why] ?? 0) + 1;
    if (current.failures.length < 5000) current.failures.push({ at: Date.now(), path: p, reason: why });
  };
  const one = (p: string) =>
    new Promise<void>((resolve) => {
      const req = http.get(
        `${base}${p}`,
        { agent, timeout: opts.timeoutMs ?? 10_000, headers: opts.host ? { host: opts.host } : {} },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("error", (e) => {
            fail(p, (e as NodeJS.ErrnoException).code ?? e.message);
            resolve();
          });
          res.on("end", () => {
            if (res.statusCode !== 200) fail(p, String(res.statusCode));
            else {
              const body = Buffer.concat(chunks).toString("utf8");
              let release = body.trim().slice(0, 40);
              try {
                release = String((JSON.parse(body) as { release?: unknown }).release ?? release);
              } catch {
                // a plain-text body (the health path) is the release id itself
              }
              current.paths[p] = (current.paths[p] ?? 0) + 1;
              current.requests++;
              current.releases[release] = (current.releases[release] ?? 0) + 1;
            }
            resolve();
          });
        },
      );
      req.on("timeout", () => req.destroy(Object.assign(new Error("timeout"), { code: "timeout" })));
      req.on("error", (e) => {
        fail(p, (e as NodeJS.ErrnoException).code ?? e.message);
        resolve();
      });
    });
  const client = async (i: number) => {
    const p = opts.paths[i % opts.paths.length];
    const every = opts.ratePerClient ? 1000 / opts.ratePerClient : 0;
    // Paced clients start spread over one interval, each on its own schedule.
    let next = Date.now() + (every * i) / opts.concurrency;
    while (running) {
      if (every) {
        const wait = next - Date.now();
        if (wait > 0) await sleep(wait);
        next = Math.max(next + every, Date.now() - every);
        if (!running) break;
      }
      await one(p);
    }
  };
  const clients = Array.from({ length: opts.concurrency }, (_, i) => client(i));

  const endPhase = () => {
    const done = current;
    done.ms = Date.now() - phaseStarted;
    current = fresh();
    phaseStarted = Date.now();
    return done;
  };
  return {
    phase: endPhase,
    count: () => current.requests,
    async until(n) {
      while (running && current.requests < n) await sleep(50);
    },
    async stop() {
      running = false;
      await Promise.all(clients);
      agent.destroy();
      return endPhase();
    },
  };
}
