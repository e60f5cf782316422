// `npm run rehearse -- --stack qa --artifact FILE [--release ID]`: a user's own artifact (built
// by `npm run package-site`) deployed as the first release on the rehearsal's local hosts, by
// the real program under the real Pulumi CLI (test/rig/rehearsal.ts says what stands in): fetch,
// check, backup, migrate, activate, cutover, each printed with what it said; then the site's
// health path, `/` and a static file it links, through the load balancer stand-in. Everything
// it started is stopped at the end, whatever happened.
import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";
import { Rehearsal, UpResult, getThrough, seconds } from "./rehearsal";
import { Check } from "./scenario";

/** One step of the release as the engine ran it: a remote command or the listener. */
export interface ReleaseStep {
  /** fetch, check, backup, migrate, activate, cutover, settings, cleanup, ... */
  kind: string;
  /** The resource's logical name. */
  name: string;
  /** The host it ran on (h0, h1...), for per-host steps. */
  host?: string;
  ok: boolean;
  /** What it printed (its stdout, one line), or the engine's error message when it failed. */
  said: string;
}

export interface ArtifactRehearsalResult {
  ok: boolean;
  stack: string;
  release?: string;
  /** The release's steps in the order the engine started them. */
  steps: ReleaseStep[];
  checks: Check[];
  /** What the load balancer answered: path -> status (and the health body). */
  served: { path: string; status: number; body?: string }[];
  outputs: Record<string, unknown>;
}

/** The step kind and host of a release resource's logical name (`qa-release-blue-fetch-0`). */
export function stepOf(name: string, type: string): { kind: string; host?: string } | undefined {
  if (type === "aws:lb/listener:Listener") return /-alb-test$/.test(name) ? undefined : { kind: "cutover" };
  const m =
    /-(fetch|check|backup|migrate|activate|restore|maintenance-on|maintenance-off|cleanup|settings|bootstrap)(?:-(\d+))?$/.exec(
      name,
    );
  return m ? { kind: m[1], host: m[2] === undefined ? undefined : `h${m[2]}` } : undefined;
}

/** The health path the stack file sets (greenlight:healthPath), else the program's default. */
function healthPathOf(stackFile: string): string {
  const doc = parse(fs.readFileSync(stackFile, "utf8")) as { config?: Record<string, unknown> };
  const v = doc.config?.["greenlight:healthPath"];
  return typeof v === "string" && v ? v : "/healthz";
}

const oneLine = (s: string, max = 240) => {
  const t = s.trim().replace(/\s*\n\s*/g, " | ");
  return t.length > max ? `${t.slice(0, max - 3)}...` : t;
};

/**
 * A step's stdout on one line: its JSON (the last line) with long lists cut to their ends and
 * counted (`"applied":[203: contenttypes.0001_initial, auth.0001_initial, ..., wagtailusers.0015_x]`).
 */
export function summarise(stdout: string): string {
  const last = stdout.trim().split("\n").pop() ?? "";
  let v: unknown;
  try {
    v = JSON.parse(last);
  } catch {
    return oneLine(stdout);
  }
  if (!v || typeof v !== "object" || Array.isArray(v)) return oneLine(stdout);
  const short = (x: unknown): string =>
    Array.isArray(x) && x.some((e) => e && typeof e === "object")
      ? `[${x.length} entries]`
      : Array.isArray(x) && x.length > 4
        ? `[${x.length}: ${[...x.slice(0, 2), "...", ...x.slice(-2)].map(String).join(", ")}]`
        : JSON.stringify(x);
  return oneLine(
    `{${Object.entries(v as Record<string, unknown>)
      .map(([k, x]) => `${JSON.stringify(k)}:${short(x)}`)
      .join(",")}}`,
    400,
  );
}

/** GET through the load balancer, following redirects that stay on it (at most 5). */
async function follow(base: string, p: string): Promise<{ path: string; status: number; body: string }> {
  let at = p;
  for (let i = 0; i < 5; i++) {
    const res = await fetch(`${base}${at}`, { redirect: "manual", signal: AbortSignal.timeout(30_000) });
    const body = await res.text();
    const location = res.headers.get("location");
    if (res.status < 300 || res.status >= 400 || !location) return { path: at, status: res.status, body };
    const next = new URL(location, `${base}${at}`);
    if (next.origin !== new URL(base).origin) return { path: at, status: res.status, body: `-> ${location}` };
    at = next.pathname + next.search;
  }
  throw new Error(`${p}: more than 5 redirects`);
}

export async function rehearseArtifact(opts: {
  stack: string;
  artifact: string;
  release?: string;
  log?: (line: string) => void;
}): Promise<ArtifactRehearsalResult> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const begun = Date.now();
  const checks: Check[] = [];
  const steps: ReleaseStep[] = [];
  const served: ArtifactRehearsalResult["served"] = [];
  let release: string | undefined;
  let outputs: Record<string, unknown> = {};
  const check = (what: string, ok: boolean, detail?: string) => {
    checks.push({ what, ok, detail });
    log(`   ${ok ? "ok  " : "FAIL"} ${what}${detail ? ` (${detail})` : ""}`);
    return ok;
  };
  const artifact = path.resolve(opts.artifact);
  log(
    `greenlight rehearsal of ${path.basename(artifact)} on stack ${opts.stack}: the real Pulumi CLI and engine; ` +
      "local hosts, PostgreSQL, S3/SSM and ALB stand-ins",
  );
  const r = await Rehearsal.start({ stack: opts.stack, log });
  const body = async (): Promise<void> => {
    const healthPath = healthPathOf(r.stackFile);
    log(`\n== 1. provision: the environment, no release yet`);
    log(`   pulumi up --stack ${opts.stack}`);
    const p = await r.up();
    if (!check(`pulumi up succeeds (${seconds(p.ms)})`, p.ok, p.error && oneLine(p.error, 400))) return;

    log(`\n== 2. release: your artifact as the first release`);
    const said = await r.releaseFile(artifact, opts.release).catch((e: Error) => {
      check("npm run release accepts the artifact", false, oneLine(e.message, 400));
      return undefined;
    });
    if (!said) return;
    release = said.id;
    check(`npm run release writes release ${release} into the ${said.slot} slot`, !!release && !!said.slot);
    log(`   pulumi up --stack ${opts.stack}`);
    const u = await r.up();
    await report(r, u, steps, log);
    check(`pulumi up succeeds (${seconds(u.ms)})`, u.ok, u.error && oneLine(u.error.split("\n")[0]));
    for (const kind of ["fetch", "check", "backup", "migrate", "activate"]) {
      const ran = steps.filter((s) => s.kind === kind);
      check(`${kind} ran and succeeded`, ran.length > 0 && ran.every((s) => s.ok), ran.length ? undefined : "not run");
    }
    check(`migrate ran exactly once`, steps.filter((s) => s.kind === "migrate").length === 1);
    const live = await r.serving().catch(() => undefined);
    const cut = steps.find((s) => s.kind === "cutover");
    log(
      `   cutover: ${cut ? `${cut.ok ? "ok    " : "FAILED"} ${cut.name}` : "the listener already forwarded to this colour (no change)"}; the load balancer forwards to ${live ?? "?"}`,
    );
    check(`the listener forwards to the release's colour (${said.slot})`, live === said.slot, live);
    if (!u.ok) return;

    log(`\n== 3. serve: through the load balancer (${r.albUrl()})`);
    // The stand-in health-checks its targets every 500 ms: a target counts after two answers.
    let health = { status: 0, body: "" };
    for (let i = 0; i < 150; i++) {
      health = await getThrough(r.albUrl()!, healthPath).catch(() => ({ status: 0, body: "" }));
      if (health.status === 200) break;
      await new Promise((res) => setTimeout(res, 200));
    }
    served.push({ path: healthPath, status: health.status, body: health.body.trim() });
    check(
      `GET ${healthPath} answers 200 with the release id`,
      health.status === 200 && health.body.trim() === release,
      `${health.status} ${oneLine(health.body, 80)}`,
    );
    const home = await follow(r.albUrl()!, "/").catch((e: Error) => ({ path: "/", status: 0, body: e.message }));
    served.push({ path: home.path, status: home.status });
    const title = /<title[^>]*>([^<]*)<\/title>/i.exec(home.body)?.[1]?.trim();
    check(
      `GET / answers 200${home.path !== "/" ? ` (at ${home.path})` : ""}`,
      home.status === 200,
      `${home.status}${title ? `, title "${oneLine(title, 80)}"` : ""}, ${home.body.length} bytes`,
    );
    const asset = /(?:href|src)=["']([^"']*\/static\/[^"'?#]+)/.exec(home.body)?.[1];
    if (asset) {
      const url = new URL(asset, `${r.albUrl()}/`);
      const a = await follow(r.albUrl()!, url.pathname).catch(() => ({ path: url.pathname, status: 0, body: "" }));
      served.push({ path: a.path, status: a.status });
      check(`GET ${url.pathname} (a static file / links) answers 200`, a.status === 200, String(a.status));
    } else {
      log(`   note: / links no /static/ file to fetch`);
    }
    outputs = r.outputs();
  };
  try {
    await body();
  } catch (e) {
    check("the rehearsal ran", false, oneLine(e instanceof Error ? e.message : String(e), 400));
  } finally {
    await r.stop();
    log(`\nstopped every process and removed the work directory`);
  }
  return done();

  function done(): ArtifactRehearsalResult {
    const ok = checks.length > 0 && checks.every((c) => c.ok);
    log("");
    const rows = steps.map((s) => [s.kind, s.host ?? "-", s.ok ? "ok" : "FAILED", s.name]);
    const head = ["step", "host", "result", "resource"];
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((x) => x[i].length)));
    const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ");
    if (rows.length) {
      log(line(head));
      log(widths.map((w) => "-".repeat(w)).join("  "));
      for (const x of rows) log(line(x));
    }
    log(
      `\nrehearsal of ${path.basename(artifact)}${release ? ` (release ${release})` : ""} ${ok ? "passed" : "FAILED"} in ${seconds(Date.now() - begun)}`,
    );
    return { ok, stack: opts.stack, release, steps, checks, served, outputs };
  }
}

/** Prints each release step the update ran, in the engine's order, with what it said. */
async function report(r: Rehearsal, u: UpResult, steps: ReleaseStep[], log: (line: string) => void): Promise<void> {
  const state = await r.exported().catch(() => []);
  for (const c of u.changes) {
    const step = stepOf(c.name, c.type);
    if (!step || (c.type !== "aws:lb/listener:Listener" && c.type !== "command:remote:Command")) continue;
    const res = state.find((x) => x.urn === c.urn);
    const stdout = String((res?.outputs as Record<string, unknown> | undefined)?.stdout ?? "");
    const said = c.ok ? (c.type === "command:remote:Command" ? stdout : `${c.op}d`) : (u.errors[c.name] ?? "failed");
    steps.push({ kind: step.kind, name: c.name, host: step.host, ok: c.ok, said });
    // A failed step's message starts with the provider's "Process exited ..." line; greenlight's own says what failed.
    const lines = said.trim().split("\n");
    const shown = c.ok ? summarise(said) : oneLine(lines.find((l) => /^greenlight /.test(l)) ?? lines[0] ?? "");
    log(`   ${c.ok ? "ok    " : "FAILED"} ${step.kind}${step.host ? ` on ${step.host}` : ""}: ${shown || "-"}`);
    if (!c.ok) for (const l of said.trim().split("\n").slice(1, 16)) log(`       > ${l}`);
  }
}
