// Section 4: evaluating the program (index.ts) under mocks, per stack, as the unit tests and
// `pulumi preview` do it: wall time and how many resources it declares. Uses test/rig/program.ts
// (runProgram) with the unit tests' fake engine, which answers instantly, so the time is the
// program's own.
import { ProgramRun, runProgram } from "../test/rig/program";
import { stackConfig } from "../test/rig/stackConfig";
import { fakeEngine, slot } from "../test/unit/fakeEngine";
import { median, progress, timed } from "./lib";

export interface ProgramCase {
  stack: string;
  /** "no release" (the stack file as committed) or "both slots" (a release in each slot). */
  state: string;
  /** Every registered resource, components included. */
  resources: number;
  /** Custom resources only: what the engine (and AWS) would create. */
  custom: number;
  commands: number;
  ms: number[];
}

export interface ProgramResult {
  /** The first evaluation in this process: it also compiles the program's modules with ts-node. */
  firstMs: number;
  cases: ProgramCase[];
  runs: number;
}

const STATES: Record<string, Record<string, string>> = {
  "no release": {},
  "both slots": { ...slot("blue", "r1"), ...slot("green", "r2"), live: "green" },
};

function evaluate(stack: string, state: string): Promise<ProgramRun> {
  return runProgram(stack, stackConfig(stack, STATES[state]), fakeEngine);
}

export async function programSection(opts: { runs: number }): Promise<ProgramResult> {
  progress(`section 4: program evaluation under mocks, qa and prod, ${opts.runs} runs each`);
  const first = await timed(() => evaluate("qa", "no release"));
  progress(`  first evaluation (compiles the program): ${(first.ms / 1000).toFixed(2)} s`);
  const cases: ProgramCase[] = [];
  for (const stack of ["qa", "prod"]) {
    for (const state of Object.keys(STATES)) {
      cases.push({ stack, state, resources: 0, custom: 0, commands: 0, ms: [] });
    }
  }
  // Interleaved, so a busy moment on a shared machine does not land on one case only.
  for (let i = 0; i < opts.runs; i++) {
    for (const c of cases) {
      const t = await timed(() => evaluate(c.stack, c.state));
      const run = t.value;
      if (run.failures.length) throw new Error(`${c.stack}: ${run.failures.map((f) => f.error).join("; ")}`);
      c.ms.push(t.ms);
      c.resources = run.resources.length;
      c.custom = run.resources.filter((r) => r.custom).length;
      c.commands = run.resources.filter((r) => r.type === "command:remote:Command").length;
    }
  }
  for (const c of cases) {
    progress(
      `  ${c.stack}, ${c.state}: ${c.resources} resources (${c.custom} custom), median ${median(c.ms).toFixed(0)} ms`,
    );
  }
  return { firstMs: first.ms, cases, runs: opts.runs };
}
