// Writes bench/RESULTS.md from one run's measurements: the machine, a summary table (each figure
// the median of its runs, with its reference from the same run and the goal), then each section
// in detail, with where the time goes, so that a missed goal says by how much and why.
import { PhaseTally, failedOf, requestsOf } from "../test/rig/load";
import { CutoverResult } from "./cutover";
import { BackupResult, BackupSample, ReleasePathResult, ReleaseSample, StepRun } from "./hosts";
import { Machine, median, pct, seconds, spread } from "./lib";
import { PeersResult } from "./peers";
import { peersSummary, renderPeers } from "./peersReport";
import { readEngineResults, renderEngine } from "./engine";
import { ProgramResult } from "./program";

export interface Results {
  machine: Machine;
  totalMs: number;
  release?: ReleasePathResult;
  backup?: BackupResult;
  program?: ProgramResult;
  cutover?: CutoverResult;
  peers?: PeersResult;
}

/** Where a step's time goes: segments between log lines that match these markers, in order. */
const FETCH_MARKS: [string, RegExp][] = [
  ["SSH, checks, lock", /: downloading /],
  ["download, sha256 and unpack (one pass), manifest", /: (venv \S+ reused|building venv)/],
  ["venv (built or reused), links, .env ready", /: collectstatic$/],
  ["collectstatic", /: release \S+ ready/],
  ["rename into place, SSH close", /$^/],
];
const ACTIVATE_MARKS: [string, RegExp][] = [
  ["SSH, checks, lock", /: slot \w+: /],
  ["restart or reload, health gate", /: slot \w+ serves /],
  ["SSH close", /$^/],
];
const BACKUP_MARKS: [string, RegExp][] = [
  ["SSH, SSM read (connection settings)", /: pg_dump of /],
  ["pg_dump streamed to S3 (upload, sha256 alongside), pg_restore reading it back whole", /: verified /],
  ["SSH close", /$^/],
];

/** Each segment's duration in one run (NaN when a marker is missing). */
function segments(run: StepRun, marks: [string, RegExp][]): number[] {
  const at = marks.map(([, re], i) =>
    i === marks.length - 1 ? run.ms : (run.lines.find((l) => re.test(l.text))?.at ?? NaN),
  );
  return at.map((t, i) => t - (i === 0 ? 0 : at[i - 1]));
}

function breakdown(title: string, runs: { label: string; steps: StepRun[] }[], marks: [string, RegExp][]) {
  const head = `| ${title} | ${runs.map((r) => r.label).join(" | ")} |`;
  const sep = `|---|${runs.map(() => "---:").join("|")}|`;
  const rows = marks.map(([label], i) => {
    const cells = runs.map((r) => seconds(median(r.steps.map((s) => segments(s, marks)[i]))));
    return `| ${label} | ${cells.join(" | ")} |`;
  });
  const total = `| **total** | ${runs.map((r) => `**${seconds(median(r.steps.map((s) => s.ms)))}**`).join(" | ")} |`;
  return [head, sep, ...rows, total].join("\n");
}

const yes = (ok: boolean) => (ok ? "**met**" : "**missed**");

export function renderResults(r: Results): string {
  const m = r.machine;
  const out: string[] = [];
  out.push(
    "# Benchmark results",
    "",
    "Written by `npm run bench` (bench/run.ts); every figure is the median of the runs named next to it,",
    "and every ratio is against a reference measured in the same run on the same machine. Nothing here",
    "is asserted: the benchmark measures and reports. Re-run it to replace this file.",
    "",
    "| machine | |",
    "|---|---|",
    `| CPU | ${m.cpu} |`,
    `| cores | ${m.cores} |`,
    `| memory | ${m.memory} |`,
    `| kernel | ${m.kernel} |`,
    `| OS | ${m.os} |`,
    `| node | ${m.node} |`,
    `| date | ${m.date} |`,
    `| load average at start (1/5/15 min) | ${m.loadAtStart} (a shared machine: other work ran alongside) |`,
    `| benchmark wall time | ${seconds(r.totalMs, 0)} |`,
    "",
    "## Summary",
    "",
    "| # | measure | figure (median) | reference (same run) | ratio | goal | |",
    "|---|---|---|---|---|---|---|",
  );

  const rel = r.release;
  const relRatio = rel ? median(rel.warm.map((s) => s.total)) / median(rel.cold.map((s) => s.total)) : NaN;
  if (rel) {
    out.push(
      `| 1 | release critical path per host (fetch + activate), warm: same lock, new release | ` +
        `${seconds(median(rel.warm.map((s) => s.total)))} (${rel.warm.length} runs) | ` +
        `cold, new lock (venv built): ${seconds(median(rel.cold.map((s) => s.total)))} (${rel.cold.length} runs) | ` +
        `${pct(relRatio)} | < 20% | ${yes(relRatio < 0.2)} |`,
    );
  }
  const cut = r.cutover;
  if (cut) {
    const relFailed = median(cut.cycles.map((c) => failedOf(c.releasePhase)));
    const rbFailed = median(cut.cycles.map((c) => failedOf(c.rollbackPhase)));
    const relReq = median(cut.cycles.map((c) => requestsOf(c.releasePhase)));
    const rbReq = median(cut.cycles.map((c) => requestsOf(c.rollbackPhase)));
    const worst = Math.max(...cut.cycles.flatMap((c) => [failedOf(c.releasePhase), failedOf(c.rollbackPhase)]));
    const rw = (p: (c: CutoverResult["cycles"][number]) => PhaseTally) =>
      `${median(cut.cycles.map((c) => p(c).read.failed))} reads, ${median(cut.cycles.map((c) => p(c).write.failed))} writes`;
    out.push(
      `| 2 | failed requests (reads and writes) on the live colour through the load balancer: release + activation of the idle colour and cutover / rollback | ` +
        `${rw((c) => c.releasePhase)} / ${rw((c) => c.rollbackPhase)} (${cut.cycles.length} cycles; worst cycle: ${worst}) | ` +
        `requests sent: ${relReq} / ${rbReq} | ${pct(relFailed / relReq, 2)} / ${pct(rbFailed / rbReq, 2)} | 0 | ` +
        `${yes(worst === 0)} |`,
    );
  }
  const bk = r.backup;
  const bkRatio = bk ? median(bk.ours.map((s) => s.ms)) / median(bk.bare.map((s) => s.ms)) : NaN;
  if (bk) {
    out.push(
      `| 3 | backup step (pg_dump -Fc, streamed to S3 with sha256, read back whole by pg_restore), ${(bk.tableBytes / 2 ** 20).toFixed(0)} MB of rows | ` +
        `${seconds(median(bk.ours.map((s) => s.ms)))} (${bk.ours.length} runs) | ` +
        `bare \`pg_dump -Fc\` to a local file: ${seconds(median(bk.bare.map((s) => s.ms)))} (${bk.bare.length} runs) | ` +
        `${bkRatio.toFixed(3)} | < 1.15 | ${yes(bkRatio < 1.15)} |`,
    );
  }
  const pr = r.program;
  if (pr) {
    const get = (stack: string, state: string) => pr.cases.find((c) => c.stack === stack && c.state === state)!;
    for (const state of ["no release", "both slots"]) {
      const qa = get("qa", state);
      const prod = get("prod", state);
      out.push(
        `| 4 | program evaluation under mocks (${state}): qa / prod | ` +
          `${median(qa.ms).toFixed(0)} ms / ${median(prod.ms).toFixed(0)} ms (${pr.runs} runs each); ` +
          `${qa.resources} / ${prod.resources} resources | ` +
          `qa as the reference for prod | ${(median(prod.ms) / median(qa.ms)).toFixed(2)}x time for ` +
          `${(prod.resources / qa.resources).toFixed(2)}x resources | - | |`,
      );
    }
  }
  if (cut) {
    const changes = median(cut.cycles.map((c) => c.rollbackUp.changes));
    const commands = median(cut.cycles.map((c) => c.rollbackUp.commands));
    const relChanges = median(cut.cycles.map((c) => c.releaseUp.changes));
    const relCommands = median(cut.cycles.map((c) => c.releaseUp.commands));
    const all = cut.cycles.every((c) => c.rollbackUp.changes === 1 && c.rollbackUp.commands === 0);
    out.push(
      `| 5 | rollback (\`npm run rollback\` + \`pulumi up\`): resources changed, remote commands run | ` +
        `${changes} changed, ${commands} run (${cut.cycles.length} rollbacks) | ` +
        `the release before it: ${relChanges} changed, ${relCommands} run | - | 1 and 0 | ${yes(all)} |`,
    );
  }

  if (r.peers) out.push(...peersSummary(r.peers));

  if (rel) out.push("", ...releaseSection(rel, relRatio));
  if (cut) out.push("", ...cutoverSection(cut));
  if (bk) out.push("", ...backupSection(bk, bkRatio));
  if (pr) out.push("", ...programSection(pr));
  if (r.peers) out.push("", ...renderPeers(r.peers, bk, rel));
  out.push("", ...HISTORY, "", ...roundFour(r));
  // The real engine's figures come from their own run (npm run bench:engine, bench/engine.ts):
  // kept here so a full benchmark run does not drop them.
  const engine = readEngineResults();
  if (engine) out.push("", renderEngine(engine.stacks, engine.date));
  return out.join("\n") + "\n";
}

function releaseSection(rel: ReleasePathResult, ratio: number): string[] {
  const row = (kind: string, s: ReleaseSample) =>
    `| ${kind} | ${s.release} | ${s.venv} | ${seconds(s.fetch.ms)} | ${seconds(s.activate.ms)} | ${seconds(s.total)} |`;
  const warm = median(rel.warm.map((s) => s.total));
  const cold = median(rel.cold.map((s) => s.total));
  const lines = [
    "## 1. Release critical path per host",
    "",
    "One local host (a namespaced Debian 12 over real SSH, rig prefix glb), the S3/SSM stand-ins and",
    "PostgreSQL; blue serves release r0 while each run fetches a new release and activates it on green,",
    "exactly the per-host path of a release (fetch, then activate: slot switch, restart or reload,",
    "health gate). Backup and migrate run once per release on the first host and are measured in",
    `section 3. Artifact: ${(rel.artifactBytes / 2 ** 20).toFixed(1)} MB (the example site and its wheelhouse).`,
    "Cold runs carry a lock of their own: a new venv is built from the wheelhouse and green restarts",
    "on it. Warm runs carry the base lock and a new static file: the venv is reused, and green, which",
    "already runs that venv, reloads gracefully (gunicorn HUP), as the idle colour does in a series of",
    'same-lock releases. The first base-lock release after each cold one is reported apart ("warm after',
    "a lock change\"): its venv is reused too, but green runs the cold run's venv and must restart.",
    "Runs alternate: cold, warm after a lock change, warm.",
    "",
    "| kind | release | venv | fetch | activate | total |",
    "|---|---|---|---:|---:|---:|",
    ...rel.cold.map((s) => row("cold", s)),
    ...rel.warm.map((s) => row("warm", s)),
    ...rel.warmRestart.map((s) => row("warm after a lock change", s)),
    ...(rel.coldPip ?? []).map((s) => row("cold, pip (no uv)", s)),
    ...(rel.warmPip ?? []).map((s) => row("warm, no uv in the artifact", s)),
    "",
    `Median: cold ${spread(rel.cold.map((s) => s.total))}, warm ${spread(rel.warm.map((s) => s.total))}; ` +
      `warm/cold ${pct(ratio)} (goal: under 20%). Warm after a lock change: ` +
      `${spread(rel.warmRestart.map((s) => s.total))}, ` +
      `${pct(median(rel.warmRestart.map((s) => s.total)) / cold)} of cold.`,
    "",
    "Where the time goes (medians; segments between the step's own log lines, stamped as they arrive):",
    "",
    breakdown(
      "fetch",
      [
        { label: "cold", steps: rel.cold.map((s) => s.fetch) },
        { label: "warm", steps: rel.warm.map((s) => s.fetch) },
        { label: "warm after a lock change", steps: rel.warmRestart.map((s) => s.fetch) },
      ],
      FETCH_MARKS,
    ),
    "",
    breakdown(
      "activate",
      [
        { label: "cold (restart)", steps: rel.cold.map((s) => s.activate) },
        { label: "warm (graceful reload)", steps: rel.warm.map((s) => s.activate) },
        { label: "warm after a lock change (restart)", steps: rel.warmRestart.map((s) => s.activate) },
      ],
      ACTIVATE_MARKS,
    ),
  ];
  if (rel.coldPip?.length && rel.warmPip?.length) {
    const cp = median(rel.coldPip.map((s) => s.total));
    const wp = median(rel.warmPip.map((s) => s.total));
    const venv = (xs: ReleaseSample[]) => median(xs.map((s) => segments(s.fetch, FETCH_MARKS)[2]));
    lines.push(
      "",
      "**uv against pip, the same run.** The artifact carries uv's PyPI wheel (tools/, " +
        `${(rel.artifactBytes / 2 ** 20).toFixed(1)} MB against ${((rel.pipArtifactBytes ?? 0) / 2 ** 20).toFixed(1)} MB without it); ` +
        "fetch extracts the binary once per host and builds a new venv with `uv venv` + `uv pip install` " +
        "(offline, hash-checked, bytecode compiled as pip does). The runs below use the same artifacts " +
        "without tools/, so fetch falls back to `python3 -m venv` + pip, as before; they ran interleaved with the others.",
      "",
      "| | with uv | pip (before) | uv / pip |",
      "|---|---:|---:|---:|",
      `| cold: fetch + activate | ${spread(rel.cold.map((s) => s.total))} | ${spread(rel.coldPip.map((s) => s.total))} | ${(cold / cp).toFixed(2)} |`,
      `| cold: the venv segment of fetch | ${seconds(venv(rel.cold))} | ${seconds(venv(rel.coldPip))} | ${(venv(rel.cold) / venv(rel.coldPip)).toFixed(2)} |`,
      `| warm: fetch + activate (the bigger artifact's cost) | ${spread(rel.warm.map((s) => s.total))} | ${spread(rel.warmPip.map((s) => s.total))} | ${(warm / wp).toFixed(2)} |`,
      `| warm, pair by pair (the uv and pip warm runs of the same round, one after the other) | ${rel.warmPip.map((_, i) => seconds(rel.warm[i].total)).join(", ")} | ${rel.warmPip.map((s) => seconds(s.total)).join(", ")} | ${rel.warmPip.map((s, i) => (rel.warm[i].total / s.total).toFixed(2)).join(", ")} |`,
      `| warm / cold | ${pct(warm / cold)} | ${pct(wp / cp)} | |`,
      "",
      "A faster cold release raises the warm/cold share: the goal's ratio rewards a slow cold path, so read",
      "it with the seconds beside it. The wheel's cost is its bytes: every artifact carries it (uploaded once",
      "per release, downloaded, hashed and unpacked on every host); the pip warm runs ran only in the",
      "first rounds, so compare them pair by pair rather than with the medians of all warm runs.",
    );
  }
  if (ratio >= 0.2) {
    const seg = (steps: StepRun[], marks: [string, RegExp][], k: number) =>
      median(steps.map((st) => segments(st, marks)[k]));
    const fetches = rel.warm.map((st) => st.fetch);
    const activations = rel.warm.map((st) => st.activate);
    lines.push(
      "",
      `**Goal missed by ${((ratio - 0.2) * 100).toFixed(1)} points**: warm takes ${seconds(warm)}, ` +
        `20% of cold is ${seconds(cold * 0.2)}.`,
      "What is left of a warm release is fixed cost, not work a warm release could skip: the download",
      `(${seconds(seg(fetches, FETCH_MARKS, 1))} with the hash and the unpack), mostly starting Python with boto3`,
      "(the SSM read for .env runs beside it); collectstatic",
      `(${seconds(seg(fetches, FETCH_MARKS, 3))}, mostly Django's start-up); the reloaded workers importing the`,
      `app (${seconds(seg(activations, ACTIVATE_MARKS, 1))} until the health gate passes); and two SSH sessions`,
      `(${seconds(seg(fetches, FETCH_MARKS, 0) + seg(activations, ACTIVATE_MARKS, 0))}). The cold path adds the venv build`,
      `(${seconds(
        seg(
          rel.cold.map((st) => st.fetch),
          FETCH_MARKS,
          2,
        ),
      )}), which is short because the example site has`,
      "three dependencies: with a real dependency set the warm share shrinks. A slot that runs another venv",
      "than the release's (the first same-lock release after a lock change, or the first release into an",
      "empty slot) still restarts: a new interpreter imports gunicorn, Django and the app before the health",
      "gate passes (no fixed wait on top since round four: supervisor's startsecs is 0, the gate decides).",
    );
  }
  return lines;
}

/** Why writes failed in section 2, when they did: said from the figures, not assumed. */
function writeFailures(cut: CutoverResult): string[] {
  const failed = cut.cycles.filter((c) => c.releasePhase.write.failed + c.rollbackPhase.write.failed > 0);
  if (!failed.length) return [];
  const clean = cut.cycles.filter((c) => !failed.includes(c)).map((c) => `${c.release} (${c.variant})`);
  const readsFailed = cut.cycles.some((c) => c.releasePhase.read.failed + c.rollbackPhase.read.failed > 0);
  return [
    "",
    `**Writes failed** in ${failed.map((c) => `${c.release} (${c.variant})`).join(", ")}` +
      `${clean.length ? `, not in ${clean.join(", ")}` : ""}; reads ${readsFailed ? "failed too" : "never failed"}. ` +
      'The "pinned" variant adds notes.0003_note_pinned, `AddField(BooleanField(default=False))`: Django ' +
      "sets that default only while it adds the column, which is then NOT NULL without a database default, so " +
      "the live release's INSERTs, which do not name the column, fail (500) from the migrate step on, until the " +
      "listener moves; after a rollback to that release they fail again, for good, and so do they in the next " +
      "cycle until its cutover (the failures before its `pulumi up`). The load's reads and a release without a " +
      "migration are not affected. A migration that old code can live with (here: `db_default=False`) is the " +
      "site's part of a zero-downtime release; this is what the bench measures when it is missing.",
  ];
}

function cutoverSection(cut: CutoverResult): string[] {
  const api = cut.paths.find((p) => p !== "/healthz") ?? "";
  const reasons = (p: PhaseTally) =>
    [
      ...Object.entries(p.read.reasons).map(([k, v]) => `${v}x ${k} (read)`),
      ...Object.entries(p.write.reasons).map(([k, v]) => `${v}x ${k} (write)`),
    ].join(", ") || "-";
  const failed = (p: PhaseTally) => `${p.read.failed} / ${p.write.failed}${failedOf(p) ? ` (${reasons(p)})` : ""}`;
  const steps = (f: { byStep: Record<string, { reads: number; writes: number }> }) =>
    Object.entries(f.byStep)
      .map(([k, v]) => `${k}: ${v.reads} / ${v.writes}`)
      .join("; ") || "-";
  const writes = (p: PhaseTally) => p.write.ok + p.write.failed;
  const served = (p: { releases: Record<string, number> }) =>
    Object.entries(p.releases)
      .map(([k, v]) => `${k}: ${v}`)
      .join(", ");
  return [
    "## 2. Failed requests during a release and a rollback, and 5. what a rollback changes",
    "",
    `The whole program (index.ts, stack ${cut.stack}) under the rehearsal's stateful mock engine: remote`,
    "commands really run over SSH on the local host the program's instance boots, and the load balancer",
    "stand-in forwards to the colour the listener points at, health-checking targets like the ALB. The",
    `load (test/rig/load.ts, the tests' mixed load): ${cut.concurrency} keep-alive clients through the load balancer, back to back, for the whole`,
    `section; each sends, in turn, GET ${cut.paths.map((p) => `\`${p}\``).join(", ")} and, one request in ${cut.writeEvery}, a write:`,
    `${cut.writes}. The API answers with a database query (and Django's new database connection per request, TLS and`,
    "SCRAM, which caps it near 50 requests/s here), the health path from the app's first middleware. A",
    "request fails when the answer is outside 2xx/3xx, or on any error or timeout (10 s); failures are counted",
    "by the step (remote command) the engine had started last when they happened. Each release phase runs from",
    "`npm run release` through `pulumi up` (fetch, check, backup, migrate and activate of the idle colour, then",
    `the cutover) until the new release is served and at least ${cut.minRequests} requests were sent; each`,
    `rollback phase has ${cut.minRequests / 2} requests before \`npm run rollback\` + \`pulumi up\` and the rest after.`,
    "Going through the load balancer (rather than a slot port) is what users see, and the only way a",
    "rollback can be measured at all: it is a listener change.",
    "",
    "| cycle | release | requests (during `pulumi up`) | API list reads / writes | failed reads / writes | failed by step (reads / writes) | served by | release `pulumi up` | activation | resources changed / commands run |",
    "|---|---|---:|---:|---:|---|---|---:|---|---|",
    ...cut.cycles.map(
      (c, i) =>
        `| ${i + 1} | ${c.release} (${c.variant}) | ${requestsOf(c.releasePhase)} (${c.duringReleaseUp}) | ` +
        `${c.releasePhase.paths[api] ?? 0} / ${writes(c.releasePhase)} | ${failed(c.releasePhase)} | ${steps(c.releaseFailures)} | ` +
        `${served(c.releasePhase)} | ${seconds(c.releaseUp.ms)} | ${c.activation} | ` +
        `${c.releaseUp.changes} / ${c.releaseUp.commands} |`,
    ),
    "",
    "| cycle | rollback requests | API list reads / writes | failed reads / writes | failed by step (reads / writes) | served by | rollback `pulumi up` | until the old release served | resources changed | commands run |",
    "|---|---:|---:|---:|---|---|---:|---:|---|---:|",
    ...cut.cycles.map(
      (c, i) =>
        `| ${i + 1} | ${requestsOf(c.rollbackPhase)} | ${c.rollbackPhase.paths[api] ?? 0} / ${writes(c.rollbackPhase)} | ` +
        `${failed(c.rollbackPhase)} | ${steps(c.rollbackFailures)} | ${served(c.rollbackPhase)} | ` +
        `${seconds(c.rollbackUp.ms)} | ${seconds(c.rollbackServedMs)} | ` +
        `${c.rollbackUp.changes} (${c.rollbackUp.changed.join("; ")}) | ${c.rollbackUp.commands} |`,
    ),
    ...writeFailures(cut),
    ...(cut.marksNameEveryStep
      ? []
      : [
          "",
          "In this run the by-step column counts what failed during backup and migrate under fetch: their",
          "commands' names have no `-0` suffix, which the step marks' pattern then required (fixed since).",
        ]),
  ];
}

function backupSection(bk: BackupResult, ratio: number): string[] {
  const ours = median(bk.ours.map((s) => s.ms));
  const bare = median(bk.bare.map((s) => s.ms));
  const over = ours - bare;
  const at = (s: BackupSample, i: number) => s.run!.lines.find((l) => BACKUP_MARKS[i][1].test(l.text))?.at ?? NaN;
  const dumped = median(bk.ours.map((s) => at(s, 1) - at(s, 0)));
  const lines = [
    "## 3. Backup step against a bare pg_dump",
    "",
    `A table of ${bk.rows.toLocaleString("en")} generated rows (ids, hashes, text, timestamps, numbers) in the`,
    `app's database: ${(bk.tableBytes / 2 ** 20).toFixed(0)} MB of table, ${(bk.databaseBytes / 2 ** 20).toFixed(0)} MB ` +
      `of database; the dump: ${(median(bk.ours.map((s) => s.bytes)) / 2 ** 20).toFixed(1)} MB.`,
    "Both run over SSH as the deploy user on the same host, against the same PostgreSQL (TLS, the app's role): ours is the backup step exactly as",
    "the program sends it (connection settings from SSM; `pg_dump -Fc` streamed to the S3 stand-in while it",
    "is written, hashed on the way, and read back whole by `pg_restore` from the same stream, no local copy); the reference is `pg_dump --format=custom`",
    "to a local file with a password file. One untimed dump first warms the caches; then they alternate.",
    "",
    "| run | bare pg_dump -Fc | backup step |",
    "|---|---:|---:|",
    ...bk.bare.map((b, i) => `| ${i + 1} | ${seconds(b.ms)} | ${seconds(bk.ours[i]?.ms ?? NaN)} |`),
    "",
    `Median: bare ${spread(bk.bare.map((s) => s.ms))}, backup step ${spread(bk.ours.map((s) => s.ms))}; ` +
      `ratio ${ratio.toFixed(3)} (goal: under 1.15), ${seconds(over)} of overhead.`,
    "",
    breakdown("backup step", [{ label: "median", steps: bk.ours.map((s) => s.run!).filter(Boolean) }], BACKUP_MARKS),
    "",
    `From pg_dump's start to the end of the verification the step takes ${seconds(dumped)}, against ` +
      `${seconds(bare)} for the bare dump with its SSH session: the upload, the hash and the check run alongside the dump,`,
    "and what that segment adds is CPU: on this 2-core machine PostgreSQL, the S3 stand-in, pg_restore's check and the uploader",
    "share the cores pg_dump compresses on (on AWS the database and S3 run elsewhere). Streaming has a cost",
    "worth knowing: a custom-format dump written to a pipe has no data offsets, so pg_restore reads it in",
    "order (greenlight's restore does) and cannot restore it in parallel (`-j`) without a local re-dump.",
  ];
  if (ratio >= 1.15) {
    const seg = (k: number) => median(bk.ours.map((st) => segments(st.run!, BACKUP_MARKS)[k]));
    lines.push(
      "",
      `**Goal missed by ${(ratio - 1.15).toFixed(3)}**: ${seconds(over)} of overhead, 15% of the bare dump is ` +
        `${seconds(bare * 0.15)}.`,
      `What remains is the connection settings read from SSM before the dump (${seconds(seg(0))} with the SSH`,
      "session: a Python start with boto3, which pg_dump must wait for, as it needs the password), and",
      "the CPU the streamed upload takes from pg_dump on this 2-core machine (see above).",
      "Being fixed, the overhead is under 15% from a bare dump of about " +
        `${seconds(over / 0.15, 0)} (about ${((over / 0.15 / bare) * (bk.tableBytes / 2 ** 20)).toFixed(0)} MB of rows like these).`,
      "Not done: reading the connection settings from the app's .env instead of SSM (the deploy user is",
      "meant never to hold that file), or keeping them in a second secret file on the host.",
    );
  }
  return lines;
}

function programSection(pr: ProgramResult): string[] {
  return [
    "## 4. Program evaluation under mocks",
    "",
    "index.ts evaluated by test/rig/program.ts (`runProgram`, `pulumi.runtime.setMocks`) with the unit",
    "tests' fake engine, which answers every resource at once: the time is the program's own (config",
    "validation, subnet math, every component, outputs). Note: runProgram sets `Error.stackTraceLimit = 0`",
    "while the program is evaluated (the SDK captures a stack for every resource and output, which under",
    "ts-node's source maps is most of the time otherwise), and restores it after: these figures are",
    'without those stacks, which `pulumi preview` does capture. "both slots" adds a release to each colour',
    "(the release graph: fetch, check, backup, migrate, activate and cleanup commands per host).",
    "",
    `First evaluation in the process (also compiles the program's modules with ts-node): ${seconds(pr.firstMs)}.`,
    "",
    "| stack | state | resources (custom) | remote commands | wall time, median (range) |",
    "|---|---|---:|---:|---:|",
    ...pr.cases.map(
      (c) =>
        `| ${c.stack} | ${c.state} | ${c.resources} (${c.custom}) | ${c.commands} | ` +
        `${median(c.ms).toFixed(0)} ms (${Math.min(...c.ms).toFixed(0)}-${Math.max(...c.ms).toFixed(0)}) |`,
    ),
  ];
}

/**
 * The same sections of this benchmark (same code) run against the remote scripts before the
 * changes they prompted (the scripts of commit ba84329), on this machine: what the changes bought.
 */
const HISTORY = [
  "## Before the script changes",
  "",
  "The same benchmark, sections 1 and 3, run on this machine against the remote scripts as they were",
  "before the changes these figures prompted (commit ba84329; load average at start 3.42, so compare",
  "ratios rather than seconds):",
  "",
  "| measure | before | what changed |",
  "|---|---:|---|",
  "| 1. cold release, fetch + activate | 12.38 s (fetch 9.64 + activate 2.73) | the .env render overlaps the download (below); the restart stays, a new venv needs a new interpreter |",
  "| 1. warm release, fetch + activate | 5.81 s (fetch 2.95 + activate 2.93) | fetch renders .env from SSM while the artifact downloads and unpacks, reads the manifest with one interpreter, hashes with openssl; activate reloads a slot whose gunicorn already runs the release's venv (HUP; gunicorn.conf.py now names the release's directory) instead of restarting it and waiting out supervisor's startsecs, and polls health every 0.1 s instead of 1 s |",
  "| 1. warm / cold | 46.9% | |",
  "| 3. backup step / bare `pg_dump -Fc` | 1.479 (13.77 s / 9.31 s) | `pg_restore --list` runs while the dump is hashed; then the dump streams to S3 while it is written, hashed on the way |",
  "",
  "After that first round (24% and 1.34), a second change: the steps call S3 and SSM through boto3",
  "(Debian's python3-boto3: one Python start, about 0.3 s, instead of the AWS CLI's second), the",
  "artifact is downloaded, hashed and unpacked in one pass, and the backup streams to the bucket",
  "while pg_dump writes it instead of uploading afterwards.",
  "",
  "A third round (the figures above): new venvs are built with uv from the artifact's tools/ instead of",
  "`python3 -m venv` + pip (section 1 measures both in the same run: the pip runs use the same",
  "artifacts without tools/); the migrate step starts Django once instead of three times",
  "(`showmigrations --plan`, `migrate`, `showmigrations --plan`: the plan is now read before and after",
  "`migrate` in the one process), which the run before this one measured at 1.47 s for a warm release",
  "in section 6 (a different run, so compare it loosely with section 6's migrate above); and the load",
  "of sections 2 and 6 writes as well as reads (test/rig/load.ts, the tests' mixed load).",
];

/**
 * The fourth round: what it changed, against the run before it (2026-12-02T02:43Z, the same
 * machine and benchmark; its figures are the ones RESULTS.md carried then), with this run's.
 */
function roundFour(r: Results): string[] {
  const tot = (xs?: ReleaseSample[]) => (xs?.length ? median(xs.map((s) => s.total)) : NaN);
  const act = (xs?: ReleaseSample[]) => (xs?.length ? median(xs.map((s) => s.activate.ms)) : NaN);
  const rel = r.release;
  const bk = r.backup;
  const bkRatio = bk ? median(bk.ours.map((s) => s.ms)) / median(bk.bare.map((s) => s.ms)) : NaN;
  const gl = (kind: "cold" | "warm") =>
    median(r.peers?.releases.filter((x) => x.tool === "greenlight" && x.kind === kind).map((x) => x.ms) ?? []);
  const checkStep = median(
    (r.peers?.releases ?? [])
      .filter((x) => x.tool === "greenlight")
      .flatMap((x) => {
        const m = [...x.marks].sort((a, b) => a.at - b.at);
        const i = m.findIndex((k) => k.step === "check");
        return i >= 0 && i + 1 < m.length ? [m[i + 1].at - m[i].at] : [];
      }),
  );
  const row = (what: string, before: string, after: string) => `| ${what} | ${before} | ${after} |`;
  return [
    "## Round four: the health gate instead of startsecs, a lighter backup check",
    "",
    "What changed, measured against the run before it (2026-12-02 02:43 UTC, this machine and benchmark; its",
    "load average at start was 0.50, this run's is in the machine table, so compare ratios first):",
    "",
    "- **activate**: supervisor's `startsecs` is 0 (bootstrap.sh), so `supervisorctl restart` returns as soon",
    "  as gunicorn is spawned instead of after a fixed 2 s; the health gate (the slot's port answering the",
    "  release id) decides, and it fails at once, with the slot's log, when the gunicorn it started exits",
    "  before answering (a release that cannot boot), rather than at its timeout. `supervisorctl update`",
    "  (a Python start) runs only when the supervisor program file is newer than the slot's last update.",
    "- **backup**: the stream's check reads the whole archive with `pg_restore --file=/dev/null` (every block",
    "  inflated and rendered) instead of rendering it as SQL into a pipe and counting lines there; the",
    "  entries are counted from the archive's table of contents (`pg_restore --list` on a second copy of",
    "  the stream's start).",
    "- **section 6**: greenlight's release now runs the `<colour>-check` step (the migration safety check)",
    "  between fetch and backup, as the program does (issue 10), so its whole-release figures include a step",
    "  the run before did not run.",
    "",
    "| measure | before | this run |",
    "|---|---:|---:|",
    row(
      "1. cold, fetch + activate (activate)",
      "5.02 s (2.84 s)",
      `${seconds(tot(rel?.cold))} (${seconds(act(rel?.cold))})`,
    ),
    row(
      "1. warm, fetch + activate (activate)",
      "2.82 s (0.97 s)",
      `${seconds(tot(rel?.warm))} (${seconds(act(rel?.warm))})`,
    ),
    row(
      "1. warm after a lock change (activate)",
      "4.86 s (2.81 s)",
      `${seconds(tot(rel?.warmRestart))} (${seconds(act(rel?.warmRestart))})`,
    ),
    row("1. warm / cold", "56.1%", pct(tot(rel?.warm) / tot(rel?.cold))),
    row("3. backup step / bare `pg_dump -Fc`", "1.286 (9.35 s / 7.27 s)", bk ? bkRatio.toFixed(3) : "-"),
    row(
      "6. greenlight, whole release, cold",
      "10.75 s (no check step)",
      `${seconds(gl("cold"))} (check: ${seconds(checkStep)})`,
    ),
    row("6. greenlight, whole release, warm", "6.83 s (no check step)", seconds(gl("warm"))),
  ];
}
