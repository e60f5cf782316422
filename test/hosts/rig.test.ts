// The test rig itself, for real: local hosts in namespaces reached over SSH, the
// PostgreSQL stand-in, isolation between hosts and from the machine, and a clean stop.
// Needs root (CI runs as root); never skips: missing prerequisites fail the suite.
import * as assert from "assert";
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { generateHostKey, HostRig, RigHost, startHosts } from "../rig/hosts";
import { RigPostgres, startPostgres } from "../rig/postgres";
import { ensureHostPrerequisites } from "../rig/prereqs";
import { Connection, HostKeyMismatchError, runRemote } from "../rig/ssh";

const PREFIX = "glrt";
const SUBNET_INDEX = 201;
const SET_ENV = { GLT_RIG_PROBE: "value with spaces", AWS_ENDPOINT_URL: "http://10.231.201.1:9000" };
const REPO = path.resolve(__dirname, "..", "..");

function userKey(): { privateKey: string; publicKey: string } {
  // The same tool makes user and host keys; an ed25519 key is what the program's tls.PrivateKey makes.
  return generateHostKey();
}

function sh(cmd: string, args: string[]): { code: number; out: string } {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

async function until<T>(
  what: string,
  timeoutMs: number,
  probe: () => T | undefined | Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Root-namespace pids whose namespace of `kind` is one of `inodes`. */
function pidsInNamespaces(kind: "net" | "pid", inodes: Set<string>): number[] {
  const found: number[] = [];
  for (const p of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const link = fs.readlinkSync(`/proc/${p}/ns/${kind}`);
      if (inodes.has(link)) found.push(Number(p));
    } catch {
      // exited meanwhile, or a kernel thread
    }
  }
  return found;
}

function listen(host: string): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer((s) => {
      s.on("error", () => undefined); // a probe that resets must not crash the test process
      s.end("hello\n");
    });
    srv.once("error", reject);
    srv.listen(0, host, () => resolve(srv));
  });
}

function portOf(srv: net.Server): number {
  return (srv.address() as net.AddressInfo).port;
}

/** A TCP connect from inside the host, bounded; exit 0 only if it connected. */
function connectFrom(
  h: RigHost,
  ip: string,
  port: number,
  seconds = 5,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return h.exec(["timeout", String(seconds), "bash", "-c", 'exec 3<>"/dev/tcp/$0/$1"', ip, String(port)], {
    timeoutMs: 15_000,
  });
}

function canConnect(ip: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: ip, port, timeout: 2000 });
    s.on("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.on("timeout", () => s.destroy());
    s.on("error", () => undefined);
    s.on("close", () => resolve(false));
  });
}

/**
 * "The outside": a namespace of its own that the machine routes to over a veth, with a
 * TCP listener in it. If the machine forwarded the hosts' packets, they would get there.
 */
const OUTSIDE_NS = "glro-out";
const OUTSIDE_IP = "10.232.201.2";
async function startOutside(): Promise<{ port: number; stop: () => void }> {
  const ip = (...args: string[]): void => {
    const r = sh("ip", args);
    if (r.code !== 0) throw new Error(`ip ${args.join(" ")}: ${r.out}`);
  };
  let listener: ReturnType<typeof spawn> | undefined;
  const stop = (): void => {
    listener?.kill("SIGKILL");
    sh("ip", ["netns", "delete", OUTSIDE_NS]);
    sh("ip", ["link", "delete", "glro-o"]);
  };
  stop(); // leftovers of an interrupted run
  try {
    ip("netns", "add", OUTSIDE_NS);
    ip("link", "add", "glro-o", "type", "veth", "peer", "name", "eth0", "netns", OUTSIDE_NS);
    ip("addr", "add", "10.232.201.1/24", "dev", "glro-o");
    ip("link", "set", "glro-o", "up");
    ip("-n", OUTSIDE_NS, "link", "set", "lo", "up");
    ip("-n", OUTSIDE_NS, "addr", "add", `${OUTSIDE_IP}/24`, "dev", "eth0");
    ip("-n", OUTSIDE_NS, "link", "set", "eth0", "up");
    ip("-n", OUTSIDE_NS, "route", "add", "default", "via", "10.232.201.1");
    const port = 18080;
    listener = spawn(
      "ip",
      [
        "netns",
        "exec",
        OUTSIDE_NS,
        process.execPath,
        "-e",
        `require("net").createServer((s) => s.end("outside\\n")).listen(${port}, ${JSON.stringify(OUTSIDE_IP)})`,
      ],
      { stdio: "ignore" },
    );
    return { port, stop };
  } catch (e) {
    stop();
    throw e;
  }
}

describe("host rig (real namespaces, sshd, PostgreSQL)", function () {
  this.timeout(120_000);

  let rig: HostRig | undefined;
  let pg: RigPostgres | undefined;
  const admin = userKey();
  let ipForwardBefore = "";

  const conn = (h: RigHost, extra: Partial<Connection> = {}): Connection => ({
    host: h.ip,
    user: "admin",
    privateKey: admin.privateKey,
    hostKey: h.hostKey.publicKey,
    ...extra,
  });
  const theRig = (): HostRig => {
    assert.ok(rig, "rig did not start");
    return rig;
  };

  before(async function () {
    this.timeout(30 * 60_000); // a fresh machine installs the Debian packages first
    ensureHostPrerequisites();
    ipForwardBefore = fs.readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8");
    const t0 = Date.now();
    rig = await startHosts({
      count: 2,
      bastion: true,
      adminAuthorizedKey: admin.publicKey,
      sshdSetEnv: SET_ENV,
      prefix: PREFIX,
      subnetIndex: SUBNET_INDEX,
    });
    console.log(`      (startHosts count=2 + bastion: ${Date.now() - t0} ms)`);
    pg = await startPostgres({ listen: rig.bridgeIp });
  });

  after(async function () {
    await pg?.stop();
    await rig?.stop();
  });

  it("gives each host its own address, hostname and passwordless sudo for admin over SSH", async function () {
    const r = theRig();
    assert.strictEqual(r.subnet, `10.231.${SUBNET_INDEX}.0/24`);
    assert.strictEqual(r.bridgeIp, `10.231.${SUBNET_INDEX}.1`);
    assert.deepStrictEqual(
      [...r.hosts, r.bastion].map((h) => h?.ip),
      [`10.231.${SUBNET_INDEX}.10`, `10.231.${SUBNET_INDEX}.11`, `10.231.${SUBNET_INDEX}.5`],
    );
    for (const h of [...r.hosts, r.bastion as RigHost]) {
      const res = await runRemote(conn(h), "hostname; ip -4 -o addr show; sudo -n true && echo sudo-ok");
      assert.strictEqual(res.code, 0, res.stderr);
      const [hostname] = res.stdout.split("\n");
      assert.strictEqual(hostname, h.name);
      const addrs = [...res.stdout.matchAll(/inet (\d+\.\d+\.\d+\.\d+)\//g)].map((m) => m[1]).sort();
      assert.deepStrictEqual(addrs, ["127.0.0.1", h.ip].sort(), res.stdout);
      assert.match(res.stdout, /^sudo-ok$/m);
    }
  });

  it("offers exactly the given ed25519 host key, installed as cloud-init does", async function () {
    const h = theRig().hosts[0];
    const scan = sh("ssh-keyscan", ["-T", "5", h.ip]);
    const offered = scan.out
      .split("\n")
      .filter((l) => l.startsWith(`${h.ip} `))
      .map((l) => l.slice(h.ip.length + 1).trim());
    const [type, blob] = h.hostKey.publicKey.split(/\s+/);
    assert.deepStrictEqual(offered, [`${type} ${blob}`], scan.out);
    const ls = await h.exec(["sh", "-c", "stat -c '%n %a %U' /etc/ssh/ssh_host_*"]);
    assert.deepStrictEqual(ls.stdout.trim().split("\n").sort(), [
      "/etc/ssh/ssh_host_ed25519_key 600 root",
      "/etc/ssh/ssh_host_ed25519_key.pub 644 root",
    ]);
  });

  it("refuses a wrong pinned host key before running anything", async function () {
    const [h0, h1] = theRig().hosts;
    const t0 = Date.now();
    await assert.rejects(
      runRemote(conn(h0, { hostKey: h1.hostKey.publicKey }), "touch /tmp/should-not-exist"),
      (e: unknown) => e instanceof HostKeyMismatchError && /host key mismatch/.test(e.message),
    );
    assert.ok(Date.now() - t0 < 5_000, "a mismatch must not be retried");
    const probe = await h0.exec(["test", "-e", "/tmp/should-not-exist"]);
    assert.strictEqual(probe.code, 1);
  });

  it("keeps /srv and /etc private to each host and away from the machine", async function () {
    const [h0, h1] = theRig().hosts;
    const w = await runRemote(conn(h0), "echo h0 | sudo tee /srv/glrt-marker /etc/glrt-marker >/dev/null");
    assert.strictEqual(w.code, 0, w.stderr);
    assert.strictEqual((await h0.exec(["cat", "/srv/glrt-marker", "/etc/glrt-marker"])).stdout, "h0\nh0\n");
    assert.strictEqual(fs.readFileSync(path.join(h0.root, "fs", "srv", "glrt-marker"), "utf8"), "h0\n");
    for (const f of ["/srv/glrt-marker", "/etc/glrt-marker"]) {
      assert.strictEqual((await h1.exec(["test", "-e", f])).code, 1, `${f} visible on h1`);
      assert.ok(!fs.existsSync(f), `${f} visible on the machine`);
    }
  });

  it("lets useradd work inside a host without touching the machine's /etc/passwd", async function () {
    const [h0, h1] = theRig().hosts;
    assert.notStrictEqual(sh("getent", ["passwd", "glrtuser"]).code, 0, "machine already has glrtuser");
    const r = await runRemote(
      conn(h0),
      "sudo useradd --create-home --shell /bin/bash glrtuser && getent passwd glrtuser",
    );
    assert.strictEqual(r.code, 0, r.stderr);
    assert.match(r.stdout, /^glrtuser:x:\d+:\d+::\/home\/glrtuser:\/bin\/bash$/m);
    assert.strictEqual((await h1.exec(["getent", "passwd", "glrtuser"])).code, 2);
    assert.notStrictEqual(sh("getent", ["passwd", "glrtuser"]).code, 0);
    assert.strictEqual((await h0.exec(["id", "-un"], { user: "glrtuser" })).stdout, "glrtuser\n");
  });

  it("reaches a host through the bastion (direct-tcpip), with both keys pinned", async function () {
    const r = theRig();
    const bastion = r.bastion as RigHost;
    const res = await runRemote(conn(r.hosts[1], { proxy: conn(bastion) }), 'hostname; echo "$SSH_CONNECTION"');
    assert.strictEqual(res.code, 0, res.stderr);
    const [hostname, sshConnection] = res.stdout.trim().split("\n");
    assert.strictEqual(hostname, "h1");
    assert.strictEqual(sshConnection.split(" ")[0], bastion.ip, "the target should see the bastion as client");
    await assert.rejects(
      runRemote(conn(r.hosts[1], { proxy: conn(bastion, { hostKey: r.hosts[0].hostKey.publicKey }) }), "true"),
      HostKeyMismatchError,
    );
  });

  it("puts sshdSetEnv in every session's environment, and sudo keeps it like an instance role", async function () {
    const h = theRig().hosts[1];
    const script = 'printf "%s|%s\\n" "$GLT_RIG_PROBE" "$AWS_ENDPOINT_URL"';
    const direct = await runRemote(conn(h), script);
    assert.strictEqual(direct.stdout, `${SET_ENV.GLT_RIG_PROBE}|${SET_ENV.AWS_ENDPOINT_URL}\n`);
    const viaSudo = await runRemote(conn(h), `sudo sh -c '${script}'`);
    assert.strictEqual(viaSudo.stdout, direct.stdout, viaSudo.stderr);
  });

  it("runs commands like pulumi-command: stdin, exit status, stderr, streaming, timeouts", async function () {
    const h = theRig().hosts[0];
    const chunks: string[] = [];
    const r = await runRemote(conn(h), "cat; echo oops >&2; exit 3", {
      stdin: "line 1\nünïcode\n",
      onOutput: (c, s) => chunks.push(`${s}:${c}`),
    });
    assert.deepStrictEqual(r, { code: 3, stdout: "line 1\nünïcode\n", stderr: "oops\n" });
    assert.ok(chunks.some((c) => c.startsWith("stderr:")));
    await assert.rejects(runRemote(conn(h), "sleep 30", { timeoutMs: 500 }), /did not finish in 500 ms/);
    // Default user is root (no key for root here): authentication fails, and is retried.
    const t0 = Date.now();
    await assert.rejects(
      runRemote({ host: h.ip, privateKey: admin.privateKey, dialErrorLimit: 2 }, "true"),
      /after 2 failed attempts/,
    );
    assert.ok(Date.now() - t0 >= 250, "retries wait between attempts");
    await assert.rejects(runRemote({ ...conn(h), port: 2, dialErrorLimit: 1 }, "true"), /ECONNREFUSED/);
  });

  it("exec runs as root inside the host, as another user, and enforces its timeout", async function () {
    const h = theRig().hosts[0];
    const who = await h.exec(["sh", "-c", "id -un; hostname; cat"], { input: "in\n" });
    assert.strictEqual(who.stdout, `root\n${h.name}\nin\n`);
    assert.strictEqual((await h.exec(["id", "-un"], { user: "admin" })).stdout, "admin\n");
    await assert.rejects(h.exec(["sleep", "1037"], { timeoutMs: 300 }), /timed out/);
    await until("the timed-out sleep to be gone", 5_000, async () =>
      (await h.exec(["pgrep", "-f", "sleep 1037"])).code === 1 ? true : undefined,
    );
  });

  it("makes `service` start, reload, restart and stop nginx, supervisor and ssh without systemd", async function () {
    const h = theRig().hosts[0];
    const c = conn(h);
    const run = async (cmd: string): Promise<string> => {
      const r = await runRemote(c, cmd, { timeoutMs: 60_000 });
      assert.strictEqual(r.code, 0, `${cmd}\n${r.stdout}${r.stderr}`);
      return r.stdout;
    };
    await run("sudo service nginx start");
    assert.match(await run("curl -sS --max-time 5 http://127.0.0.1/"), /Welcome to nginx/);
    await run("sudo service nginx reload");
    await run("sudo service nginx start"); // already running: success, as with systemd
    await run("sudo service nginx stop");
    const down = await runRemote(c, "curl -sS --max-time 5 http://127.0.0.1/");
    assert.notStrictEqual(down.code, 0, "nginx still answers after stop");

    await run("sudo service supervisor start");
    await run("sudo service supervisor start");
    const pid1 = (await run("sudo cat /run/supervisord.pid")).trim();
    await run("sudo service supervisor restart");
    await run("sudo service supervisor status");
    const pid2 = (await run("sudo cat /run/supervisord.pid")).trim();
    assert.notStrictEqual(pid2, pid1, "restart must replace supervisord");
    await run("sudo service supervisor reload");
    await run("sudo supervisorctl status");
    await run("sudo service supervisor stop");
    await until("supervisord to exit", 15_000, async () =>
      (await h.exec(["pgrep", "-x", "supervisord"])).code === 1 ? true : undefined,
    );

    // A drop-in plus reload must change the running sshd, as the bootstrap relies on.
    await run(
      "echo 'ListenAddress 127.0.0.1:2222' | sudo tee /etc/ssh/sshd_config.d/50-glrt.conf >/dev/null && sudo service ssh reload",
    );
    await until("sshd to listen on 2222 after reload", 10_000, async () =>
      (await connectFrom(h, "127.0.0.1", 2222)).code === 0 ? true : undefined,
    );
    await run("sudo rm /etc/ssh/sshd_config.d/50-glrt.conf && sudo service ssh reload");
    await until("sshd to stop listening on 2222", 10_000, async () =>
      (await connectFrom(h, "127.0.0.1", 2222)).code !== 0 ? true : undefined,
    );
    // and it still takes new connections on 22 (pulumi-command's dial retries cover the re-exec gap)
    await run("true");
  });

  it("keeps hosts inside the rig subnet: no machine loopback, no other address, no forwarding", async function () {
    const r = theRig();
    const h = r.hosts[0];
    const onBridge = await listen(r.bridgeIp);
    const onLoopback = await listen("127.0.0.1");
    const onAll = await listen("0.0.0.0");
    const outside = await startOutside();
    try {
      // positive controls: the stand-ins' address and the other hosts are reachable,
      // and the machine itself reaches "the outside"
      assert.strictEqual((await connectFrom(h, r.bridgeIp, portOf(onBridge))).code, 0);
      assert.strictEqual((await connectFrom(h, r.hosts[1].ip, 22)).code, 0);
      await until("the machine to reach the outside namespace", 10_000, async () =>
        (await canConnect(OUTSIDE_IP, outside.port)) ? true : undefined,
      );

      assert.notStrictEqual((await connectFrom(h, r.bridgeIp, portOf(onLoopback))).code, 0);
      assert.notStrictEqual((await connectFrom(h, "127.0.0.1", portOf(onLoopback))).code, 0);
      const machineAddrs = Object.values(os.networkInterfaces())
        .flat()
        .filter((a) => a && a.family === "IPv4" && !a.internal && !/^10\.23[12]\./.test(a.address))
        .map((a) => (a as os.NetworkInterfaceInfo).address);
      for (const a of machineAddrs) {
        assert.notStrictEqual((await connectFrom(h, a, portOf(onAll))).code, 0, `reached the machine at ${a}`);
      }
      // What the machine can reach beyond itself, a host cannot: nothing is routed on.
      assert.notStrictEqual(
        (await connectFrom(h, OUTSIDE_IP, outside.port, 3)).code,
        0,
        "a host's packets were forwarded",
      );
      assert.notStrictEqual((await connectFrom(h, "192.0.2.1", 80, 3)).code, 0);
      assert.strictEqual(fs.readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8"), ipForwardBefore);
    } finally {
      for (const s of [onBridge, onLoopback, onAll]) s.close();
      outside.stop();
    }
  });

  it("serves PostgreSQL to the hosts over TLS with SCRAM only, the role owning its database", async function () {
    const r = theRig();
    const db = pg as RigPostgres;
    await db.createRoleAndDatabase("glrt_app", "pw-Secret_123");
    assert.strictEqual(
      (await db.query("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'glrt_app'")).trim(),
      "glrt_app",
    );
    const url = (mode: string, pw = "pw-Secret_123"): string =>
      `postgres://glrt_app:${pw}@${db.host}:${db.port}/glrt_app?sslmode=${mode}`;
    const h = r.hosts[1];
    const ok = await runRemote(
      conn(h),
      `psql "${url("require")}" -Atc 'select 1, ssl from pg_stat_ssl where pid = pg_backend_pid()'`,
    );
    assert.strictEqual(ok.code, 0, ok.stderr);
    assert.strictEqual(ok.stdout, "1|t\n");
    const plain = await runRemote(conn(h), `psql "${url("disable")}" -Atc 'select 1'`);
    assert.notStrictEqual(plain.code, 0);
    assert.match(plain.stderr, /no pg_hba\.conf entry .*no encryption/);
    const wrong = await runRemote(conn(h), `psql "${url("require", "nope")}" -Atc 'select 1'`);
    assert.notStrictEqual(wrong.code, 0);
    assert.match(wrong.stderr, /password authentication failed/);
    await db.dropDatabase("glrt_app");
    assert.strictEqual((await db.query("SELECT count(*) FROM pg_database WHERE datname = 'glrt_app'")).trim(), "0");
  });

  it("cleans up leftovers of a crashed run and lets two rigs coexist", async function () {
    // What a test process killed with SIGKILL leaves: its hosts die with it (pdeathsig),
    // namespaces, links and the directory stay until the next start with that prefix.
    // (The interval keeps that process alive: a rig alone does not, see hosts.ts.)
    const child = spawn(
      process.execPath,
      [
        "-r",
        "ts-node/register/transpile-only",
        "-e",
        `require(${JSON.stringify(path.join(REPO, "test/rig/hosts.ts"))}).startHosts({ count: 1, prefix: "glrk", subnetIndex: 202, adminAuthorizedKey: ${JSON.stringify(admin.publicKey)} }).then(() => { console.log("UP"); setInterval(() => undefined, 1e6); })`,
      ],
      { cwd: REPO, stdio: ["ignore", "pipe", "inherit"] },
    );
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    try {
      await until("the child's rig to start", 60_000, () => (out.includes("UP") ? true : undefined));
      const netns = fs.readlinkSync(`/proc/${findAnyPid("glrk-h0")}/ns/net`);
      // while its owner lives, the rig is not a leftover: another process must not take it down
      await assert.rejects(
        startHosts({ count: 1, prefix: "glrk", subnetIndex: 202, adminAuthorizedKey: admin.publicKey }),
        /in use by live process/,
      );
      assert.strictEqual(sh("ip", ["netns", "pids", "glrk-h0"]).code, 0);
      assert.notStrictEqual(sh("ip", ["netns", "pids", "glrk-h0"]).out.trim(), "");
      const exited = new Promise<void>((resolve) =>
        child.exitCode !== null || child.signalCode !== null ? resolve() : child.once("exit", () => resolve()),
      );
      child.kill("SIGKILL");
      // The owner is gone only once it has exited and been reaped (its exit event): until then
      // /proc still lists it. Its hosts die with it (pdeathsig).
      await exited;
      await until("the crashed rig's processes to die", 10_000, () =>
        pidsInNamespaces("net", new Set([netns])).length === 0 ? true : undefined,
      );
      assert.match(sh("ip", ["netns", "list"]).out, /^glrk-h0\b/m, "the leftover namespace is expected here");
      const again = await startHosts({
        count: 1,
        prefix: "glrk",
        subnetIndex: 202,
        adminAuthorizedKey: admin.publicKey,
      });
      try {
        const res = await runRemote(conn(again.hosts[0]), "hostname");
        assert.strictEqual(res.stdout, "h0\n");
        // the main rig still works alongside
        assert.strictEqual((await runRemote(conn(theRig().hosts[0]), "hostname")).stdout, "h0\n");
      } finally {
        await again.stop();
      }
      assert.doesNotMatch(sh("ip", ["netns", "list"]).out, /^glrk-/m);
    } finally {
      child.kill("SIGKILL");
    }
  });

  it("stop() leaves no process, namespace, link or directory behind, and is idempotent", async function () {
    const r = theRig();
    const all = [...r.hosts, r.bastion as RigHost];
    const pidNs = new Set<string>();
    const netNs = new Set<string>();
    for (const h of all) {
      pidNs.add((await h.exec(["readlink", "/proc/1/ns/pid"])).stdout.trim());
      netNs.add(fs.readlinkSync(`/proc/${findAnyPid(`${PREFIX}-${h.name}`)}/ns/net`));
      // something long-running inside, that a careless stop would leave behind
      await runRemote(conn(h), "sudo service nginx start >/dev/null; (setsid sleep 1000 >/dev/null 2>&1 &)");
    }
    assert.strictEqual(pidsInNamespaces("pid", pidNs).length >= all.length * 3, true);
    const dataDir = (await (pg as RigPostgres).query("SHOW data_directory")).trim();

    await Promise.all([r.stop(), r.stop()]);
    await r.stop();
    await (pg as RigPostgres).stop();

    assert.deepStrictEqual(pidsInNamespaces("pid", pidNs), []);
    assert.deepStrictEqual(pidsInNamespaces("net", netNs), []);
    assert.doesNotMatch(sh("ip", ["netns", "list"]).out, new RegExp(`^${PREFIX}-`, "m"));
    assert.doesNotMatch(sh("ip", ["-o", "link", "show"]).out, new RegExp(`: ${PREFIX}-`));
    for (const h of all) assert.ok(!fs.existsSync(h.root), `${h.root} still exists`);
    assert.ok(!fs.existsSync(path.dirname(all[0].root)));
    assert.ok(!fs.existsSync(dataDir), `${dataDir} still exists`);
    assert.strictEqual(sh("pgrep", ["-f", dataDir]).code, 1, "postgres still running");
  });
});

/** A pid inside the named network namespace (its processes are what `ip netns pids` lists). */
function findAnyPid(ns: string): number {
  const r = spawnSync("ip", ["netns", "pids", ns], { encoding: "utf8" });
  const pid = Number(r.stdout.trim().split("\n")[0]);
  assert.ok(pid > 0, `no process in ${ns}: ${r.stderr}`);
  return pid;
}
