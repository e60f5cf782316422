// Section 6 of RESULTS.md: greenlight beside Ansible and Capistrano (bench/peers.ts), and the
// physical floor. Ratios are greenlight/peer, measured pair by pair (the same round, the same
// artifact, one right after the other), then their median and range.
import { BackupResult, ReleasePathResult } from "./hosts";
import { median, seconds } from "./lib";
import { Failures, PEERS, PeerRelease, PeerRollback, PeersResult, TOOLS, Tool } from "./peers";

const NAME: Record<Tool, string> = { greenlight: "greenlight", ansible: "Ansible", capistrano: "Capistrano" };

const range = (xs: number[], digits = 2) =>
  xs.length ? `${(Math.min(...xs) / 1000).toFixed(digits)}-${(Math.max(...xs) / 1000).toFixed(digits)}` : "-";
/** "3.10 s (2.90-3.40)" */
const fig = (xs: number[]) => (xs.length ? `${seconds(median(xs))} (${range(xs)})` : "-");
const ratioFig = (xs: number[]) =>
  xs.length ? `${median(xs).toFixed(2)} (${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)})` : "-";
const failedFig = (xs: number[]) => (xs.length ? `${median(xs)} (${Math.min(...xs)}-${Math.max(...xs)})` : "-");

/** greenlight's figure over the peer's, per round where both have one. */
function pairs<T extends { tool: Tool; round: number }>(rows: T[], peer: Tool, value: (r: T) => number): number[] {
  const out: number[] = [];
  for (const g of rows.filter((r) => r.tool === "greenlight")) {
    const p = rows.find((r) => r.tool === peer && r.round === g.round);
    if (p) out.push(value(g) / value(p));
  }
  return out;
}

const sumSteps = (fs: Failures[]) => {
  const out: Record<string, number> = {};
  for (const f of fs) for (const [k, v] of Object.entries(f.byStep)) out[k] = (out[k] ?? 0) + v;
  return out;
};
const stepsText = (byStep: Record<string, number>) =>
  Object.entries(byStep)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k}: ${v}`)
    .join("; ") || "-";
const reasonsText = (fs: Failures[]) => {
  const out: Record<string, number> = {};
  for (const f of fs) for (const [k, v] of Object.entries(f.reasons)) out[k] = (out[k] ?? 0) + v;
  return stepsText(out);
};

export function renderPeers(p: PeersResult, backup?: BackupResult, release?: ReleasePathResult): string[] {
  const out: string[] = [];
  const rel = (t: Tool, kind?: "cold" | "warm") => p.releases.filter((r) => r.tool === t && (!kind || r.kind === kind));
  const rb = (t: Tool) => p.rollbacks.filter((r) => r.tool === t);
  const rounds = [...new Set(p.releases.map((r) => r.round))].length;
  const cold = p.releases.filter((r) => r.kind === "cold" && r.tool === "greenlight").length;
  const warm = p.releases.filter((r) => r.kind === "warm" && r.tool === "greenlight").length;

  out.push(
    "## 6. Side by side: greenlight, Ansible, Capistrano",
    "",
    "What a team would otherwise use, written as each tool's documentation does it (bench/peers/, see",
    "its README): an Ansible playbook with roles (a release directory per deploy, a venv from the",
    "artifact's wheelhouse with pip's cache, shared `.env` and media links, collectstatic, `pg_dump -Fc`,",
    "migrate, the `current` symlink switch, `supervisorctl restart` of gunicorn, old releases pruned) and",
    "`cap qa deploy` (the standard flow with `linked_files`/`linked_dirs`, `keep_releases` 3, the artifact",
    "uploaded as a tarball by a local-copy SCM plugin, hooks for the venv, collectstatic, backup, migrate",
    "and restart). Both connect over real SSH to the same rig host with the bench world's deploy key and",
    "its host key pinned; each runs one gunicorn (2 workers) under supervisor behind an nginx server.",
    "greenlight runs its own steps exactly as the program sends them (fetch, backup, migrate, activate of",
    "the idle colour, then the listener switch once the load balancer sees that colour healthy, then",
    "cleanup), without Pulumi around them (section 2 has the same through `pulumi up`).",
    "",
    `${rounds} rounds (${cold} cold, ${warm} warm), each: greenlight, Ansible, Capistrano in turn, the same`,
    "artifact for all three (cold: a lock of its own; warm: the base lock and a new static file), the",
    "load balancer stand-in pointed at the tool whose turn it is, the same load through it all along:",
    `${p.concurrency} keep-alive clients, each paced at ${p.ratePerClient} requests/s (so a fast 502 does not`,
    `make them spin, and failed requests measure how long a site failed), on ${p.paths.map((x) => `\`${x}\``).join(", ")}.`,
    `Reads only: ${p.writes}.`,
    "A release's time is the tool's run from start to exit; \"served\" is from the same start until the",
    "load balancer answers with the new release; each release's requests are counted until 2 s after",
    "that (what fails just after the switch counts too). Rollbacks: `ansible-playbook rollback.yml` (switch back,",
    "restart, remove the release rolled back from, as ansistrano does), `cap qa deploy:rollback`, and",
    "for greenlight the listener back to the other colour (what `npm run rollback` + `pulumi up` changes:",
    "section 2 has it through Pulumi). Each tool's first two releases on the host are untimed set-up",
    `(first: ${PEERS.map((t) => `${NAME[t]} ${seconds(p.firstMs[t])}`).join(", ")}).`,
    "",
    "| measure | greenlight | Ansible | Capistrano | greenlight/Ansible | greenlight/Capistrano |",
    "|---|---:|---:|---:|---:|---:|",
  );
  const row = (label: string, cell: (t: Tool) => string, ratio: (peer: Tool) => string) =>
    out.push(`| ${label} | ${TOOLS.map(cell).join(" | ")} | ${PEERS.map(ratio).join(" | ")} |`);
  for (const kind of ["cold", "warm"] as const) {
    const rows = p.releases.filter((r) => r.kind === kind);
    row(
      `release, ${kind}: the tool's run`,
      (t) => fig(rel(t, kind).map((r) => r.ms)),
      (peer) => ratioFig(pairs(rows, peer, (r) => r.ms)),
    );
    row(
      `release, ${kind}: until the new release is served`,
      (t) => fig(rel(t, kind).map((r) => r.servedMs)),
      (peer) => ratioFig(pairs(rows, peer, (r) => r.servedMs)),
    );
  }
  row(
    "failed requests during a release (reads; writes not measured)",
    (t) => failedFig(rel(t).map((r) => r.failures.reads)),
    () => "-",
  );
  row(
    "how long requests failed during a release (first failure to last)",
    (t) => fig(rel(t).map((r) => r.failures.spanMs)),
    () => "-",
  );
  row(
    "requests during a release",
    (t) => failedFig(rel(t).map((r) => r.requests)),
    () => "-",
  );
  row(
    "rollback: until the previous release is served",
    (t) => fig(rb(t).map((r) => r.servedMs)),
    (peer) => ratioFig(pairs(p.rollbacks, peer, (r) => r.servedMs)),
  );
  row(
    "rollback: the tool's run",
    (t) => fig(rb(t).map((r) => r.ms)),
    (peer) => ratioFig(pairs(p.rollbacks, peer, (r) => r.ms)),
  );
  row(
    "failed requests during a rollback (reads)",
    (t) => failedFig(rb(t).map((r) => r.failures.reads)),
    () => "-",
  );
  row(
    "how long requests failed during a rollback",
    (t) => fig(rb(t).map((r) => r.failures.spanMs)),
    () => "-",
  );
  if (backup?.peers) {
    const bare = median(backup.bare.map((s) => s.ms));
    const cell = (t: Tool) => {
      const xs = t === "greenlight" ? backup.ours.map((s) => s.ms) : (backup.peers![t] ?? []).map((s) => s.ms);
      return xs.length ? `${fig(xs)}, ${(median(xs) / bare).toFixed(2)}x bare` : "-";
    };
    const ratio = (peer: Tool) => {
      const ours = backup.ours.map((s) => s.ms);
      const theirs = (backup.peers![peer] ?? []).map((s) => s.ms);
      const n = Math.min(ours.length, theirs.length);
      return ratioFig(Array.from({ length: n }, (_, i) => ours[i] / theirs[i]));
    };
    row(
      `backup, ${(backup.tableBytes / 2 ** 20).toFixed(0)} MB of rows (bare \`pg_dump -Fc\`: ${fig(backup.bare.map((s) => s.ms))})`,
      cell,
      ratio,
    );
  }
  out.push("");

  out.push(
    "Failed requests by the step that was running when they failed (all releases of a tool summed),",
    "and what they were:",
    "",
    "| tool | releases | failed during releases, by step | rollbacks | failed during rollbacks, by step | answers |",
    "|---|---:|---|---:|---|---|",
  );
  for (const t of TOOLS) {
    const rs = rel(t);
    const bs = rb(t);
    out.push(
      `| ${NAME[t]} | ${rs.length} | ${stepsText(sumSteps(rs.map((r) => r.failures)))} | ${bs.length} | ` +
        `${stepsText(sumSteps(bs.map((r) => r.failures)))} | ${reasonsText([...rs, ...bs].map((r) => r.failures))} |`,
    );
  }
  out.push("");

  out.push(
    "Every run, in the order they ran:",
    "",
    "| round | kind | tool | release | run | served after | requests | failed | failing for | greenlight's activation |",
    "|---:|---|---|---|---:|---:|---:|---:|---:|---|",
  );
  const byRound = new Map<number, (PeerRelease | PeerRollback)[]>();
  for (const r of [...p.releases, ...p.rollbacks]) byRound.set(r.round, [...(byRound.get(r.round) ?? []), r]);
  for (const [round, rows] of [...byRound.entries()].sort((a, b) => a[0] - b[0])) {
    for (const r of rows) {
      const isRelease = "kind" in r;
      out.push(
        `| ${round + 1} | ${isRelease ? r.kind : "rollback"} | ${NAME[r.tool]} | ${isRelease ? r.release : `${r.from} -> ${r.to}`} | ` +
          `${seconds(r.ms)} | ${seconds(r.servedMs)} | ${r.requests} | ${r.failures.reads} | ${seconds(r.failures.spanMs)} | ` +
          `${isRelease ? (r.activation ?? "") : ""} |`,
      );
    }
  }
  out.push("");

  // Where each tool's warm release spends its time: between its own step marks, medians.
  out.push("Where a warm release's time goes (medians, between the tools' own step marks as they printed them):", "");
  for (const t of TOOLS) {
    const rs = rel(t, "warm");
    if (!rs.length) continue;
    const steps: Record<string, number[]> = {};
    for (const r of rs) {
      const marks = [...r.marks].sort((a, b) => a.at - b.at);
      for (let i = 0; i < marks.length - 1; i++) {
        (steps[marks[i].step] ??= []).push(marks[i + 1].at - marks[i].at);
      }
    }
    const top = Object.entries(steps)
      .map(([k, v]) => [k, median(v)] as const)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 8);
    out.push(`- ${NAME[t]}: ${top.map(([k, v]) => `${k} ${seconds(v)}`).join(", ")}`);
  }
  out.push("");

  // The physical floor.
  if (p.floor.length) {
    const u = median(p.floor.map((f) => f.unpackMs));
    const s = median(p.floor.map((f) => f.symlinkMs));
    const b = median(p.floor.map((f) => f.bootMs));
    const sum = u + s + b;
    const glWarm = median(rel("greenlight", "warm").map((r) => r.ms));
    const glServed = median(rel("greenlight", "warm").map((r) => r.servedMs));
    const path1 = release ? median(release.warm.map((r) => r.total)) : NaN;
    out.push(
      "### The physical floor",
      "",
      `What no release on this host can go below, measured in the same run, on the host itself (one SSH`,
      `session, each part timed there; ${p.floor.length} runs): unpacking the ${(p.artifactBytes / 2 ** 20).toFixed(1)} MB artifact (\`tar -xzf\`),`,
      "swapping a symlink (`ln -s` + rename), and a cold gunicorn boot of the site (2 workers, a venv",
      "already built) until its first 200.",
      "",
      "| part | median (range) |",
      "|---|---:|",
      `| unpack the artifact | ${fig(p.floor.map((f) => f.unpackMs))} |`,
      `| swap a symlink | ${s.toFixed(2)} ms |`,
      `| cold gunicorn boot to the first 200 | ${fig(p.floor.map((f) => f.bootMs))} |`,
      `| **sum** | **${seconds(sum)}** |`,
      "",
      "| greenlight, warm | median | / floor |",
      "|---|---:|---:|",
      ...(release
        ? [`| per-host path (section 1: fetch + activate) | ${seconds(path1)} | ${(path1 / sum).toFixed(2)}x |`]
        : []),
      `| whole release (this section: fetch, backup, migrate, activate, cutover, cleanup) | ${seconds(glWarm)} | ${(glWarm / sum).toFixed(2)}x |`,
      `| until the new release is served | ${seconds(glServed)} | ${(glServed / sum).toFixed(2)}x |`,
      "",
    );
  }
  return out;
}

/** The summary rows of section 6 (for the summary table and the README). */
export function peersSummary(p: PeersResult): {
  warm: Record<Tool, number>;
  servedWarm: Record<Tool, number>;
  failed: Record<Tool, number>;
  rollback: Record<Tool, number>;
} {
  const by = (f: (t: Tool) => number) => Object.fromEntries(TOOLS.map((t) => [t, f(t)])) as Record<Tool, number>;
  return {
    warm: by((t) => median(p.releases.filter((r) => r.tool === t && r.kind === "warm").map((r) => r.ms))),
    servedWarm: by((t) => median(p.releases.filter((r) => r.tool === t && r.kind === "warm").map((r) => r.servedMs))),
    failed: by((t) => median(p.releases.filter((r) => r.tool === t).map((r) => r.failures.reads))),
    rollback: by((t) => median(p.rollbacks.filter((r) => r.tool === t).map((r) => r.servedMs))),
  };
}
