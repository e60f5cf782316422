// Section 6: greenlight side by side with what its users would otherwise use, Ansible and
// Capistrano (bench/peers/: each written the way its own documentation does it), on the same rig
// host, with the same artifacts and the same database, under the same load through the same load
// balancer stand-in. Runs alternate greenlight, Ansible, Capistrano, round after round, so drift
// on a shared machine hits all three alike. Also the physical floor: what a release cannot go
// below on this host (unpack the artifact, swap a symlink, boot gunicorn cold to its first 200).
import { DeleteObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { SLOT_PORTS } from "../components/constants";
import { StepCall } from "../components/remote";
import { AlbStandIn, startAlbStandIn } from "../test/rig/albStandIn";
import { Artifact } from "../test/rig/artifacts";
import { RigHost } from "../test/rig/hosts";
import { getThrough } from "../test/rig/rehearsal";
import { runRemote } from "../test/rig/ssh";
import { MixedLoad, PhaseTally, requestsOf, startMixedLoad } from "../test/rig/load";
import { APP, SITE_HOST, World } from "../test/rig/world";
import { StepRun } from "./hosts";
import { LIST, Stops, progress, seconds, sleep } from "./lib";
import { coldVariant, pipVariant, warmVariant } from "./variants";

export const TOOLS = ["greenlight", "ansible", "capistrano"] as const;
export type Tool = (typeof TOOLS)[number];
export const PEERS = ["ansible", "capistrano"] as const;
type Peer = (typeof PEERS)[number];

/** Each peer's nginx port (the load balancer's target) and gunicorn port behind it. */
const PEER_PORTS: Record<Peer, { nginx: number; gunicorn: number }> = {
  ansible: { nginx: 8003, gunicorn: 9003 },
  capistrano: { nginx: 8004, gunicorn: 9004 },
};
const PEERS_DIR = path.join(__dirname, "peers");
/**
 * Each release's and rollback's load phase goes on this long after the new (or old) release is
 * served: a measuring window, so that what fails just after the switch counts too, and a
 * rollback that switches at once still has requests to count.
 */
const SETTLE_MS = 2000;
/** What the peers need on the machine (the tools, and net-ssh's ed25519 support for Capistrano). */
const PEER_PACKAGES = ["ansible", "capistrano", "ruby-ed25519", "ruby-bcrypt-pbkdf"];

/** A mark in a tool's output: the step (Ansible task, Capistrano task, greenlight step) that began then. */
export interface Mark {
  at: number;
  step: string;
}

/** Failed requests, split by what they were and the step that ran when they failed. */
export interface Failures {
  reads: number;
  writes: number;
  /** Reads and writes sent (answered or not). */
  sent: { reads: number; writes: number };
  byStep: Record<string, { reads: number; writes: number }>;
  /** "502": n, ..., reads and writes together. */
  reasons: Record<string, number>;
  /** From the first failed request to the last (0: none or one): how long the site failed. */
  spanMs: number;
}

export interface PeerRelease {
  tool: Tool;
  round: number;
  kind: "cold" | "warm";
  release: string;
  /** The tool's own run, start to exit (greenlight: its steps and the listener switch). */
  ms: number;
  /** From the start until the load balancer served the new release. */
  servedMs: number;
  /** greenlight only: "reload" or "restart" of the idle colour. */
  activation?: string;
  requests: number;
  failures: Failures;
  marks: Mark[];
}

export interface PeerRollback {
  tool: Tool;
  round: number;
  from: string;
  to: string;
  ms: number;
  servedMs: number;
  requests: number;
  failures: Failures;
}

export interface FloorSample {
  unpackMs: number;
  symlinkMs: number;
  bootMs: number;
}

export interface PeersResult {
  concurrency: number;
  ratePerClient: number;
  paths: string[];
  writes: string;
  artifactBytes: number;
  releases: PeerRelease[];
  rollbacks: PeerRollback[];
  floor: FloorSample[];
  /** Each tool's first release on the host (untimed in the comparison: it sets things up). */
  firstMs: Record<Tool, number>;
}

/** A backup contender for section 3: one run, its wall time. */
export interface BackupContender {
  name: string;
  run(i: number): Promise<number>;
}

export interface Peers {
  series(opts: { rounds: ("cold" | "warm")[]; rollbackAfter: number[] }): Promise<PeersResult>;
  backups(): BackupContender[];
}

function ensurePeerPackages(): void {
  const q = spawnSync("dpkg-query", ["-W", "-f=${Package} ${db:Status-Abbrev}\\n", ...PEER_PACKAGES], {
    encoding: "utf8",
  });
  const have = new Set(
    (q.stdout ?? "")
      .split("\n")
      .map((l) => l.trim().split(/\s+/))
      .filter(([, s]) => s === "ii")
      .map(([n]) => n.replace(/:.*$/, "")),
  );
  const missing = PEER_PACKAGES.filter((p) => !have.has(p));
  if (!missing.length) return;
  progress(`  installing the peers' Debian packages: ${missing.join(" ")}`);
  const r = spawnSync("apt-get", ["install", "-y", "-q", "--no-install-recommends", ...missing], {
    encoding: "utf8",
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    timeout: 15 * 60_000,
  });
  if (r.status !== 0) {
    throw new Error(`apt-get install ${missing.join(" ")} failed (run apt-get update first?):\n${r.stderr}`);
  }
}

/** Runs a tool, stamping each output line; `mark` picks the step a line starts. */
function runTool(
  cmd: string,
  args: string[],
  opts: { cwd: string; env: NodeJS.ProcessEnv; mark: (line: string) => string | undefined; timeoutMs?: number },
): Promise<{ ms: number; marks: Mark[]; output: string }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const marks: Mark[] = [];
    let output = "";
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ["ignore", "pipe", "pipe"] });
    const timer = setTimeout(() => child.kill("SIGTERM"), opts.timeoutMs ?? 300_000);
    const partial = { stdout: "", stderr: "" };
    const take = (stream: "stdout" | "stderr") => (chunk: Buffer) => {
      const text = chunk.toString("utf8");
      output += text;
      partial[stream] += text;
      const lines = partial[stream].split("\n");
      partial[stream] = lines.pop()!;
      for (const line of lines) {
        const step = opts.mark(line);
        if (step) marks.push({ at: Date.now(), step });
      }
    };
    child.stdout.on("data", take("stdout"));
    child.stderr.on("data", take("stderr"));
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      const ms = Date.now() - started;
      if (code !== 0) reject(new Error(`${cmd} ${args.join(" ")} exited ${code}:\n${output.slice(-4000)}`));
      else resolve({ ms, marks, output });
    });
  });
}

const ANSIBLE_MARK = (line: string) => /^(?:TASK|RUNNING HANDLER) \[(.+?)\]/.exec(line)?.[1];
const CAP_MARK = (line: string) => /^\s*\d\d:\d\d (\S+:\S+)\s*$/.exec(line)?.[1];

/** The `n` longest steps between marks: "venv 4.1 s, restart 2.0 s, ...". */
export function slowest(marks: Mark[], n: number): string {
  const sorted = [...marks].sort((a, b) => a.at - b.at);
  const d = new Map<string, number>();
  for (let i = 0; i < sorted.length - 1; i++) {
    d.set(sorted[i].step, (d.get(sorted[i].step) ?? 0) + sorted[i + 1].at - sorted[i].at);
  }
  return [...d.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, v]) => `${k} ${seconds(v)}`)
    .join(", ");
}

/** The step that ran at `at`: the last mark at or before it. */
function stepAt(marks: Mark[], at: number, before: string): string {
  let step = before;
  for (const m of marks) if (m.at <= at) step = m.step;
  return step;
}

/** A load phase's failures, reads and writes apart, by the step (the last mark) they happened in. */
export function classify(phase: PhaseTally, marks: Mark[], before: string): Failures {
  const byStep: Failures["byStep"] = {};
  for (const f of phase.failures) {
    const s = stepAt(marks, f.at, before);
    byStep[s] ??= { reads: 0, writes: 0 };
    byStep[s][f.kind === "read" ? "reads" : "writes"]++;
  }
  const reasons: Record<string, number> = {};
  for (const t of [phase.read, phase.write])
    for (const [k, v] of Object.entries(t.reasons)) reasons[k] = (reasons[k] ?? 0) + v;
  const at = phase.failures.map((f) => f.at);
  const spanMs = at.length > 1 ? Math.max(...at) - Math.min(...at) : 0;
  return {
    reads: phase.read.failed,
    writes: phase.write.failed,
    sent: { reads: phase.read.ok + phase.read.failed, writes: phase.write.ok + phase.write.failed },
    byStep,
    reasons,
    spanMs,
  };
}

export async function startPeers(opts: {
  w: World;
  h: RigHost;
  s3: S3Client;
  base: Artifact;
  out: string;
  upload: (a: Artifact) => Promise<{ key: string; sha256: string }>;
  /** Runs one step as the program builds it (components/remote.ts, through the world's values). */
  stepRun: (call: StepCall) => Promise<StepRun>;
  /** greenlight's live colour and its release when the section starts. */
  live: { colour: "blue" | "green"; release: string };
  idle: { release: string };
  concurrency: number;
  ratePerClient: number;
  world: Stops;
}): Promise<Peers> {
  const { w, h, s3, base, out } = opts;
  ensurePeerPackages();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gl-peers-"));
  opts.world.add("the peers' directory", () => fs.rmSync(dir, { recursive: true, force: true }));
  // The bench world's deploy key, and the host's key pinned for both tools.
  const keyFile = path.join(dir, "id_ed25519");
  fs.writeFileSync(keyFile, w.deployKey.privateKey, { mode: 0o600 });
  const knownHosts = path.join(dir, "known_hosts");
  fs.writeFileSync(knownHosts, `${h.ip} ${h.hostKey.publicKey}\n`);
  const controlDir = path.join(dir, "cp");
  fs.mkdirSync(controlDir, { mode: 0o700 });
  // OpenSSH's ControlPersist masters (Ansible's connection reuse) outlive ansible-playbook by a
  // minute: ended here, by their sockets.
  opts.world.add("Ansible's SSH control masters", () => {
    for (const s of fs.existsSync(controlDir) ? fs.readdirSync(controlDir) : []) {
      spawnSync("ssh", ["-o", `ControlPath=${path.join(controlDir, s)}`, "-O", "exit", h.ip], { stdio: "ignore" });
    }
  });
  const inventory = path.join(dir, "inventory.ini");
  const sshArgs = `-o UserKnownHostsFile=${knownHosts} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes`;
  fs.writeFileSync(
    inventory,
    "[qa]\n" +
      `rig ansible_host=${h.ip} ansible_user=deploy admin_user=admin ` +
      `ansible_ssh_private_key_file=${keyFile} ansible_ssh_common_args='${sshArgs}'\n`,
  );
  const toolEnv = (extra: Record<string, string>): NodeJS.ProcessEnv => ({
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: dir,
    LANG: "C.UTF-8",
    PEER_DB_HOST: w.pg.host,
    PEER_DB_PORT: String(w.pg.port),
    ...extra,
  });
  const ansibleEnv = (extra: Record<string, string> = {}) =>
    toolEnv({
      ANSIBLE_CONFIG: path.join(PEERS_DIR, "ansible", "ansible.cfg"),
      ANSIBLE_SSH_CONTROL_PATH_DIR: controlDir,
      ANSIBLE_LOCAL_TEMP: path.join(dir, "ansible-tmp"),
      ANSIBLE_NOCOLOR: "1",
      ...extra,
    });
  const capEnv = (extra: Record<string, string> = {}) =>
    toolEnv({
      PEER_HOST: h.ip,
      PEER_SSH_KEY: keyFile,
      PEER_KNOWN_HOSTS: knownHosts,
      PEER_LOG_FILE: path.join(dir, "capistrano.log"),
      PEER_ARTIFACT: base.file,
      PEER_REVISION: "none",
      NO_COLOR: "1",
      ...extra,
    });
  const ansible = (playbook: string, vars: Record<string, string>) =>
    runTool(
      "ansible-playbook",
      ["-i", inventory, playbook, ...Object.entries(vars).flatMap(([k, v]) => ["-e", `${k}=${v}`])],
      { cwd: path.join(PEERS_DIR, "ansible"), env: ansibleEnv(), mark: ANSIBLE_MARK },
    );
  const cap = (task: string, env: Record<string, string> = {}) =>
    runTool("cap", ["qa", task], { cwd: path.join(PEERS_DIR, "capistrano"), env: capEnv(env), mark: CAP_MARK });

  // --- provisioning (untimed): what a team sets up once per tool ---------------------------
  progress("section 6: greenlight, Ansible and Capistrano side by side; provisioning the peers (untimed)");
  const setup = fs.readFileSync(path.join(PEERS_DIR, "host-setup.sh"), "utf8");
  const env = [
    `SECRET_KEY=${w.secrets.secretKey}`,
    `DATABASE_URL=postgres://${APP}:${w.secrets.dbPassword}@${w.pg.host}:${w.pg.port}/${APP}?sslmode=require`,
    `ALLOWED_HOSTS=${SITE_HOST}`,
    "HTTPS=off",
    "HEALTH_PATH=/healthz",
    `ADMIN_PATH=${w.secrets.adminPath}`,
  ].join("\n");
  const pgpass = [w.pg.host, String(w.pg.port), APP, APP, w.secrets.dbPassword]
    .map((v) => v.replace(/\\/g, "\\\\").replace(/:/g, "\\:"))
    .join(":");
  const root = async (argv: string[], input?: string) => {
    const r = await h.exec(argv, { input });
    if (r.code !== 0) throw new Error(`${argv.join(" ")} on ${h.name}: ${r.stderr}`);
    return r.stdout;
  };
  const writeAs = (file: string, content: string) =>
    root(["bash", "-c", 'umask 077 && cat >"$1" && chown deploy:deploy "$1"', "-", file], `${content}\n`);
  for (const p of PEERS) {
    await root(["bash", "-s", "--", p, String(PEER_PORTS[p].nginx), String(PEER_PORTS[p].gunicorn)], setup);
    await writeAs(`/srv/${p}-site/shared/.env`, env);
  }
  await writeAs("/home/deploy/.pgpass", pgpass);

  // --- the load balancer stand-in: one target group per tool, one listener --------------------
  const alb: AlbStandIn = startAlbStandIn({ intervalMs: 500 });
  opts.world.add("the load balancer stand-in", () => alb.close());
  const arn = (g: string) => `arn:bench:${g}`;
  for (const [g, port] of [
    ["blue", SLOT_PORTS.blue],
    ["green", SLOT_PORTS.green],
    ["ansible", PEER_PORTS.ansible.nginx],
    ["capistrano", PEER_PORTS.capistrano.nginx],
  ] as const) {
    alb.targetGroup(arn(g), "/healthz");
    alb.attach(arn(g), h.ip, port);
  }
  await alb.listen(80, arn(opts.live.colour), SITE_HOST);
  const url = alb.url(80)!;
  const served = async () => {
    try {
      const r = await getThrough(url, "/healthz");
      return r.status === 200 ? r.body.trim() : String(r.status);
    } catch {
      return "-";
    }
  };
  /** Polls (bounded) until the load balancer serves `release`; the time since `since`. */
  const waitServed = async (release: string, since: number) => {
    for (let i = 0; i < 1200 && (await served()) !== release; i++) await sleep(25);
    return Date.now() - since;
  };
  const waitHealthy = async (group: string) => {
    for (let i = 0; i < 600 && !Object.values(alb.health(arn(group))).every(Boolean); i++) await sleep(25);
  };

  // --- each tool's first release (untimed: creates its directories, its first venv) ---------
  const current: Record<Tool, string> = { greenlight: opts.live.release, ansible: "", capistrano: "" };
  const previous: Record<Tool, string> = { greenlight: opts.idle.release, ansible: "", capistrano: "" };
  const gl = { live: opts.live.colour };
  const firstMs = { greenlight: 0 } as Record<Tool, number>;
  const peerRelease = async (p: Peer, release: string, artifact: Artifact) =>
    p === "ansible"
      ? ansible("deploy.yml", { release_id: release, artifact: artifact.file })
      : cap("deploy", { PEER_ARTIFACT: artifact.file, PEER_REVISION: release });
  for (const p of PEERS) {
    for (const release of [`${p}-p0`]) {
      const r = await peerRelease(p, release, await pipVariant(base, out, "peers"));
      firstMs[p] ||= r.ms;
      previous[p] = current[p];
      current[p] = release;
      progress(`  ${p}: release ${release} ${seconds(r.ms)} (untimed set-up)`);
    }
  }
  await waitHealthy("ansible");
  await waitHealthy("capistrano");

  // --- greenlight's release and rollback, step by step as the program runs them -----------
  const greenlightRelease = async (release: string, artifact: Artifact, marks: Mark[]) => {
    const idle = gl.live === "blue" ? "green" : "blue";
    const ref = await opts.upload(artifact);
    const started = Date.now();
    const step = async (name: "fetch" | "check" | "backup" | "migrate" | "activate" | "cleanup", call: StepCall) => {
      marks.push({ at: Date.now(), step: name });
      return opts.stepRun(call);
    };
    // The program's step sequence on the first host (components/release.ts): fetch, the
    // migration safety check against the serving colour's release, backup, migrate, activate.
    await step("fetch", w.values.fetch(idle, release, ref));
    await step("check", w.values.check(release, idle));
    const backup = await step("backup", w.values.backup(release, idle));
    await step("migrate", w.values.migrate(release, idle));
    const activate = await step("activate", w.values.activate(idle, release));
    // The listener moves once the load balancer sees the idle colour healthy.
    marks.push({ at: Date.now(), step: "cutover" });
    await waitHealthy(idle);
    await alb.listen(80, arn(idle), SITE_HOST);
    await step("cleanup", w.values.cleanup(2));
    const ms = Date.now() - started;
    await s3.send(new DeleteObjectCommand({ Bucket: w.backupBucket, Key: String(backup.out.key) }));
    gl.live = idle;
    const text = activate.lines.map((l) => l.text).join("\n");
    return { ms, started, activation: /reloaded slot \w+ gracefully/.test(text) ? "reload" : "restart" };
  };

  // --- the load: reads and writes through the load balancer ----------------------------------
  // The rig's mixed load (test/rig/load.ts), as the tests use it: GETs of the API's list and the
  // health path, and one request in `writeEvery` a POST that creates a note or updates one
  // created before, through the site's own write path, into the one database all three share.
  const paths = [LIST, "/healthz", "/healthz"];
  const writeEvery = 4;
  const startLoads = (): MixedLoad =>
    startMixedLoad({
      bases: [url],
      reads: paths,
      update: (id) => `/api/notes/${id}`,
      writeEvery,
      concurrency: opts.concurrency,
      ratePerClient: opts.ratePerClient,
      maxRequests: 10_000_000,
      maxMs: 60 * 60_000,
      phase: "warm-up",
    });

  const pointAt = async (t: Tool) => {
    const group = t === "greenlight" ? gl.live : t;
    await waitHealthy(group);
    await alb.listen(80, arn(group), SITE_HOST);
    await waitServed(current[t], Date.now());
  };

  return {
    async series(s) {
      const result: PeersResult = {
        concurrency: opts.concurrency,
        ratePerClient: opts.ratePerClient,
        paths,
        writes:
          `one request in ${writeEvery} is a POST through the site's write path: a new note (/api/notes) ` +
          "or an update of one created before (/api/notes/<id>), every other write",
        artifactBytes: base.size,
        releases: [],
        rollbacks: [],
        floor: [],
        firstMs,
      };
      const load = startLoads();
      opts.world.add("the peers' load", () => load.stop());
      try {
        await load.until(100);
        for (let round = 0; round < s.rounds.length; round++) {
          const kind = s.rounds[round];
          const artifact =
            kind === "cold" ? await coldVariant(base, out, `p${round}`) : await warmVariant(base, out, `p${round}`);
          // The peers build with pip and never read greenlight's tools/ (the uv wheel): their copy
          // is the same artifact without it, so they do not upload bytes they do not use.
          const peerArtifact = await pipVariant(artifact, out, `p${round}`);
          for (const t of TOOLS) {
            const release = `${t}-${kind}${round}`;
            await pointAt(t);
            load.phase(`release ${release}`);
            const marks: Mark[] = [];
            let ms: number;
            let started: number;
            let activation: string | undefined;
            if (t === "greenlight") {
              ({ ms, started, activation } = await greenlightRelease(release, artifact, marks));
            } else {
              started = Date.now();
              const r = await peerRelease(t, release, peerArtifact);
              ms = r.ms;
              marks.push(...r.marks);
            }
            marks.push({ at: Date.now(), step: "(after the run)" });
            const servedMs = await waitServed(release, started);
            await sleep(SETTLE_MS);
            const p = load.phase("between runs");
            previous[t] = current[t];
            current[t] = release;
            const failures = classify(p, marks, "(before the run)");
            result.releases.push({
              tool: t,
              round,
              kind,
              release,
              ms,
              servedMs,
              activation,
              requests: requestsOf(p),
              failures,
              marks: marks.map((m) => ({ at: m.at - started, step: m.step })),
            });
            progress(
              `  round ${round + 1} (${kind}) ${t}: ${seconds(ms)}, served after ${seconds(servedMs)}` +
                `${activation ? ` (${activation})` : ""}; ${requestsOf(p)} requests, ${failures.reads} reads and ` +
                `${failures.writes} writes failed over ${seconds(failures.spanMs)}`,
            );
            progress(`    ${slowest(marks, 5)}`);
          }
          if (!s.rollbackAfter.includes(round)) continue;
          for (const t of TOOLS) {
            await pointAt(t);
            const from = current[t];
            load.phase(`rollback ${from}`);
            const marks: Mark[] = [];
            const to = previous[t];
            const started = Date.now();
            if (t === "greenlight") {
              // What `npm run rollback` + `pulumi up` changes: the listener, back to the other colour.
              const back = gl.live === "blue" ? "green" : "blue";
              marks.push({ at: started, step: "listener" });
              await alb.listen(80, arn(back), SITE_HOST);
              gl.live = back;
            } else if (t === "ansible") {
              marks.push(...(await ansible("rollback.yml", {})).marks);
            } else {
              marks.push(...(await cap("deploy:rollback")).marks);
            }
            const ms = Date.now() - started;
            marks.push({ at: Date.now(), step: "(after the run)" });
            const servedMs = await waitServed(to, started);
            await sleep(SETTLE_MS);
            const p = load.phase("between runs");
            current[t] = to;
            previous[t] = from;
            const failures = classify(p, marks, "(before the run)");
            result.rollbacks.push({
              tool: t,
              round,
              from,
              to,
              ms,
              servedMs,
              requests: requestsOf(p),
              failures,
            });
            progress(
              `  rollback ${t} ${from} -> ${to}: ${seconds(ms)}, served after ${seconds(servedMs)}; ` +
                `${requestsOf(p)} requests, ${failures.reads} reads and ${failures.writes} writes failed over ` +
                `${seconds(failures.spanMs)}`,
            );
          }
          // After a rollback every tool releases on top of the release it went back to.
        }
      } finally {
        await load.stop();
      }
      result.floor = await floor(w, h, base, 3);
      return result;
    },
    backups() {
      // Each dump is removed once measured (untimed): the host's tmpfs holds the releases too.
      const drop = (p: Peer) => root(["bash", "-c", 'rm -f -- "$1"/*.dump', "-", `/srv/${p}-site/shared/backups`]);
      return [
        {
          name: "ansible",
          run: async (i) => {
            const { ms } = await ansible("backup.yml", { release_id: `bench${i}` });
            await drop("ansible");
            return ms;
          },
        },
        {
          name: "capistrano",
          run: async () => {
            const { ms } = await cap("site:backup");
            await drop("capistrano");
            return ms;
          },
        },
      ];
    },
  };
}

/**
 * The physical floor of a release on this host, in one SSH session as deploy, each part timed on
 * the host: unpacking the artifact (tar -xzf), swapping a symlink (ln + rename), and booting
 * gunicorn cold on the site (an existing venv: the Ansible peer's) until its first 200.
 */
async function floor(w: World, h: RigHost, base: Artifact, runs: number): Promise<FloorSample[]> {
  progress(`  the physical floor: unpack, symlink swap, cold gunicorn boot to the first 200 (${runs} runs)`);
  const tarball = "/srv/ansible-site/floor.tar.gz";
  await h.exec(["bash", "-c", 'base64 -d >"$1" && chown deploy:deploy "$1"', "-", tarball], {
    input: fs.readFileSync(base.file).toString("base64"),
  });
  const script = `set -Eeuo pipefail
d=$(mktemp -d /srv/ansible-site/floor.XXXXXX)
now() { date +%s%N; }
t0=$(now)
mkdir "$d/r" && tar -xzf ${tarball} -C "$d/r" --transform 's,^app\\(/\\|$\\),,'
t1=$(now)
ln -sfn "$d/r" "$d/next" && mv -T "$d/next" "$d/current"
t2=$(now)
ln -s /srv/ansible-site/shared/.env "$d/r/.env"
/srv/ansible-site/current/venv/bin/gunicorn --workers 2 --bind 127.0.0.1:9099 --chdir "$d/current" \\
  greenlight_site.wsgi:application >/dev/null 2>&1 &
pid=$!
ok=0
for _ in $(seq 1 1000); do
  if curl -fsS -o /dev/null -H 'Host: ${SITE_HOST}' http://127.0.0.1:9099/healthz 2>/dev/null; then ok=1; break; fi
  sleep 0.01
done
t3=$(now)
kill "$pid"; wait "$pid" || true
rm -rf "$d"
[[ $ok == 1 ]] || { echo "gunicorn never answered 200" >&2; exit 1; }
echo "$(( (t1 - t0) / 1000 )) $(( (t2 - t1) / 1000 )) $(( (t3 - t2) / 1000 ))"
`;
  const samples: FloorSample[] = [];
  for (let i = 0; i < runs; i++) {
    const r = await runRemote(w.connection(h, "deploy"), `bash -c ${shellQuote(script)}`, { timeoutMs: 120_000 });
    if (r.code !== 0) throw new Error(`the floor's run failed: ${r.stderr}`);
    const [u, s, b] = r.stdout.trim().split(/\s+/).map(Number);
    samples.push({ unpackMs: u / 1000, symlinkMs: s / 1000, bootMs: b / 1000 });
    progress(`    unpack ${seconds(u / 1000)}, symlink ${(s / 1000).toFixed(2)} ms, cold boot ${seconds(b / 1000)}`);
  }
  await h.exec(["rm", "-f", tarball]);
  return samples;
}

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
