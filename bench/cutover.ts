// Sections 2 and 5, through the whole program: test/rig/rehearsal.ts runs index.ts under a mock
// engine that behaves like `pulumi up` (remote commands really run over SSH on local hosts the
// program's instances boot) with a load balancer stand-in in front of the hosts. A steady load
// goes through that load balancer, as users' requests do, while `npm run release` + `pulumi up`
// releases and activates the idle colour and cuts over, and while `npm run rollback` + `pulumi
// up` flips back. The engine's journal says what each `pulumi up` changed and ran.
import { execFileSync } from "child_process";
import * as path from "path";
import { Variant, siteArtifact } from "../test/rig/artifacts";
import { Rehearsal, UpResult, getThrough } from "../test/rig/rehearsal";
import { PhaseTally, failedOf, requestsOf, startMixedLoad } from "../test/rig/load";
import { LIST, Stops, progress, sleep } from "./lib";
import { Failures, Mark, classify } from "./peers";

export interface CutoverCycle {
  release: string;
  variant: Variant;
  /** The load while the idle colour was released, activated and cut over to. */
  releasePhase: PhaseTally;
  /** Its failures, reads and writes apart, by the step (remote command) that ran when they failed. */
  releaseFailures: Failures;
  /** Requests answered while `pulumi up` of the release ran. */
  duringReleaseUp: number;
  releaseUp: { ms: number; changes: number; commands: number };
  /** How the idle colour took the release: "reload" (same venv, HUP) or "restart". */
  activation: string;
  /** The load across the rollback: before, during and after the flip. */
  rollbackPhase: PhaseTally;
  rollbackFailures: Failures;
  rollbackUp: { ms: number; changes: number; commands: number; changed: string[]; ran: string[] };
  /** From the start of the rollback's `pulumi up` until the load balancer served the old release. */
  rollbackServedMs: number;
}

export interface CutoverResult {
  stack: string;
  concurrency: number;
  /** GET paths, spread over the clients' requests. */
  paths: string[];
  /** The write path (POST: create a note, or update one created earlier), one request in `writeEvery`. */
  writes: string;
  writeEvery: number;
  /** Set since the step marks name backup and migrate too (before, their failures counted as fetch's). */
  marksNameEveryStep?: boolean;
  minRequests: number;
  cycles: CutoverCycle[];
}

const RIG_PREFIX = "glr";

/** The Rehearsal class always uses rig prefix glr (subnet 31): wait until nobody else's runs. */
async function waitForRehearsalRig(): Promise<void> {
  const busy = () => {
    const netns = execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
    const links = execFileSync("ip", ["-o", "link", "show"], { encoding: "utf8" });
    return new RegExp(`(^|\\s)${RIG_PREFIX}-`, "m").test(netns) || new RegExp(`: ${RIG_PREFIX}-`).test(links);
  };
  const deadline = Date.now() + 30 * 60_000;
  let said = false;
  while (busy()) {
    if (Date.now() > deadline) throw new Error(`a ${RIG_PREFIX}- rig (another rehearsal) ran for 30 minutes`);
    if (!said) progress(`  another rehearsal's rig (${RIG_PREFIX}-*) is running: waiting for it to end`);
    said = true;
    await sleep(5_000);
  }
}

function summary(u: UpResult) {
  return { ms: u.ms, changes: u.changes.length, commands: u.commands.length };
}

export async function cutoverSections(opts: {
  cycles: number;
  minRequests: number;
  concurrency: number;
  stops: Stops;
}): Promise<CutoverResult> {
  const stack = "qa";
  // Mostly the health path (the app's middleware, no query), the API's list (a query, and a new
  // database connection per request), and one write in four (POST: a new note, or an update of
  // one created before): the API alone is bound by TLS + SCRAM connection set-up (about 50
  // requests/s here), too slow for 5,000 per phase. The list is capped (?limit), so the rows the
  // writes add do not make the reads heavier as the section goes on.
  const paths = [LIST, "/healthz", "/healthz"];
  const writeEvery = 4;
  progress(`sections 2 and 5: ${opts.cycles} release + rollback cycles of stack ${stack} through the load balancer`);
  await waitForRehearsalRig();
  // The rehearsal's own lines (each remote command as the engine runs it) are progress too, and
  // mark the step that runs from then on (to tell in which step a request failed).
  const marks: Mark[] = [];
  const r = await Rehearsal.start({
    stack,
    log: (line) => {
      const step = /^\s*\w+ \S+-(fetch|backup|migrate|activate|cleanup)(?:-\d+)? \.\.\.$/.exec(line)?.[1];
      if (step) marks.push({ at: Date.now(), step });
      progress(`    ${line.trim()}`);
    },
  });
  opts.stops.add("the rehearsal (hosts, PostgreSQL, stand-ins)", () => r.stop());
  const must = async (what: string) => {
    const u = await r.up();
    if (!u.ok) throw new Error(`${what}: pulumi up failed: ${u.error}`);
    return u;
  };
  const served = async () => {
    try {
      const res = await getThrough(r.albUrl()!, "/healthz");
      return res.status === 200 ? res.body : String(res.status);
    } catch {
      return "-";
    }
  };
  const waitServed = async (release: string) => {
    for (let i = 0; i < 200 && (await served()) !== release; i++) await sleep(50);
  };

  progress("  provisioning (pulumi up) and the first release r1 (untimed)");
  await must("provision");
  await r.release("base", "r1");
  await must("release r1");
  await waitServed("r1");

  const result: CutoverResult = {
    stack,
    concurrency: opts.concurrency,
    paths,
    writes: "POST /api/notes (a new note) or /api/notes/<id> (an update of one created before)",
    writeEvery,
    marksNameEveryStep: true,
    minRequests: opts.minRequests,
    cycles: [],
  };
  // Every cycle releases new code (the same lock: a warm release), the last ones with migrations.
  // Built before the load starts, so packaging does not compete with it (the rehearsal's
  // release() finds them in the artifacts' per-process cache).
  const variants: Variant[] = ["restyled", "pinned", "fixed-migration"];
  for (const v of variants.slice(0, opts.cycles)) await siteArtifact(v, path.join(r.dir, "artifacts"));
  const load = startMixedLoad({
    bases: [r.albUrl()!],
    reads: paths,
    update: (id) => `/api/notes/${id}`,
    writeEvery,
    concurrency: opts.concurrency,
    maxRequests: 10_000_000,
    maxMs: 60 * 60_000,
    phase: "warm-up",
  });
  opts.stops.add("the load", () => load.stop());
  try {
    await load.until(200);
    load.phase("release r2");
    for (let k = 0; k < opts.cycles; k++) {
      const variant = variants[k % variants.length];
      const id = `r${k + 2}`;
      progress(`  cycle ${k + 1}: npm run release (${variant} as ${id}) + pulumi up, under load`);
      const plan = await r.release(variant, id);
      const first = marks.length;
      const before = load.count();
      const up = await must(`release ${id}`);
      const duringReleaseUp = load.count() - before;
      const activated = String((await r.resource(`${stack}-release-${plan.slot}-activate-0`))?.outputs.stderr ?? "");
      const activation = /reloaded slot \w+ gracefully/.test(activated) ? "reload" : "restart";
      await waitServed(id);
      marks.push({ at: Date.now(), step: "(after pulumi up)" });
      await load.until(opts.minRequests);
      const releasePhase = load.phase(`rollback ${id}`);
      const releaseFailures = classify(releasePhase, marks.slice(first), "(before pulumi up)");
      progress(
        `    ${id} -> ${plan.slot}: ${requestsOf(releasePhase)} requests (${duringReleaseUp} during pulumi up), ` +
          `${releaseFailures.reads} reads and ${releaseFailures.writes} writes failed; activation: ${activation}`,
      );

      // The rollback in the middle of its phase: load before, during and after the flip.
      await load.until(opts.minRequests / 2);
      const back = await r.rollback();
      progress(`  cycle ${k + 1}: npm run rollback (${back.from} -> ${back.to}) + pulumi up, under load`);
      const started = Date.now();
      const rbFirst = marks.length;
      marks.push({ at: started, step: "pulumi up" });
      const rb = await must("rollback");
      await waitServed(back.release);
      const rollbackServedMs = Date.now() - started;
      marks.push({ at: Date.now(), step: "(after pulumi up)" });
      await load.until(opts.minRequests);
      const rollbackPhase = load.phase(`release r${k + 3}`);
      const rollbackFailures = classify(rollbackPhase, marks.slice(rbFirst), "(before pulumi up)");
      progress(
        `    rollback: ${rb.changes.length} resource(s) changed, ${rb.commands.length} command(s) ran; ` +
          `${requestsOf(rollbackPhase)} requests, ${failedOf(rollbackPhase)} failed`,
      );
      result.cycles.push({
        release: id,
        variant,
        releasePhase,
        releaseFailures,
        duringReleaseUp,
        releaseUp: summary(up),
        activation,
        rollbackPhase,
        rollbackFailures,
        rollbackUp: {
          ...summary(rb),
          changed: rb.changes.map((c) => `${c.op} ${c.type} ${c.name}`),
          ran: rb.commands,
        },
        rollbackServedMs,
      });
    }
  } finally {
    await load.stop();
  }
  return result;
}
