// Sections 1 and 3, on a world of local hosts (test/rig/world.ts: a namespaced Debian host over
// real SSH, PostgreSQL playing RDS, the S3/SSM stand-in): the per-host release path, cold and
// warm, and the backup step against a bare pg_dump. Steps run exactly as the program sends them
// (components/remote.ts, through step.sh), so the figures are those of the real scripts.
import { DeleteObjectCommand, S3Client } from "@aws-sdk/client-s3";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { StepCall } from "../components/remote";
import { artifactKey } from "../scripts/cli/lib/stack";
import { uploadArtifact } from "../scripts/cli/lib/upload";
import { Artifact, siteArtifact } from "../test/rig/artifacts";
import { RigHost } from "../test/rig/hosts";
import { runRemote } from "../test/rig/ssh";
import { APP, REGION, World, startWorld } from "../test/rig/world";
import { Stops, median, progress, seconds, timed } from "./lib";
import { BackupContender, PeersResult, startPeers } from "./peers";
import { coldVariant, pipVariant, warmVariant } from "./variants";

/** One step's run: wall time, and each log line's arrival time (ms since the step began). */
export interface StepRun {
  ms: number;
  lines: { at: number; text: string }[];
  out: Record<string, unknown>;
}

export interface ReleaseSample {
  release: string;
  fetch: StepRun;
  activate: StepRun;
  total: number;
  venv: string;
}

export interface ReleasePathResult {
  /** A new lock: the venv is built, and the slot restarts on it. */
  cold: ReleaseSample[];
  /** The lock the slot already runs: the venv is reused and the slot reloads gracefully. */
  warm: ReleaseSample[];
  /** The base lock right after a cold release in the slot: venv reused, but the slot restarts. */
  warmRestart: ReleaseSample[];
  /** The same cold and warm runs with an artifact without uv (pip builds the venv): before uv. */
  coldPip?: ReleaseSample[];
  warmPip?: ReleaseSample[];
  artifactBytes: number;
  pipArtifactBytes?: number;
}

export interface BackupSample {
  ms: number;
  bytes: number;
  run?: StepRun;
}

export interface BackupResult {
  tableBytes: number;
  databaseBytes: number;
  rows: number;
  ours: BackupSample[];
  bare: BackupSample[];
  /** The peers' own backup tasks (section 6), run in the same alternation. */
  peers?: Record<string, BackupSample[]>;
}

export interface HostsResult {
  release: ReleasePathResult;
  backup: BackupResult;
  peers: PeersResult;
}

const PREFIX = "glb";
const SUBNET = 41;

export async function hostSections(opts: {
  coldRuns: number;
  /** Cold and warm runs with an artifact without uv (pip builds the venv), interleaved. */
  pipRuns: number;
  warmRuns: number;
  backupRuns: number;
  backupMegabytes: number;
  /** What lives until the benchmark ends (artifacts, wheels: the rehearsal uses them too). */
  stops: Stops;
  /** What this section alone uses (the hosts, the stand-ins). */
  world: Stops;
  only?: Set<string>;
  /** Section 6: the peers' rounds (each "cold" or "warm"), and after which rounds all three roll back. */
  peers?: { rounds: ("cold" | "warm")[]; rollbackAfter: number[]; concurrency: number; ratePerClient: number };
}): Promise<Partial<HostsResult>> {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "gl-bench-"));
  opts.stops.add("the artifact directory", () => fs.rmSync(out, { recursive: true, force: true }));
  progress(`starting a local host (rig prefix ${PREFIX}, subnet 10.231.${SUBNET}.0/24), PostgreSQL, S3/SSM stand-ins`);
  const w = await startWorld({ hosts: 1, prefix: PREFIX, subnetIndex: SUBNET });
  opts.world.add("the local host world", () => w.stop());
  const s3 = new S3Client({
    region: REGION,
    endpoint: w.aws.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: "bench", secretAccessKey: "bench" },
  });
  opts.world.add("the S3 client", () => s3.destroy());
  const h = w.hosts[0];

  progress("bootstrap of the host");
  await must(w, h, w.values.bootstrap());
  progress("building the base site artifact (package-site, wheels from PyPI or the wheel cache)");
  const base = await siteArtifact("base", out);
  const upload = async (a: Artifact) => {
    await uploadArtifact(s3, w.artifactBucket, artifactKey(a.sha256), a.file, a.sha256);
    return { key: artifactKey(a.sha256), sha256: a.sha256 };
  };
  // The live slot: blue serves r0 (its venv is the one warm releases reuse) on a migrated database.
  progress("first release r0 on blue (untimed: builds the base venv, migrates)");
  const r0 = await upload(base);
  await must(w, h, w.values.fetch("blue", "r0", r0));
  await must(w, h, w.values.migrate("r0"));
  await must(w, h, w.values.activate("blue", "r0"));

  const result: Partial<HostsResult> = {};
  if (!opts.only || opts.only.has("release")) {
    result.release = await releasePath(w, h, base, out, upload, opts);
  }
  let others: BackupContender[] = [];
  if (opts.peers && (!opts.only || opts.only.has("peers"))) {
    const greenRelease = (await h.exec(["readlink", `/srv/${APP}/green`])).stdout.trim().split("/").pop() ?? "";
    const peers = await startPeers({
      w,
      h,
      s3,
      base,
      out,
      upload,
      stepRun: (call) => stepRun(w, h, call),
      live: { colour: "blue", release: "r0" },
      idle: { release: greenRelease },
      concurrency: opts.peers.concurrency,
      ratePerClient: opts.peers.ratePerClient,
      world: opts.world,
    });
    result.peers = await peers.series(opts.peers);
    others = peers.backups();
  }
  if (!opts.only || opts.only.has("backup")) {
    result.backup = await backupOverhead(w, h, s3, { ...opts, others });
  }
  return result;
}

const LABEL = {
  cold: "cold",
  warm: "warm",
  warmRestart: "warm after a lock change",
  coldPip: "cold, pip (no uv)",
  warmPip: "warm, no uv in the artifact",
  settle: "(untimed) back on the base venv",
};

/** Section 1: fetch + activate of the idle slot (green), cold and warm, interleaved. */
async function releasePath(
  w: World,
  h: RigHost,
  base: Artifact,
  out: string,
  upload: (a: Artifact) => Promise<{ key: string; sha256: string }>,
  opts: { coldRuns: number; warmRuns: number; pipRuns: number },
): Promise<ReleasePathResult> {
  const pipBase = await pipVariant(base, out, "base");
  const result: ReleasePathResult = {
    cold: [],
    warm: [],
    warmRestart: [],
    coldPip: [],
    warmPip: [],
    artifactBytes: base.size,
    pipArtifactBytes: pipBase.size,
  };
  const one = async (kind: "cold" | "warm" | "warmRestart" | "coldPip" | "warmPip" | "settle", i: number) => {
    const from = kind === "coldPip" || kind === "warmPip" || kind === "settle" ? pipBase : base;
    const a = kind.startsWith("cold")
      ? await coldVariant(from, out, `${kind}${i}`)
      : await warmVariant(from, out, `${kind}${i}`);
    const ref = await upload(a);
    const release = `${kind}${i}`;
    const fetch = await stepRun(w, h, w.values.fetch("green", release, ref));
    const activate = await stepRun(w, h, w.values.activate("green", release));
    const sample = { release, fetch, activate, total: fetch.ms + activate.ms, venv: String(fetch.out.venv) };
    // "settle": back onto the base venv after a pip cold run (as warmRestart does), untimed.
    if (kind !== "settle") result[kind]!.push(sample);
    progress(
      `  ${LABEL[kind]} ${i + 1}: fetch ${seconds(fetch.ms)} (venv ${sample.venv}) + activate ${seconds(activate.ms)}` +
        ` = ${seconds(sample.total)}`,
    );
    // Keep the host's tmpfs small (old releases and their venvs go); untimed, as in a release.
    await must(w, h, w.values.cleanup(2));
  };
  progress(`section 1: release path per host, ${opts.coldRuns} cold and ${opts.warmRuns} warm runs, interleaved`);
  // Each cold run leaves green on a venv of its own; the base-lock release after it (timed too,
  // reported apart) restarts green back onto the base venv, so each warm run then finds green
  // running the venv it reuses, as the idle colour does in a series of same-lock releases.
  for (let i = 0; i < Math.max(opts.coldRuns, opts.warmRuns); i++) {
    if (i < opts.coldRuns) {
      await one("cold", i);
      await one("warmRestart", i);
    }
    if (i < opts.warmRuns) await one("warm", i);
    if (i < opts.pipRuns) {
      await one("coldPip", i);
      await one("settle", i);
      await one("warmPip", i);
    }
  }
  const c = median(result.cold.map((s) => s.total));
  const m = median(result.warm.map((s) => s.total));
  progress(`  median cold ${seconds(c)}, warm ${seconds(m)}: warm/cold ${((m / c) * 100).toFixed(1)}%`);
  return result;
}

/** Section 3: the backup step against `pg_dump -Fc` to a local file, same host, same database. */
async function backupOverhead(
  w: World,
  h: RigHost,
  s3: S3Client,
  opts: { backupRuns: number; backupMegabytes: number; others: BackupContender[] },
): Promise<BackupResult> {
  progress(`section 3: generating at least ${opts.backupMegabytes} MB of rows in the app's database`);
  // Rows like an app's: ids, hashes, text, timestamps, numbers; the table belongs to the app's
  // role, as its own tables do, so the app's pg_dump reads it. Filled in batches until large enough.
  await w.pg.query(
    "CREATE TABLE bench_rows (id bigint, ref text, body text, at timestamptz, amount numeric(12,2));\n" +
      `ALTER TABLE bench_rows OWNER TO ${APP};\n`,
    APP,
  );
  let rows = 0;
  const target = opts.backupMegabytes * 1024 * 1024;
  const batch = 400_000;
  while (Number(await w.pg.query("SELECT pg_relation_size('bench_rows')", APP)) < target) {
    await w.pg.query(
      "INSERT INTO bench_rows SELECT g, md5(g::text), " +
        "concat_ws(' ', 'note', g, md5((g * 7)::text), repeat(chr(97 + g % 26), 10 + g % 40)), " +
        "timestamptz '2024-01-01' + g * interval '17 seconds', (g % 100000) / 7.0 " +
        `FROM generate_series(${rows + 1}, ${rows + batch}) g;\n`,
      APP,
    );
    rows += batch;
  }
  const tableBytes = Number(await w.pg.query("SELECT pg_relation_size('bench_rows')", APP));
  const databaseBytes = Number(await w.pg.query(`SELECT pg_database_size('${APP}')`, APP));
  progress(
    `  ${rows} rows, table ${(tableBytes / 2 ** 20).toFixed(0)} MB, database ${(databaseBytes / 2 ** 20).toFixed(0)} MB`,
  );

  // The bare reference runs as deploy over SSH like the step, with the same connection values
  // (TLS, the app's role); its password file is written through stdin, never an argument.
  const dir = "/var/tmp/gl-bench";
  const pgpass = [w.pg.host, String(w.pg.port), APP, APP, w.secrets.dbPassword]
    .map((v) => v.replace(/\\/g, "\\\\").replace(/:/g, "\\:"))
    .join(":");
  const prep = await h.exec(
    [
      "bash",
      "-c",
      `install -d -o deploy -g deploy -m 0700 ${dir} && umask 077 && cat >${dir}/pgpass && chown deploy: ${dir}/pgpass`,
    ],
    { input: `${pgpass}\n` },
  );
  if (prep.code !== 0) throw new Error(`preparing the bare pg_dump: ${prep.stderr}`);
  const env = `PGHOST=${w.pg.host} PGPORT=${w.pg.port} PGDATABASE=${APP} PGUSER=${APP} PGSSLMODE=require PGPASSFILE=${dir}/pgpass`;
  const bare = async (): Promise<BackupSample> => {
    const t = await timed(() =>
      runRemote(w.connection(h, "deploy"), `${env} pg_dump --format=custom --no-password --file=${dir}/bare.dump`),
    );
    if (t.value.code !== 0) throw new Error(`bare pg_dump failed: ${t.value.stderr}`);
    const size = await runRemote(w.connection(h, "deploy"), `stat -c %s ${dir}/bare.dump && rm -f ${dir}/bare.dump`);
    return { ms: t.ms, bytes: Number(size.stdout.trim()) };
  };
  const ours = async (i: number): Promise<BackupSample> => {
    const run = await stepRun(w, h, w.values.backup(`bench${i}`));
    // The stand-in keeps objects in memory: drop each dump once measured (untimed).
    await s3.send(new DeleteObjectCommand({ Bucket: w.backupBucket, Key: String(run.out.key) }));
    return { ms: run.ms, bytes: Number(run.out.size), run };
  };

  progress("  warm-up pg_dump (untimed: the table's pages into the caches, as on a live database)");
  await bare();
  const result: BackupResult = { tableBytes, databaseBytes, rows, ours: [], bare: [] };
  if (opts.others.length) result.peers = Object.fromEntries(opts.others.map((o) => [o.name, []]));
  const names = ["bare", "ours", ...opts.others.map((o) => o.name)];
  for (let i = 0; i < opts.backupRuns; i++) {
    // Alternate, and rotate which goes first, so drift on a shared machine hits all alike.
    const order = names.map((_, k) => names[(k + i) % names.length]);
    for (const which of order) {
      let s: BackupSample;
      if (which === "bare") result.bare.push((s = await bare()));
      else if (which === "ours") result.ours.push((s = await ours(i)));
      else {
        // The peer's own backup task, as its deploy runs it (pg_dump -Fc into its shared/backups).
        s = { ms: await opts.others.find((o) => o.name === which)!.run(i), bytes: NaN };
        result.peers![which].push(s);
      }
      progress(
        `  ${which === "bare" ? "bare pg_dump -Fc" : which === "ours" ? "backup step    " : `${which} backup`} ${i + 1}: ${seconds(s.ms)}` +
          (Number.isNaN(s.bytes) ? "" : `, ${(s.bytes / 2 ** 20).toFixed(1)} MB`),
      );
    }
  }
  await h.exec(["rm", "-rf", dir]);
  await w.pg.query("DROP TABLE bench_rows;\n", APP);
  const b = median(result.bare.map((s) => s.ms));
  const o = median(result.ours.map((s) => s.ms));
  progress(`  median bare ${seconds(b)}, backup step ${seconds(o)}: ratio ${(o / b).toFixed(3)}`);
  return result;
}

/**
 * Runs a step over SSH as the program does, then reads its log from the host: each line's
 * millisecond stamp (lib.sh's log) says when, since the step began, it was written.
 */
async function stepRun(w: World, h: RigHost, call: StepCall): Promise<StepRun> {
  const startedAt = Date.now();
  const started = process.hrtime.bigint();
  const r = await w.step(h, call, { timeoutSeconds: 600 });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (r.code !== 0) throw new Error(`${call.step} on ${h.name} failed (${r.code}):\n${r.stderr.slice(-3000)}`);
  const logPath = /\(log: (\S+)\)$/m.exec(r.stderr)?.[1];
  if (!logPath) throw new Error(`${call.step} on ${h.name} named no log: ${r.stderr}`);
  const log = await h.exec(["cat", "--", logPath]);
  const dayStart = startedAt - (startedAt % 86_400_000);
  const lines: StepRun["lines"] = [];
  for (const text of log.stdout.split("\n")) {
    const m = /^(\d\d):(\d\d):(\d\d)\.(\d{3}) /.exec(text);
    if (!m) continue;
    let at = dayStart + ((Number(m[1]) * 60 + Number(m[2])) * 60 + Number(m[3])) * 1000 + Number(m[4]) - startedAt;
    if (at < -43_200_000) at += 86_400_000; // the step ran past midnight (UTC)
    lines.push({ at, text });
  }
  const last = r.stdout.trim().split("\n").pop() ?? "{}";
  return { ms, lines, out: JSON.parse(last) as Record<string, unknown> };
}

async function must(w: World, h: RigHost, call: StepCall) {
  return (await stepRun(w, h, call)).out;
}
