// npm run bench: what greenlight's promises cost, measured on local hosts (see bench/report.ts
// for what RESULTS.md says, and the README's "Benchmarks" section for how to read it).
//
//   ts-node --transpile-only bench/run.ts [--only program,release,peers,backup,cutover] [--render]
//
// Needs root (network namespaces) and the Debian packages the host tests need. Sections run one
// after another, never side by side, so they do not slow each other down. A full run writes
// bench/RESULTS.md; a partial run (--only) prints its figures and writes nothing.
import * as fs from "fs";
import * as path from "path";
import { parseArgs } from "util";
import { cutoverSections } from "./cutover";
import { hostSections } from "./hosts";
import { Stops, machine, progress } from "./lib";
import { programSection } from "./program";
import { Results, renderResults } from "./report";

const SECTIONS = ["program", "release", "peers", "backup", "cutover"] as const;

/** How many times each figure is measured (its median is reported). */
export const RUNS = {
  program: 7,
  cold: 3,
  warm: 5,
  /** Section 1 again without uv in the artifact (pip builds the venv): the before of that change. */
  pip: 2,
  backup: 4,
  cycles: 3,
  /** Section 6: greenlight, Ansible and Capistrano in turn, each round; all roll back after some. */
  peerRounds: ["cold", "warm", "warm", "cold"] as ("cold" | "warm")[],
  peerRollbackAfter: [1, 2],
};

async function main(stops: Stops): Promise<void> {
  const { values } = parseArgs({ options: { only: { type: "string" }, render: { type: "boolean" } } });
  if (values.render) {
    // Only the text: RESULTS.md again from the last full run's figures (bench/tmp/results.json).
    const last = JSON.parse(fs.readFileSync(path.join(__dirname, "tmp", "results.json"), "utf8")) as Results;
    fs.writeFileSync(path.join(__dirname, "RESULTS.md"), renderResults(last));
    progress("wrote bench/RESULTS.md from bench/tmp/results.json");
    return;
  }
  const only = values.only ? new Set(values.only.split(",")) : undefined;
  for (const s of only ?? []) {
    if (!(SECTIONS as readonly string[]).includes(s)) throw new Error(`--only: unknown section ${s}`);
  }
  const wants = (s: (typeof SECTIONS)[number]) => !only || only.has(s);
  const started = Date.now();
  const results: Results = { machine: machine(), totalMs: 0 };
  const m = results.machine;
  progress(`greenlight bench on ${m.cpu}, ${m.cores} cores, ${m.memory}, load ${m.loadAtStart}`);

  // First, while nothing of ours runs yet: the program alone.
  if (wants("program")) results.program = await programSection({ runs: RUNS.program });
  if (wants("release") || wants("backup") || wants("peers")) {
    const world = new Stops();
    stops.add("the host world", () => world.runAll());
    const hosts = await hostSections({
      coldRuns: RUNS.cold,
      pipRuns: RUNS.pip,
      warmRuns: RUNS.warm,
      backupRuns: RUNS.backup,
      backupMegabytes: 200,
      stops,
      world,
      only: new Set(SECTIONS.filter(wants)),
      peers: { rounds: RUNS.peerRounds, rollbackAfter: RUNS.peerRollbackAfter, concurrency: 4, ratePerClient: 20 },
    });
    results.release = hosts.release;
    results.backup = hosts.backup;
    results.peers = hosts.peers;
    // Done with those hosts: stop them before the rehearsal starts its own.
    await world.runAll();
  }
  if (wants("cutover")) {
    results.cutover = await cutoverSections({ cycles: RUNS.cycles, minRequests: 5000, concurrency: 8, stops });
  }
  results.totalMs = Date.now() - started;

  const text = renderResults(results);
  // Raw figures for a closer look (bench/tmp is ignored by git).
  fs.mkdirSync(path.join(__dirname, "tmp"), { recursive: true });
  fs.writeFileSync(path.join(__dirname, "tmp", "results.json"), JSON.stringify(results, null, 1));
  if (only) {
    process.stdout.write(text);
    progress("partial run (--only): bench/RESULTS.md left as it was");
  } else {
    fs.writeFileSync(path.join(__dirname, "RESULTS.md"), text);
    progress("wrote bench/RESULTS.md");
  }
}

const stops = new Stops();
let stopping = false;
const finish = async (code: number) => {
  if (stopping) return;
  stopping = true;
  progress("stopping everything the benchmark started");
  await stops.runAll();
  process.exitCode = code;
};
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  // `on`, not `once`: while a listener is left, the rig's own handler (test/rig/hosts.ts) tears
  // the hosts down and leaves the process to us, so the asynchronous stops below can finish.
  process.on(sig, () => {
    if (stopping) return;
    progress(`${sig}: stopping`);
    // Bounded: a stop that hangs must not keep the hosts' processes alive for ever (the rig's
    // own exit handler then tears them down).
    const hard = setTimeout(() => process.exit(130), 60_000);
    void finish(130).then(() => {
      clearTimeout(hard);
      process.exit(130);
    });
  });
}
main(stops)
  .then(() => finish(0))
  .catch(async (e) => {
    progress(`bench FAILED: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    await finish(1);
  });
