// Local stand-ins for fresh Debian 12 EC2 instances, reachable over real SSH.
//
// Each host is a network namespace (veth to a bridge in the machine's namespace) plus
// mount, pid, uts and ipc namespaces, with tini as PID 1. It shares the machine's
// installed packages (/usr, /var/lib/dpkg) and gets private copies of what a boot and a
// bootstrap script change (/etc, /run, /var/log, /home, /srv, ...), so scripts can
// useradd, install sudoers and service configs, and reload services without touching the
// machine or each other. See host-init.sh for what happens inside a host at "boot".
import { ChildProcess, execFile, spawn, spawnSync } from "child_process";
import { randomBytes } from "crypto";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";

export interface RigHost {
  name: string;
  ip: string;
  hostKey: { privateKey: string; publicKey: string };
  root: string;
  /** Runs argv as root INSIDE the host's namespaces (net, mount, pid) — for test assertions and fault injection. */
  exec(
    argv: string[],
    opts?: { input?: string; user?: string; timeoutMs?: number },
  ): Promise<{ code: number; stdout: string; stderr: string }>;
}

export interface HostRig {
  bridgeIp: string;
  subnet: string;
  hosts: RigHost[];
  bastion?: RigHost;
  /**
   * Boots one more host, as a new instance boots from its user data: with this host key and
   * this key authorised for admin. The rehearsal starts hosts when the program creates them.
   */
  addHost(spec: {
    name: string;
    hostKey: { privateKey: string; publicKey: string };
    adminAuthorizedKey: string;
  }): Promise<RigHost>;
  /**
   * Fault injection, a disk that is (nearly) full: the tmpfs that holds every host's private
   * dirs (/srv, /var/tmp, /var/log, ...) is resized to what it holds now plus `freeMb`, so
   * the hosts' filesystem has that much left; without an argument it gets its size back.
   */
  limitDisk(freeMb?: number): Promise<void>;
  stop(): Promise<void>;
}

export interface StartHostsOptions {
  count: number;
  bastion?: boolean;
  adminAuthorizedKey: string;
  hostKeys?: { privateKey: string; publicKey: string }[];
  bastionHostKey?: { privateKey: string; publicKey: string };
  sshdSetEnv?: Record<string, string>;
  prefix?: string;
  subnetIndex?: number;
  /**
   * Users (and their groups) a fresh instance does not have, dropped from the hosts' copy
   * of /etc if the machine has them (see scrubEtc). Users with uid 1000-59999 always are.
   */
  freshUsers?: string[];
  /** Cap of the tmpfs holding every host's private dirs (/srv, /etc, /var/log, ...); default "8g". */
  tmpfsSize?: string;
}

const STD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const INIT_SCRIPT = path.join(__dirname, "host-init.sh");
const SERVICE_SCRIPT = path.join(__dirname, "host-service.sh");
const CLEANUP_SCRIPT = path.join(__dirname, "host-cleanup.sh");

/** Copied whole from the machine: useradd, sudoers, nginx, supervisor and sshd configs change here. */
const COPIED = ["etc"];
/** Directory tree (and empty files such as wtmp) copied with owners and modes, contents not. */
const TREES = ["var/log", "var/lib/nginx", "var/cache/nginx", "var/lib/sudo", "var/mail", "var/lib/logrotate"];
/** Fresh, empty. */
const FRESH: Record<string, number> = {
  srv: 0o755,
  home: 0o755,
  root: 0o700,
  run: 0o755,
  tmp: 0o1777,
  "var/tmp": 0o1777,
};

const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 30_000;

/** ssh-keygen -t ed25519 without passphrase, in OpenSSH formats. */
export function generateHostKey(): { privateKey: string; publicKey: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "glt-key-"));
  try {
    const file = path.join(dir, "key");
    const r = spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "", "-f", file], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.error?.message ?? r.stderr}`);
    return {
      privateKey: fs.readFileSync(file, "utf8"),
      publicKey: fs.readFileSync(`${file}.pub`, "utf8").trim(),
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

interface CmdResult {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<CmdResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { encoding: "utf8", timeout: opts.timeoutMs ?? 60_000, maxBuffer: 64 * 1024 * 1024, env: cleanEnv() },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== "number") {
          reject(new Error(`${cmd} ${args.join(" ")}: ${err.message}${stderr ? `\n${stderr}` : ""}`));
          return;
        }
        resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
      },
    );
    child.stdin?.on("error", () => undefined); // a command may exit without reading its input
    child.stdin?.end(opts.input ?? "");
  });
}

async function must(cmd: string, args: string[]): Promise<string> {
  const r = await run(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** What the host's processes start with: nothing of the test process' environment leaks in. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { PATH: STD_PATH, LANG: "C.UTF-8", ...extra };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function writeFile(file: string, content: string, mode: number): void {
  fs.writeFileSync(file, content, { mode });
  fs.chmodSync(file, mode); // the umask applies to writeFileSync's mode
}

/** mkdir -p with the machine's owner and mode at every level, files only if empty. */
function copyTree(src: string, dst: string): void {
  const st = fs.lstatSync(src);
  fs.mkdirSync(dst);
  fs.chownSync(dst, st.uid, st.gid);
  fs.chmodSync(dst, st.mode & 0o7777);
  for (const entry of fs.readdirSync(src, { withFileTypes: true })) {
    const s = path.join(src, entry.name);
    const d = path.join(dst, entry.name);
    if (entry.isDirectory()) {
      copyTree(s, d);
    } else if (entry.isFile()) {
      const fst = fs.lstatSync(s);
      if (fst.size !== 0) continue;
      fs.writeFileSync(d, "");
      fs.chownSync(d, fst.uid, fst.gid);
      fs.chmodSync(d, fst.mode & 0o7777);
    }
  }
}

/**
 * Drop-in directories whose content on a fresh Debian 12 image is exactly the packages'
 * conffiles (plus nginx's default site link).
 */
const DROP_IN_DIRS = [
  "sudoers.d",
  "ssh/sshd_config.d",
  "supervisor/conf.d",
  "nginx/conf.d",
  "nginx/sites-available",
  "nginx/sites-enabled",
  "logrotate.d",
  "cron.d",
];

let conffileCache: Set<string> | undefined;
function packageConffiles(): Set<string> {
  if (conffileCache) return conffileCache;
  const set = new Set<string>();
  const info = "/var/lib/dpkg/info";
  for (const f of fs.readdirSync(info)) {
    if (!f.endsWith(".conffiles")) continue;
    for (const line of fs.readFileSync(path.join(info, f), "utf8").split("\n")) {
      const file = line.trim().split(/\s+/)[0];
      if (file) set.add(file);
    }
  }
  conffileCache = set;
  return set;
}

/**
 * Makes a copy of the machine's /etc look like a fresh instance's: whatever was installed
 * on the machine itself by running deploy scripts there (users, sudoers, service configs)
 * must not be on the hosts, or the bootstrap would find its own work already done.
 * Returns what it removed.
 */
function scrubEtc(etc: string, freshUsers: string[]): string[] {
  const removed: string[] = [];
  const conffiles = packageConffiles();
  for (const d of DROP_IN_DIRS) {
    const dir = path.join(etc, d);
    if (!fs.existsSync(dir)) continue;
    for (const f of fs.readdirSync(dir)) {
      if (conffiles.has(`/etc/${d}/${f}`)) continue;
      if (d === "nginx/sites-enabled" && f === "default") continue;
      fs.rmSync(path.join(dir, f), { recursive: true, force: true });
      removed.push(`/etc/${d}/${f}`);
    }
  }
  const site = path.join(etc, "nginx", "sites-enabled", "default");
  if (fs.existsSync(path.join(etc, "nginx", "sites-available", "default")) && !fs.existsSync(site)) {
    fs.symlinkSync("/etc/nginx/sites-available/default", site);
  }

  // cloud-init creates admin on first boot; a fresh image has no account in the human range.
  const isFresh = (name: string, id: number): boolean =>
    name === "admin" || freshUsers.includes(name) || (id >= 1000 && id < 60000);
  const edit = (file: string, keep: (fields: string[]) => boolean, map?: (fields: string[]) => string[]): void => {
    const p = path.join(etc, file);
    if (!fs.existsSync(p)) return;
    const lines = fs.readFileSync(p, "utf8").split("\n");
    const out = lines.filter((l) => !l || keep(l.split(":"))).map((l) => (l && map ? map(l.split(":")).join(":") : l));
    if (out.length !== lines.length || out.some((l, i) => l !== lines[i])) {
      const st = fs.statSync(p);
      fs.writeFileSync(p, out.join("\n"));
      fs.chmodSync(p, st.mode & 0o7777);
      fs.chownSync(p, st.uid, st.gid);
    }
  };
  const goneUsers = new Set<string>();
  const goneGroups = new Set<string>();
  const passwd = path.join(etc, "passwd");
  for (const l of fs.readFileSync(passwd, "utf8").split("\n")) {
    const f = l.split(":");
    if (f.length >= 4 && isFresh(f[0], Number(f[2]))) goneUsers.add(f[0]);
  }
  for (const l of fs.readFileSync(path.join(etc, "group"), "utf8").split("\n")) {
    const f = l.split(":");
    if (f.length >= 4 && isFresh(f[0], Number(f[2]))) goneGroups.add(f[0]);
  }
  const dropMembers = (f: string[], idx: number): string[] => {
    const g = [...f];
    if (g[idx] !== undefined)
      g[idx] = g[idx]
        .split(",")
        .filter((m) => m && !goneUsers.has(m))
        .join(",");
    return g;
  };
  edit("passwd", (f) => !goneUsers.has(f[0]));
  edit("shadow", (f) => !goneUsers.has(f[0]));
  edit("subuid", (f) => !goneUsers.has(f[0]));
  edit("subgid", (f) => !goneUsers.has(f[0]));
  edit(
    "group",
    (f) => !goneGroups.has(f[0]),
    (f) => dropMembers(f, 3),
  );
  edit(
    "gshadow",
    (f) => !goneGroups.has(f[0]),
    (f) => dropMembers(dropMembers(f, 3), 2),
  );
  removed.push(...[...goneUsers].map((u) => `user ${u}`), ...[...goneGroups].map((g) => `group ${g}`));
  return removed;
}

let scrubReported = false;

function validateSetEnv(env: Record<string, string>): string {
  const parts = Object.entries(env).map(([k, v]) => {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new Error(`sshdSetEnv: bad variable name ${JSON.stringify(k)}`);
    // sshd_config tokenises quotes and backslashes; values here never need them.
    if (/["'\\\r\n\0]/.test(v)) throw new Error(`sshdSetEnv: value of ${k} has a quote, backslash or newline`);
    return `"${k}=${v}"`;
  });
  return parts.join(" ");
}

/** The machine's own IPv4 addresses outside 127/8, which hosts must not reach. */
async function machineAddresses(): Promise<string[]> {
  const out = await must("ip", ["-4", "-o", "addr", "show"]);
  const addrs: string[] = [];
  for (const line of out.split("\n")) {
    const m = /\sinet\s+(\d+\.\d+\.\d+\.\d+)\//.exec(line);
    if (m && !m[1].startsWith("127.")) addrs.push(m[1]);
  }
  return addrs;
}

function cleanupArgs(prefix: string, root: string, initPids: number[]): string[] {
  return [CLEANUP_SCRIPT, prefix, root, ...initPids.map(String)];
}

async function cleanup(prefix: string, root: string, initPids: number[] = []): Promise<void> {
  const r = await run("/bin/sh", cleanupArgs(prefix, root, initPids), { timeoutMs: STOP_TIMEOUT_MS });
  if (r.code !== 0) throw new Error(`rig cleanup (${prefix}) failed: ${r.stderr.trim()}`);
}

/**
 * State and start time (clock ticks since boot) of a process: pids are reused, the pair of
 * pid and start time is not.
 */
function processStat(pid: number): { state: string; start: string } {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { state: fields[0], start: fields[19] };
}

/**
 * The pid owning the rig directory, if that process still runs (and is not this one). A
 * killed owner that its parent has not reaped yet is a zombie (state Z, or X while it is
 * being reaped): it holds no namespace and no host any more, so it owns nothing.
 */
function liveOwner(root: string): number | undefined {
  try {
    const [pidText, start] = fs.readFileSync(path.join(root, "owner"), "utf8").trim().split(" ");
    const pid = Number(pidText);
    if (!pid || pid === process.pid) return undefined;
    const stat = processStat(pid);
    if (stat.state === "Z" || stat.state === "X") return undefined;
    return stat.start === start ? pid : undefined;
  } catch {
    return undefined; // no owner file, or the owner is gone
  }
}

// ---- process exit: every rig still running is torn down -----------------------------------

const liveRigs = new Map<string, { root: string; initPids: number[] }>();
let handlersInstalled = false;

function cleanupAllSync(): void {
  for (const [prefix, { root, initPids }] of liveRigs) {
    spawnSync("/bin/sh", cleanupArgs(prefix, root, initPids), {
      stdio: "ignore",
      timeout: STOP_TIMEOUT_MS,
      env: cleanEnv(),
    });
  }
  liveRigs.clear();
}

function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on("exit", cleanupAllSync);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    const onSignal = (): void => {
      cleanupAllSync();
      process.removeListener(sig, onSignal);
      // Let other handlers decide; alone, die of the signal as if nobody had listened.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

// ---- one host ------------------------------------------------------------------------------

interface HostSpec {
  name: string;
  ip: string;
  hostKey: { privateKey: string; publicKey: string };
}

interface StartedHost extends RigHost {
  initPid: number;
  child: ChildProcess;
}

function mountPaths(): string[] {
  const paths = [...COPIED, ...Object.keys(FRESH)];
  for (const t of TREES) if (fs.existsSync(`/${t}`)) paths.push(t);
  return paths;
}

async function prepareHostDir(
  dir: string,
  spec: HostSpec,
  adminKey: string,
  sshdConf: string,
  setEnvNames: string[],
  freshUsers: string[],
): Promise<void> {
  const fsDir = path.join(dir, "fs");
  fs.mkdirSync(path.join(fsDir, "var/lib"), { recursive: true });
  fs.mkdirSync(path.join(fsDir, "var/cache"), { recursive: true });
  fs.mkdirSync(path.join(dir, "bin"));

  await must("cp", ["-a", "/etc", path.join(fsDir, "etc")]);
  for (const t of TREES) if (fs.existsSync(`/${t}`)) copyTree(`/${t}`, path.join(fsDir, t));
  for (const [p, mode] of Object.entries(FRESH)) {
    fs.mkdirSync(path.join(fsDir, p), { recursive: true });
    fs.chmodSync(path.join(fsDir, p), mode);
  }

  // A fresh /run as a booting Debian has it (and without /run/systemd/system, so that
  // `service` and the LSB init functions never try systemctl).
  const runDir = path.join(fsDir, "run");
  for (const [p, mode] of [
    ["sshd", 0o755],
    ["lock", 0o1777],
    ["sudo", 0o711],
    ["sudo/ts", 0o700],
    ["user", 0o755],
  ] as const) {
    fs.mkdirSync(path.join(runDir, p), { recursive: true });
    fs.chmodSync(path.join(runDir, p), mode);
  }
  const utmpGid = Number((await must("getent", ["group", "utmp"])).split(":")[2]);
  writeFile(path.join(runDir, "utmp"), "", 0o664);
  fs.chownSync(path.join(runDir, "utmp"), 0, utmpGid);

  const etc = path.join(fsDir, "etc");
  const scrubbed = scrubEtc(etc, freshUsers);
  if (scrubbed.length && !scrubReported) {
    scrubReported = true;
    process.stderr.write(
      `host rig: the machine's /etc has what deploy scripts install (${scrubbed.join(", ")}): ` +
        "removed from the hosts' copies. Run such scripts on rig hosts, not on the machine.\n",
    );
  }

  // What cloud-init does on first boot of an EC2 Debian image.
  for (const f of fs.readdirSync(path.join(etc, "ssh"))) {
    if (f.startsWith("ssh_host_")) fs.rmSync(path.join(etc, "ssh", f));
  }
  writeFile(path.join(etc, "ssh", "ssh_host_ed25519_key"), spec.hostKey.privateKey.replace(/\n*$/, "\n"), 0o600);
  writeFile(path.join(etc, "ssh", "ssh_host_ed25519_key.pub"), `${spec.hostKey.publicKey.trim()}\n`, 0o644);
  writeFile(path.join(etc, "ssh", "sshd_config.d", "00-rig.conf"), sshdConf.replace("@IP@", spec.ip), 0o644);
  writeFile(
    path.join(etc, "sudoers.d", "90-cloud-init-users"),
    "# Created by cloud-init (greenlight test rig)\n\n# User rules for admin\nadmin ALL=(ALL) NOPASSWD:ALL\n",
    0o440,
  );
  if (setEnvNames.length) {
    // On EC2 the instance role reaches every process through IMDS, so `sudo aws ...` and
    // `sudo -u deploy aws ...` work; here the credentials are session variables, which
    // sudo's env_reset would drop.
    writeFile(
      path.join(etc, "sudoers.d", "00-rig-instance-role"),
      `# greenlight test rig: stands in for the instance role\nDefaults env_keep += "${setEnvNames.join(" ")}"\n`,
      0o440,
    );
  }
  writeFile(path.join(etc, "hostname"), `${spec.name}\n`, 0o644);
  fs.appendFileSync(path.join(etc, "hosts"), `127.0.1.1\t${spec.name}\n`);
  writeFile(path.join(etc, "machine-id"), `${randomBytes(16).toString("hex")}\n`, 0o444);

  writeFile(path.join(dir, "admin.pub"), `${adminKey.trim()}\n`, 0o644);
  fs.copyFileSync(SERVICE_SCRIPT, path.join(dir, "bin", "service"));
  fs.chmodSync(path.join(dir, "bin", "service"), 0o755);
}

async function setupNetwork(
  prefix: string,
  spec: HostSpec,
  bridge: string,
  bridgeIp: string,
  forbidden: string[],
): Promise<string> {
  const ns = `${prefix}-${spec.name}`;
  const veth = `${prefix}-${spec.name}`;
  await must("ip", ["netns", "add", ns]);
  await must("ip", ["link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns]);
  noForwarding(veth);
  await must("ip", ["link", "set", veth, "master", bridge, "up"]);
  const inNs = (...args: string[]): Promise<string> => must("ip", ["-n", ns, ...args]);
  await inNs("link", "set", "lo", "up");
  await must("ip", ["netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf.eth0.disable_ipv6=1"]);
  await inNs("addr", "add", `${spec.ip}/24`, "dev", "eth0");
  await inNs("link", "set", "eth0", "up");
  await inNs("route", "add", "default", "via", bridgeIp);
  // The machine's other addresses are local to it, so the bridge would deliver them
  // without forwarding: refuse them in the host, and other rigs' subnets with them.
  await inNs("route", "add", "prohibit", "10.231.0.0/16");
  for (const a of forbidden) await inNs("route", "add", "prohibit", `${a}/32`);
  return ns;
}

/** Packets a host sends to the bridge are never routed on, whatever net.ipv4.ip_forward says. */
function noForwarding(link: string): void {
  fs.writeFileSync(`/proc/sys/net/ipv4/conf/${link}/forwarding`, "0");
  fs.writeFileSync(`/proc/sys/net/ipv6/conf/${link}/disable_ipv6`, "1");
}

/** Resolves with the root-namespace pid of the host's PID 1 once host-init.sh says it is ready. */
function bootHost(ns: string, dir: string, name: string, child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    let out = "";
    let err = "";
    const timer = setTimeout(
      () => fail(new Error(`host ${name} did not boot in ${READY_TIMEOUT_MS} ms`)),
      READY_TIMEOUT_MS,
    );
    const fail = (e: Error): void => {
      clearTimeout(timer);
      reject(new Error(`${e.message}\nstdout: ${out}\nstderr: ${err}`));
    };
    child.stderr?.on("data", (d: Buffer) => (err += d.toString()));
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      if (!out.includes("host-init: ready")) return;
      clearTimeout(timer);
      try {
        resolve(findInit(child.pid as number));
      } catch (e) {
        reject(e);
      }
    });
    child.on("exit", (code, sig) => fail(new Error(`host ${name} (${ns}, ${dir}) exited during boot: ${code ?? sig}`)));
    child.on("error", (e) => fail(e));
  });
}

/** The child that `unshare --fork` made: PID 1 of the host's pid namespace. */
function findInit(unsharePid: number): number {
  const children = fs.readFileSync(`/proc/${unsharePid}/task/${unsharePid}/children`, "utf8").trim().split(/\s+/);
  for (const c of children) {
    const status = fs.readFileSync(`/proc/${c}/status`, "utf8");
    const nspid = /^NSpid:\s+(.*)$/m.exec(status)?.[1].trim().split(/\s+/);
    if (nspid && nspid[nspid.length - 1] === "1") return Number(c);
  }
  throw new Error(`no PID 1 found under unshare ${unsharePid}`);
}

/** Polls until sshd sends its banner on ip:22. */
async function waitForSsh(ip: string, name: string, logFile: string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last = "";
  while (Date.now() < deadline) {
    const banner = await new Promise<string>((resolve) => {
      const sock = net.connect({ host: ip, port: 22, timeout: 1000 });
      let data = "";
      sock.on("data", (d) => {
        data += d.toString();
        if (data.includes("\n")) sock.destroy();
      });
      sock.on("timeout", () => sock.destroy());
      sock.on("error", (e) => {
        last = e.message;
      });
      sock.on("close", () => resolve(data));
    });
    if (banner.startsWith("SSH-2.0-")) return;
    await sleep(50);
  }
  let log = "";
  try {
    log = fs.readFileSync(logFile, "utf8");
  } catch {
    // no log yet
  }
  throw new Error(`sshd of ${name} (${ip}) did not answer in ${READY_TIMEOUT_MS} ms (${last})\n${log}`);
}

function makeExec(initPid: number): RigHost["exec"] {
  return (argv, opts = {}) =>
    new Promise((resolve, reject) => {
      if (argv.length === 0) {
        reject(new Error("exec: empty argv"));
        return;
      }
      const user = opts.user && opts.user !== "root" ? ["runuser", "-u", opts.user, "--"] : [];
      const args = [
        "--target",
        String(initPid),
        "--mount",
        "--uts",
        "--ipc",
        "--net",
        "--pid",
        "--wd=/",
        "--",
        "env",
        "-i",
        `PATH=${STD_PATH}`,
        "LANG=C.UTF-8",
        "HOME=/root",
        ...user,
        ...argv,
      ];
      // A process group of its own, so a timeout kills what nsenter forked inside the host too.
      const child = spawn("nsenter", args, { detached: true, stdio: ["pipe", "pipe", "pipe"], env: cleanEnv() });
      let stdout = "";
      let stderr = "";
      child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
      child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
      const timeoutMs = opts.timeoutMs ?? 60_000;
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        try {
          process.kill(-(child.pid as number), "SIGKILL");
        } catch {
          // already gone
        }
      }, timeoutMs);
      child.on("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.on("close", (code, sig) => {
        clearTimeout(timer);
        if (timedOut) reject(new Error(`exec ${argv.join(" ")} timed out after ${timeoutMs} ms\n${stdout}${stderr}`));
        else resolve({ code: code ?? 128 + (sig ? os.constants.signals[sig] : 0), stdout, stderr });
      });
      child.stdin.on("error", () => undefined); // the command may exit without reading its input
      child.stdin.end(opts.input ?? "");
    });
}

async function startHost(
  prefix: string,
  root: string,
  spec: HostSpec,
  net_: { bridge: string; bridgeIp: string; forbidden: string[] },
  adminKey: string,
  sshdConf: string,
  setEnvNames: string[],
  freshUsers: string[],
  paths: string[],
  onInit: (pid: number) => void,
): Promise<StartedHost> {
  const dir = path.join(root, spec.name);
  fs.mkdirSync(dir, { mode: 0o700 });
  await prepareHostDir(dir, spec, adminKey, sshdConf, setEnvNames, freshUsers);
  const ns = await setupNetwork(prefix, spec, net_.bridge, net_.bridgeIp, net_.forbidden);
  // setpriv: if the test process dies (even of SIGKILL) unshare is killed, and its
  // --kill-child takes PID 1 down, which takes the whole pid namespace with it.
  const child = spawn(
    "setpriv",
    [
      "--pdeathsig",
      "KILL",
      "--",
      "ip",
      "netns",
      "exec",
      ns,
      "unshare",
      "--mount",
      "--uts",
      "--ipc",
      "--pid",
      "--fork",
      "--mount-proc",
      "--propagation",
      "private",
      "--kill-child=SIGKILL",
      "--",
      "tini",
      "--",
      "/bin/sh",
      INIT_SCRIPT,
      dir,
      spec.name,
      ...paths,
    ],
    { stdio: ["ignore", "pipe", "pipe"], env: cleanEnv() },
  );
  const initPid = await bootHost(ns, dir, spec.name, child);
  onInit(initPid);
  // A rig somebody forgot to stop must not keep the test process alive for ever: it exits,
  // and the exit handler tears the rig down.
  child.unref();
  (child.stdout as net.Socket | null)?.unref();
  (child.stderr as net.Socket | null)?.unref();
  await waitForSsh(spec.ip, spec.name, path.join(dir, "fs", "var", "log", "sshd.log"));
  return { ...spec, root: dir, exec: makeExec(initPid), initPid, child };
}

export async function startHosts(opts: StartHostsOptions): Promise<HostRig> {
  const prefix = opts.prefix ?? "glt";
  // Interface names are at most 15 characters: "<prefix>-bastion".
  if (!/^[a-z][a-z0-9]{0,6}$/.test(prefix)) throw new Error(`prefix must match [a-z][a-z0-9]{0,6}: ${prefix}`);
  const subnetIndex = opts.subnetIndex ?? 0;
  if (!Number.isInteger(subnetIndex) || subnetIndex < 0 || subnetIndex > 255) throw new Error("subnetIndex: 0..255");
  if (!Number.isInteger(opts.count) || opts.count < 0 || opts.count > 200) throw new Error("count: 0..200");
  if (opts.tmpfsSize !== undefined && !/^\d+[kmg%]?$/.test(opts.tmpfsSize)) throw new Error("tmpfsSize: like 8g");
  if (process.getuid?.() !== 0) throw new Error("startHosts needs root (network and mount namespaces)");
  if (liveRigs.has(prefix)) throw new Error(`a rig with prefix ${prefix} is already running in this process`);

  const base = `10.231.${subnetIndex}`;
  const bridgeIp = `${base}.1`;
  const subnet = `${base}.0/24`;
  const bridge = `${prefix}-br`;
  const root = path.join(os.tmpdir(), `${prefix}-rig`);

  const specs: HostSpec[] = [];
  for (let i = 0; i < opts.count; i++) {
    specs.push({ name: `h${i}`, ip: `${base}.${10 + i}`, hostKey: opts.hostKeys?.[i] ?? generateHostKey() });
  }
  const bastionSpec: HostSpec | undefined = opts.bastion
    ? { name: "bastion", ip: `${base}.5`, hostKey: opts.bastionHostKey ?? generateHostKey() }
    : undefined;

  const setEnvNames = Object.keys(opts.sshdSetEnv ?? {});
  const freshUsers = opts.freshUsers ?? ["deploy", "app"];
  const setEnv = opts.sshdSetEnv && Object.keys(opts.sshdSetEnv).length ? validateSetEnv(opts.sshdSetEnv) : "";
  const sshdConf = [
    "# greenlight test rig: what the instance's network and role give a real host",
    "ListenAddress @IP@",
    "ListenAddress 127.0.0.1",
    ...(setEnv ? [`SetEnv ${setEnv}`] : []),
    "",
  ].join("\n");

  // Another live test process using this prefix (someone else's run on the same machine)
  // must not be torn down as if it were a crashed leftover.
  const owner = liveOwner(root);
  if (owner)
    throw new Error(`rig prefix "${prefix}" is in use by live process ${owner}: pick another prefix and subnetIndex`);
  // A crashed earlier run with this prefix leaves namespaces, links and its directory.
  await cleanup(prefix, root);
  const clash = (await must("ip", ["-4", "-o", "addr", "show"])).split("\n").find((l) => l.includes(` inet ${base}.`));
  if (clash) throw new Error(`subnet ${subnet} is already in use on this machine: ${clash.trim()}`);
  installExitHandlers();
  const initPids: number[] = [];
  liveRigs.set(prefix, { root, initPids });

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= cleanup(prefix, root, initPids).finally(() => liveRigs.delete(prefix));
    return stopping;
  };

  try {
    fs.mkdirSync(root, { mode: 0o755 });
    // The machine's disk makes each file creation cost about a millisecond (copying /etc
    // three times took 2-10 s); a tmpfs takes 0.1 s, and makes venv builds in /srv fast.
    await must("mount", ["-t", "tmpfs", "-o", `size=${opts.tmpfsSize ?? "8g"},mode=0755`, `${prefix}-rig`, root]);
    fs.writeFileSync(path.join(root, "owner"), `${process.pid} ${processStat(process.pid).start}\n`);
    await must("ip", ["link", "add", bridge, "type", "bridge"]);
    noForwarding(bridge);
    await must("ip", ["addr", "add", `${bridgeIp}/24`, "dev", bridge]);
    await must("ip", ["link", "set", bridge, "up"]);
    const forbidden = await machineAddresses();
    const netOpts = { bridge, bridgeIp, forbidden: forbidden.filter((a) => a !== bridgeIp) };
    const paths = mountPaths();
    const all = [...specs, ...(bastionSpec ? [bastionSpec] : [])];
    const settled = await Promise.allSettled(
      all.map((s) =>
        startHost(prefix, root, s, netOpts, opts.adminAuthorizedKey, sshdConf, setEnvNames, freshUsers, paths, (pid) =>
          initPids.push(pid),
        ),
      ),
    );
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
    const started = settled.map((r) => (r as PromiseFulfilledResult<StartedHost>).value);
    const strip = (h: StartedHost): RigHost => ({
      name: h.name,
      ip: h.ip,
      hostKey: h.hostKey,
      root: h.root,
      exec: h.exec,
    });
    const taken = new Set(all.map((h) => h.name));
    let nextIp = 10 + specs.length;
    return {
      bridgeIp,
      subnet,
      hosts: started.slice(0, specs.length).map(strip),
      bastion: bastionSpec ? strip(started[specs.length]) : undefined,
      async addHost(spec) {
        if (!/^[a-z][a-z0-9]{0,6}$/.test(spec.name) || taken.has(spec.name)) {
          throw new Error(`addHost: name must be new and match [a-z][a-z0-9]{0,6}: ${spec.name}`);
        }
        if (nextIp > 250) throw new Error("addHost: the rig subnet is full");
        taken.add(spec.name);
        const h = await startHost(
          prefix,
          root,
          { name: spec.name, ip: `${base}.${nextIp++}`, hostKey: spec.hostKey },
          netOpts,
          spec.adminAuthorizedKey,
          sshdConf,
          setEnvNames,
          freshUsers,
          paths,
          (pid) => initPids.push(pid),
        );
        return strip(h);
      },
      async limitDisk(freeMb) {
        let size = opts.tmpfsSize ?? "8g";
        if (freeMb !== undefined) {
          const st = fs.statfsSync(root);
          const usedKb = Math.ceil(((st.blocks - st.bfree) * st.bsize) / 1024);
          size = `${usedKb + Math.round(freeMb * 1024)}k`;
        }
        await must("mount", ["-o", `remount,size=${size}`, root]);
      },
      stop,
    };
  } catch (e) {
    await stop().catch(() => undefined);
    throw e;
  }
}
