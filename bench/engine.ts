// How long the real Pulumi CLI and engine take over the program, per stack: what a user waits
// for at `pulumi preview` (a PR comment) and `pulumi up`. Run through the rehearsal's world
// (test/rig/rehearsal.ts): the real CLI and engine, the stand-in provider plugins (their own
// start-up is part of every figure: four Node plugins under ts-node), local hosts.
//
// Per stack, in order: preview of the empty stack, up (provision), preview of the first
// release, up (release: fetch, backup, migrate, activate, cutover), then `runs` previews and
// ups with nothing to change (their medians).
import * as fs from "fs";
import * as path from "path";
import { Rehearsal } from "../test/rig/rehearsal";
import { Stops, median, progress, seconds } from "./lib";

export interface EngineStackResult {
  stack: string;
  resources: number;
  previewCreateMs: number;
  upCreateMs: number;
  previewReleaseMs: number;
  upReleaseMs: number;
  previewNoopMs: number[];
  upNoopMs: number[];
  pulumiVersion: string;
}

export type EngineResult = EngineStackResult[];

async function timed<T>(f: () => Promise<T>): Promise<[number, T]> {
  const t = Date.now();
  const v = await f();
  return [Date.now() - t, v];
}

export async function engineSection(opts: { stacks: string[]; runs: number; stops: Stops }): Promise<EngineResult> {
  const out: EngineResult = [];
  for (const stack of opts.stacks) {
    progress(`engine: ${stack}: the real pulumi CLI over the program (rehearsal world)`);
    const lines: string[] = [];
    const r = await Rehearsal.start({ stack, log: (l) => lines.push(l) });
    let stopped = false;
    const stop = async () => {
      if (!stopped) await r.stop();
      stopped = true;
    };
    opts.stops.add(`the ${stack} rehearsal world`, stop);
    try {
      const must = async <T extends { ok: boolean; error?: string }>(what: string, p: Promise<T>) => {
        const v = await p;
        if (!v.ok) throw new Error(`engine bench: ${stack}: ${what} failed: ${v.error ?? ""}`);
        return v;
      };
      const [previewCreateMs] = await timed(() => must("preview (create)", r.preview()));
      const [upCreateMs, up] = await timed(() => must("up (provision)", r.up()));
      await r.release("base", "r1");
      const [previewReleaseMs] = await timed(() => must("preview (release)", r.preview()));
      const [upReleaseMs] = await timed(() => must("up (release)", r.up()));
      const previewNoopMs: number[] = [];
      const upNoopMs: number[] = [];
      for (let i = 0; i < opts.runs; i++) {
        previewNoopMs.push((await timed(() => must("preview (no changes)", r.preview())))[0]);
        upNoopMs.push((await timed(() => must("up (no changes)", r.up())))[0]);
      }
      const version = lines.find((l) => l.includes("$ pulumi version:")) ?? "";
      out.push({
        stack,
        resources: up.changes.length,
        previewCreateMs,
        upCreateMs,
        previewReleaseMs,
        upReleaseMs,
        previewNoopMs,
        upNoopMs,
        pulumiVersion: /v\d+\.\d+\.\d+/.exec(version)?.[0] ?? "?",
      });
      progress(
        `  ${stack}: preview ${seconds(previewCreateMs)}, up ${seconds(upCreateMs)} (provision); ` +
          `release preview ${seconds(previewReleaseMs)}, up ${seconds(upReleaseMs)}; ` +
          `no changes: preview ${seconds(median(previewNoopMs))}, up ${seconds(median(upNoopMs))}`,
      );
    } finally {
      await stop();
    }
  }
  return out;
}

const RESULTS_JSON = path.join(__dirname, "engine-results.json");

/** The last `npm run bench:engine` run's figures, committed beside RESULTS.md. */
export function readEngineResults(): { date: string; stacks: EngineResult } | undefined {
  return fs.existsSync(RESULTS_JSON)
    ? (JSON.parse(fs.readFileSync(RESULTS_JSON, "utf8")) as { date: string; stacks: EngineResult })
    : undefined;
}

export function renderEngine(e: EngineResult, date = ""): string {
  const rows = e.map(
    (s) =>
      `| ${s.stack} | ${s.resources} | ${seconds(s.previewCreateMs)} | ${seconds(s.upCreateMs)} | ` +
      `${seconds(s.previewReleaseMs)} | ${seconds(s.upReleaseMs)} | ${seconds(median(s.previewNoopMs))} | ` +
      `${seconds(median(s.upNoopMs))} |`,
  );
  return [
    `## The real Pulumi engine: preview and up (pulumi ${e[0]?.pulumiVersion ?? "?"})`,
    "",
    `Written by \`npm run bench:engine\` (bench/engine.ts)${date ? ` on ${date}` : ""}, one run per stack. What a user`,
    "waits for, per stack: the real CLI and engine over the program, with the stand-in",
    "provider plugins (their start-up, four Node processes under ts-node, is in every figure) and",
    "local hosts. The release's `up` includes the remote steps (fetch, backup, migrate, activate).",
    "Every preview here runs the policy pack (as the PR comment's does), which @pulumi/pulumi's",
    "run-policy-pack type-checks with ts-node: that is most of why a preview with nothing to change",
    "takes longer than an `up` with nothing to change (which runs no pack here). The machine was",
    "shared with other work (load average 4-7 on 2 cores): take the figures as an upper bound.",
    "",
    "| stack | resources | preview, empty stack | up, provision | preview, release | up, release | preview, no changes (median) | up, no changes (median) |",
    "|---|---|---|---|---|---|---|---|",
    ...rows,
    "",
  ].join("\n");
}

/** `npm run bench:engine`: measures, keeps the figures, and puts their section into RESULTS.md. */
if (require.main === module) {
  const stops = new Stops();
  engineSection({ stacks: ["qa", "prod"], runs: 3, stops })
    .then((e) => {
      const date = new Date().toISOString().slice(0, 16).replace("T", " ") + " UTC";
      fs.writeFileSync(RESULTS_JSON, JSON.stringify({ date, stacks: e }, null, 1) + "\n");
      const file = path.join(__dirname, "RESULTS.md");
      const text = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "";
      const at = text.indexOf("## The real Pulumi engine");
      const before = at >= 0 ? text.slice(0, at).trimEnd() : text.trimEnd();
      fs.writeFileSync(file, `${before}\n\n${renderEngine(e, date)}`);
      progress("wrote bench/engine-results.json and the engine section of bench/RESULTS.md");
    })
    .catch((err) => {
      progress(`engine bench FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      process.exitCode = 1;
    })
    .finally(() => stops.runAll());
}
