// Section 6 of RESULTS.md: greenlight beside Ansible and Capistrano (bench/peers.ts), and the
// physical floor. Ratios are greenlight/peer, measured pair by pair (the same round, the same
// artifact, one right after the other), then their median and range.
import { BackupResult, ReleasePathResult } from "./hosts";
import { median, seconds } from "./lib";
import { Failures, PEERS, PeerRelease, PeerRollback, PeersResult, TOOLS, Tool } from "./peers";

const NAME: Record<Tool, string> = { greenlight: "greenlight", ansible: "Ansible", capistrano: "Capistrano" };

/** Seconds, or milliseconds for what takes less than a tenth of a second. */
const dur = (ms: number) => (ms < 100 ? `${ms.toFixed(0)} ms` : seconds(ms));
/** "3.10 s (2.90-3.40 s)" */
const fig = (xs: number[]) =>
  xs.length ? `${dur(median(xs))} (${dur(Math.min(...xs))}-${dur(Math.max(...xs))})` : "-";
const r2 = (x: number) => (x < 0.01 ? "< 0.01" : x.toFixed(2));
const ratioFig = (xs: number[]) =>
  xs.length ? `${r2(median(xs))} (${r2(Math.min(...xs))}-${r2(Math.max(...xs))})` : "-";
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
  const out: Failures["byStep"] = {};
  for (const f of fs)
    for (const [k, v] of Object.entries(f.byStep)) {
      out[k] ??= { reads: 0, writes: 0 };
      out[k].reads += v.reads;
      out[k].writes += v.writes;
    }
  return out;
};
/** "switch : Restart gunicorn: 12 reads, 4 writes; ..." */
const stepsText = (byStep: Failures["byStep"]) =>
  Object.entries(byStep)
    .sort((a, b) => b[1].reads + b[1].writes - (a[1].reads + a[1].writes))
    .map(([k, v]) => `${k}: ${v.reads} reads, ${v.writes} writes`)
    .join("; ") || "-";
const countsText = (counts: Record<string, number>) =>
  Object.entries(counts)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k}: ${v}`)
    .join("; ") || "-";
const reasonsText = (fs: Failures[]) => {
  const out: Record<string, number> = {};
  for (const f of fs) for (const [k, v] of Object.entries(f.reasons)) out[k] = (out[k] ?? 0) + v;
  return countsText(out);
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
    "**Here greenlight's steps run directly, not through `pulumi up`.** The bench sends each step's",
    "command over SSH exactly as components/remote.ts builds it for the program (fetch, check, backup, migrate,",
    "activate of the idle colour, then the listener switch once the load balancer sees that colour",
    "healthy, then cleanup), but no Pulumi CLI, engine or provider plugin runs: these figures leave out",
    "what `pulumi up` adds around the steps (evaluating the program, the engine's diff and state, the",
    "plugins' start-up). Section 2 runs releases through the real CLI and engine (the release's",
    "`pulumi up` there), and the last section has what an `up` costs by itself; the peers, in turn, are",
    "timed from their CLI's start, so their own start-up is in their figures.",
    "",
    `${rounds} rounds (${cold} cold, ${warm} warm), each: greenlight, Ansible, Capistrano in turn, the same`,
    "artifact for all three (cold: a lock of its own; warm: the base lock and a new static file; the peers'",
    "copy without greenlight's tools/, the uv wheel, which they do not use), the",
    "load balancer stand-in pointed at the tool whose turn it is, the same load through it all along:",
    `${p.concurrency} keep-alive clients, each paced at ${p.ratePerClient} requests/s (so a fast 502 does not`,
    `make them spin, and failed requests measure how long a site failed), on ${p.paths.map((x) => `\`${x}\``).join(", ")}.`,
    `Writes: ${p.writes}.`,
    "A release's time is the tool's run from start to exit; \"served\" is from the same start until the",
    "load balancer answers with the new release; each release's requests are counted until 2 s after",
    "that (what fails just after the switch counts too). Rollbacks: `ansible-playbook rollback.yml` (switch back,",
    "restart, remove the release rolled back from, as ansistrano does), `cap qa deploy:rollback`, and",
    "for greenlight the listener back to the other colour (what `npm run rollback` + `pulumi up` changes:",
    "section 2 has it through Pulumi). Each peer's first release on the host is untimed set-up",
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
    "failed reads during a release",
    (t) => failedFig(rel(t).map((r) => r.failures.reads)),
    () => "-",
  );
  row(
    "failed writes during a release",
    (t) => failedFig(rel(t).map((r) => r.failures.writes)),
    () => "-",
  );
  row(
    "how long requests failed during a release (first failure to last)",
    (t) => fig(rel(t).map((r) => r.failures.spanMs)),
    () => "-",
  );
  row(
    "requests during a release (reads / writes)",
    (t) =>
      `${failedFig(rel(t).map((r) => r.failures.sent.reads))} / ${failedFig(rel(t).map((r) => r.failures.sent.writes))}`,
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
    "failed reads during a rollback",
    (t) => failedFig(rb(t).map((r) => r.failures.reads)),
    () => "-",
  );
  row(
    "failed writes during a rollback",
    (t) => failedFig(rb(t).map((r) => r.failures.writes)),
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
    "| round | kind | tool | release | run | served after | requests | failed reads / writes | failing for | greenlight's activation |",
    "|---:|---|---|---|---:|---:|---:|---:|---:|---|",
  );
  const byRound = new Map<number, (PeerRelease | PeerRollback)[]>();
  for (const r of [...p.releases, ...p.rollbacks]) byRound.set(r.round, [...(byRound.get(r.round) ?? []), r]);
  for (const [round, rows] of [...byRound.entries()].sort((a, b) => a[0] - b[0])) {
    for (const r of rows) {
      const isRelease = "kind" in r;
      out.push(
        `| ${round + 1} | ${isRelease ? r.kind : "rollback"} | ${NAME[r.tool]} | ${isRelease ? r.release : `${r.from} -> ${r.to}`} | ` +
          `${seconds(r.ms)} | ${seconds(r.servedMs)} | ${r.requests} | ${r.failures.reads} / ${r.failures.writes} | ${seconds(r.failures.spanMs)} | ` +
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

  const w = wins(p, backup);
  out.push("### Where a peer wins, and why", "");
  out.push(...(w.length ? w : ["- Nowhere in this run: greenlight's median is the lower one in every measure."]), "");
  out.push(
    "Where greenlight wins, the reason is its design rather than its speed: a release builds and starts the",
    "idle colour while the live one keeps serving, so no request fails and a warm release reloads a slot",
    "that already runs its venv (the peers build a venv and restart gunicorn on every release), and a",
    "rollback moves the listener back to a colour that is still running (the peers restart gunicorn on",
    "the old release, and Capistrano then archives the release it left). The peers' failed requests",
    "come from the restart: nginx answers 502 while no gunicorn listens, and the load balancer's health",
    "checks then take the target out (503) until two checks pass again.",
    "",
  );

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
      `| whole release (this section: fetch, check, backup, migrate, activate, cutover, cleanup) | ${seconds(glWarm)} | ${(glWarm / sum).toFixed(2)}x |`,
      `| until the new release is served | ${seconds(glServed)} | ${(glServed / sum).toFixed(2)}x |`,
      "",
    );
  }
  return out;
}

/** The summary rows of section 6 (for the summary table). */
export function peersSummary(p: PeersResult): string[] {
  const med = (f: (r: PeerRelease) => boolean, v: (r: PeerRelease) => number) => median(p.releases.filter(f).map(v));
  const each = (f: (t: Tool) => string) => TOOLS.map((t) => `${NAME[t]} ${f(t)}`).join(", ");
  const ratios = (kind: "cold" | "warm") =>
    PEERS.map((peer) =>
      r2(
        median(
          pairs(
            p.releases.filter((r) => r.kind === kind),
            peer,
            (r) => r.ms,
          ),
        ),
      ),
    ).join(" / ");
  const rows: string[] = [];
  for (const kind of ["cold", "warm"] as const) {
    rows.push(
      `| 6 | side by side: a whole release, ${kind} (the same artifact, the same host and load; greenlight's steps without \`pulumi up\`) | ` +
        `${each((t) =>
          dur(
            med(
              (r) => r.tool === t && r.kind === kind,
              (r) => r.ms,
            ),
          ),
        )} | Ansible / Capistrano, same rounds | ` +
        `${ratios(kind)} (greenlight/peer, pair by pair) | - | |`,
    );
  }
  rows.push(
    `| 6 | side by side: failed reads / writes per release; rollback until the old release is served | ` +
      `${each(
        (t) =>
          `${med(
            (r) => r.tool === t,
            (r) => r.failures.reads,
          )} / ${med(
            (r) => r.tool === t,
            (r) => r.failures.writes,
          )}`,
      )}; ` +
      `${each((t) => dur(median(p.rollbacks.filter((r) => r.tool === t).map((r) => r.servedMs))))} | - | - | - | |`,
  );
  return rows;
}

/**
 * Where a peer beats greenlight (its median below greenlight's), and why: the reasons are the
 * structural differences between the flows, named per measure.
 */
function wins(p: PeersResult, backup?: BackupResult): string[] {
  const out: string[] = [];
  const m = (t: Tool, kind: "cold" | "warm") =>
    median(p.releases.filter((r) => r.tool === t && r.kind === kind).map((r) => r.ms));
  const steps = (t: Tool, kind: "cold" | "warm") => {
    const d: Record<string, number[]> = {};
    for (const r of p.releases.filter((x) => x.tool === t && x.kind === kind)) {
      const ms = [...r.marks].sort((a, b) => a.at - b.at);
      for (let i = 0; i < ms.length - 1; i++) (d[ms[i].step] ??= []).push(ms[i + 1].at - ms[i].at);
    }
    return (step: string) => median(d[step] ?? []);
  };
  for (const kind of ["cold", "warm"] as const) {
    for (const peer of PEERS) {
      if (!(m(peer, kind) < m("greenlight", kind))) continue;
      const g = steps("greenlight", kind);
      const own = steps(peer, kind);
      const venv =
        peer === "ansible" ? own("release : Build the virtualenv from the artifact's wheelhouse") : own("site:venv");
      out.push(
        `- **${NAME[peer]} wins the ${kind} release**: ${dur(m(peer, kind))} against ${dur(m("greenlight", kind))}. ` +
          `Both build the venv from the same wheelhouse (${NAME[peer]} with pip: ${dur(venv)}; greenlight with uv, ` +
          `in its fetch with the download, the hash and collectstatic: ${dur(g("fetch"))}), so the ` +
          `difference is what greenlight does that ${NAME[peer]} does not: its backup streams to S3 and is read ` +
          `back whole by \`pg_restore\` on the way (${dur(g("backup"))}; the peer's local \`pg_dump\` of the same small ` +
          `database takes a few hundred ms); its migrate step reads the plan before and after \`migrate\` to prove ` +
          `nothing is left, in one Django start (${dur(g("migrate"))}); and its activation restarts the ` +
          `idle colour and waits for the health gate before the listener moves (${dur(g("activate"))}), where ` +
          `${NAME[peer]} restarts the live gunicorn in place and is done when supervisor says RUNNING, and pays ` +
          "for it with the failed requests above. Each of greenlight's steps is also an SSH session of its own, " +
          "with its own lock and checks.",
      );
    }
  }
  if (backup?.peers) {
    const ours = median(backup.ours.map((s) => s.ms));
    for (const peer of PEERS) {
      const theirs = median((backup.peers[peer] ?? []).map((s) => s.ms));
      if (!(theirs < ours)) continue;
      out.push(
        `- **${NAME[peer]} wins the backup**: ${dur(theirs)} against ${dur(ours)} (medians; the bare dump ` +
          `itself varied ${fig(backup.bare.map((s) => s.ms))} in this run). Its \`pg_dump -Fc\` writes to the ` +
          "host's own disk and stops there; greenlight's backup step streams the dump to S3 while it is written, " +
          "hashes it and reads it back whole with `pg_restore` on the way, and on this 2-core machine the S3 stand-in, " +
          "that check and " +
          "the uploader take CPU from pg_dump (on AWS they run elsewhere). A dump left on the host goes with the " +
          "host and is never checked: the bench measures what that difference costs, not what it is worth.",
      );
    }
  }
  return out;
}
