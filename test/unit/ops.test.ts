// components/ops.ts: what the day-to-day commands connect to and run (the host tests run them).
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  HostStatus,
  OpsError,
  drift,
  logsCommand,
  manageCommand,
  opsConnection,
  parseKnownHosts,
  sshConfig,
  stackAccess,
  statusCommand,
} from "../../components/ops";
import { isProtected } from "../../scripts/cli/manage";

const KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n";
const outputs = (o: Record<string, unknown> = {}) => ({
  hosts: [
    { id: "i-0", address: "10.40.128.10", ssh: "" },
    { id: "i-1", address: "10.40.129.10", ssh: "" },
  ],
  bastion: "203.0.113.5",
  knownHosts: "10.40.128.10 ssh-ed25519 AAAA0\n10.40.129.10 ssh-ed25519 AAAA1\n203.0.113.5 ssh-ed25519 AAAAB\n",
  sshPrivateKey: KEY,
  liveColour: "green",
  releases: { blue: { release: "r1" }, green: { release: "r2" } },
  ...o,
});

describe("day-to-day commands (components/ops.ts)", () => {
  it("reads hosts, pinned keys, the bastion and the slots from the stack's outputs", () => {
    const a = stackAccess("prod", outputs());
    assert.deepEqual(
      a.hosts.map((h) => [h.address, h.hostKey]),
      [
        ["10.40.128.10", "ssh-ed25519 AAAA0"],
        ["10.40.129.10", "ssh-ed25519 AAAA1"],
      ],
    );
    assert.deepEqual(a.bastion, { address: "203.0.113.5", hostKey: "ssh-ed25519 AAAAB" });
    assert.equal(a.liveColour, "green");
    assert.deepEqual(a.releases, { blue: "r1", green: "r2" });
    assert.equal(parseKnownHosts("a k1 b1\n\nb k2 b2 comment\n").get("b"), "k2 b2");
  });

  it("refuses a stack that is not deployed, naming what is missing", () => {
    const refuses = (o: Record<string, unknown>, why: RegExp) =>
      assert.throws(
        () => stackAccess("qa", o),
        (e: unknown) =>
          e instanceof OpsError && why.test(e.message) && /run pulumi up --stack qa first$/.test(e.message),
      );
    refuses({}, /^stack qa is not deployed \(its outputs have no hosts\)/);
    refuses(outputs({ hosts: [] }), /no hosts/);
    refuses(outputs({ sshPrivateKey: "[secret]" }), /no sshPrivateKey \(read with --show-secrets\)/);
    refuses(
      outputs({ knownHosts: "10.40.128.10 ssh-ed25519 AAAA0\n203.0.113.5 ssh-ed25519 AAAAB\n" }),
      /knownHosts pins no key for host 1 10\.40\.129\.10/,
    );
    refuses(outputs({ knownHosts: "10.40.128.10 k a\n10.40.129.10 k b\n" }), /no key for the bastion/);
  });

  it("connects as deploy with the pinned key, through the bastion as admin when there is one", () => {
    const c = opsConnection(stackAccess("prod", outputs()), 1);
    assert.deepEqual(
      { ...c, privateKey: undefined, proxy: { ...c.proxy, privateKey: undefined } },
      {
        host: "10.40.129.10",
        port: 22,
        user: "deploy",
        hostKey: "ssh-ed25519 AAAA1",
        privateKey: undefined,
        proxy: { host: "203.0.113.5", port: 22, user: "admin", hostKey: "ssh-ed25519 AAAAB", privateKey: undefined },
      },
    );
    const qa = opsConnection(stackAccess("qa", outputs({ bastion: undefined })), 0);
    assert.equal(qa.proxy, undefined);
    assert.throws(() => opsConnection(stackAccess("qa", outputs()), 2), /has 2 hosts: --host 2 is not one \(0-1\)/);
  });

  /** Runs a manage command here: the slot is `dir`, and printf stands in for sudo + python. */
  const runManage = (cmd: string, manifest: unknown) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gl-manage-"));
    try {
      fs.writeFileSync(path.join(dir, "manage.py"), "");
      fs.writeFileSync(path.join(dir, "manifest.json"), JSON.stringify(manifest));
      const local = cmd
        .replace(/readlink -e \/srv\/site\/(blue|green)/, `readlink -e ${dir}`)
        .replace(`exec sudo -n -u app -- "$rel/venv/bin/python" manage.py`, "printf '%s\\n'");
      return spawnSync("bash", ["-c", local], { encoding: "utf8" });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };

  it("manage: the slot's release python as app, every argument one quoted word", () => {
    const cmd = manageCommand({ app: "site", slot: "green", args: ["shell", "-c", "print('$(reboot)'); `id`"] });
    assert.match(cmd, /readlink -e \/srv\/site\/green/);
    assert.match(
      cmd,
      /exec sudo -n -u app -- "\$rel\/venv\/bin\/python" manage\.py 'shell' '-c' 'print\('\\''\$\(reboot\)'\\''\); `id`'/,
    );
    // What bash makes of the words: exactly the arguments given.
    const words = runManage(cmd, { migrate: ["python", "manage.py", "migrate", "--noinput"] });
    assert.equal(words.stdout, "shell\n-c\nprint('$(reboot)'); `id`\n", words.stderr);
    assert.throws(() => manageCommand({ app: "site", slot: "blue", args: [] }), /no manage\.py command/);
    assert.throws(() => manageCommand({ app: "site", slot: "blue", args: ["a\nb"] }), /one line/);
    assert.throws(() => manageCommand({ app: "../x", slot: "blue", args: ["check"] }), /not an app name/);
  });

  it("manage: runs with the settings the release's migrate passes, unless given its own", () => {
    const cmd = manageCommand({ app: "site", slot: "blue", args: ["check", "--deploy"] });
    const cookiecutter = ["python", "manage.py", "migrate", "--noinput", "--settings=config.settings.production"];
    assert.equal(
      runManage(cmd, { migrate: cookiecutter }).stdout,
      "check\n--deploy\n--settings=config.settings.production\n",
    );
    const spaced = ["python", "manage.py", "migrate", "--settings", "config.settings.greenlight"];
    assert.equal(
      runManage(cmd, { migrate: spaced }).stdout,
      "check\n--deploy\n--settings=config.settings.greenlight\n",
    );
    assert.equal(runManage(cmd, { wsgi: "x.wsgi:application" }).stdout, "check\n--deploy\n");
    const own = manageCommand({ app: "site", slot: "blue", args: ["check", "--settings=config.settings.test"] });
    assert.equal(runManage(own, { migrate: cookiecutter }).stdout, "check\n--settings=config.settings.test\n");
  });

  it("logs and status: the script travels with the command, values quoted; bad values refused", () => {
    const logs = logsCommand({ app: "site", slots: ["blue"], follow: true, lines: 20, grep: "a'b|$(x)" });
    assert.match(logs, /^bash -c '#!\/usr\/bin\/env bash\n/);
    assert.match(logs, / greenlight-logs 'site' '1' '20' 'a'\\''b\|\$\(x\)' 'blue'$/);
    assert.throws(() => logsCommand({ app: "site", slots: [], follow: false, lines: -1 }), /--lines/);
    assert.throws(() => logsCommand({ app: "site", slots: [], follow: false, lines: 1, grep: "a\nb" }), /one line/);
    assert.match(
      statusCommand({ app: "site", healthPath: "/healthz" }),
      / greenlight-status 'site' '\/healthz' '8001' '8002'$/,
    );
    assert.throws(() => statusCommand({ app: "site", healthPath: "/$(x)" }), /not a health path/);
  });

  it("status names drift between the hosts and the stack", () => {
    const host = (blue: string | null, green: string | null, o: Partial<HostStatus> = {}): HostStatus => ({
      hostname: "h",
      slots: {
        blue: { release: blue, process: "RUNNING", health: blue ? { code: 200, body: `${blue}\n` } : null },
        green: { release: green, process: "RUNNING", health: green ? { code: 200, body: green } : null },
      },
      disk: { mount: "/", sizeKb: 1, usedKb: 1, availKb: 1, usedPercent: 1 },
      lastBackup: null,
      scripts: ["s1"],
      ...o,
    });
    const stack = {
      deployed: { blue: "r1", green: "r2" },
      configured: { blue: "r1", green: "r2" },
      liveColour: "green" as const,
      scriptsId: "s1",
    };
    assert.deepEqual(drift(stack, [{ name: "h0", status: host("r1", "r2") }]), []);
    const sick = host("r1", "r2");
    sick.slots.green.health = { code: 502, body: "<html>" };
    assert.deepEqual(
      drift({ ...stack, configured: { blue: "r3", green: "r2" } }, [
        { name: "h0", status: host("r1", "r9", { scripts: ["old"] }) },
        { name: "h1", status: sick },
      ]).map((d) => `${d.host}: ${d.what}`),
      [
        "h0: blue serves r1, the stack file asks for r3 (pulumi up is pending)",
        "h0: green serves r9, the stack's last pulumi up put r2 there",
        "h0: greenlight scripts s1 of this checkout are not installed (host has old): pulumi up installs them",
        "h1: blue serves r1, the stack file asks for r3 (pulumi up is pending)",
        'h1: green (live) is not healthy: HTTP 502 "<html>"',
      ],
    );
  });

  it("manage asks before it runs in prod or a stack with deletionProtection", () => {
    assert.equal(isProtected("prod", "config: {}\n"), true);
    assert.equal(isProtected("qa", "config:\n  greenlight:deletionProtection: true\n"), true);
    assert.equal(isProtected("qa", "config:\n  greenlight:deletionProtection: false\n"), false);
    assert.equal(isProtected("staging", "config:\n  aws:region: eu-west-1\n"), false);
  });

  it("sshConfig: paths given or placeholders, ProxyJump only with a bastion", () => {
    const text = sshConfig({ stack: "qa", hosts: ["198.51.100.1"], identityFile: "/k", knownHostsFile: "/kh" });
    assert.equal(
      text,
      "# greenlight qa: ssh -F <this file> qa-0\n\nHost qa-0\n  HostName 198.51.100.1\n  User deploy\n" +
        "  IdentityFile /k\n  IdentitiesOnly yes\n  UserKnownHostsFile /kh\n  StrictHostKeyChecking yes\n",
    );
  });
});
