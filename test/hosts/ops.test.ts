// The day-to-day commands (npm run manage, logs, status) and the sshConfig output, run as a user
// runs them (the CLI scripts, a `pulumi` on PATH that answers `stack output` with the outputs a
// deployed stack has) against two local hosts that serve a real release: directly as in qa, and
// through a bastion as in prod. Also: an undeployed stack and a wrong host key are refused.
import { S3Client } from "@aws-sdk/client-s3";
import * as assert from "assert";
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parseConfig } from "../../components/config";
import { sshConfig } from "../../components/ops";
import { artifactKey, writeConfig } from "../../scripts/cli/lib/stack";
import { uploadArtifact } from "../../scripts/cli/lib/upload";
import { siteArtifact } from "../rig/artifacts";
import { RigHost } from "../rig/hosts";
import { ROOT, stackConfig } from "../rig/stackConfig";
import { APP, REGION, World, startWorld } from "../rig/world";

const RELEASE = "r1";

describe("day-to-day commands on real hosts: manage, logs, status, sshConfig", function () {
  this.timeout(600_000);
  let w: World;
  let h0: RigHost;
  let h1: RigHost;
  let bastion: RigHost;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gl-ops-"));
  const bin = path.join(dir, "bin");
  let artifact: { key: string; sha256: string };

  /** The outputs `pulumi stack output --json --show-secrets` gives for a deployed stack. */
  const outputs = (stack: "qa" | "prod", o: { knownHosts?: string } = {}) => {
    const all = [h0, h1, ...(stack === "prod" ? [bastion] : [])];
    return {
      hosts: [h0, h1].map((h, i) => ({ id: `i-${i}`, address: h.ip, ssh: "" })),
      ...(stack === "prod" ? { bastion: bastion.ip } : {}),
      knownHosts: o.knownHosts ?? all.map((h) => `${h.ip} ${h.hostKey.publicKey}`).join("\n") + "\n",
      sshPrivateKey: w.deployKey.privateKey,
      liveColour: "blue",
      idleColour: "green",
      releases: { blue: { release: RELEASE, artifact: artifact.key, sha256: artifact.sha256 }, green: null },
    };
  };
  const deployed = (stack: string, value: unknown) =>
    fs.writeFileSync(path.join(dir, `outputs.${stack}.json`), JSON.stringify(value));

  const env = () => ({ ...process.env, PATH: `${bin}:${process.env.PATH}`, GL_FAKE_DIR: dir });
  const cliArgs = (script: string, args: string[]) => [
    "-r",
    "ts-node/register/transpile-only",
    path.join(ROOT, "scripts/cli", `${script}.ts`),
    "--dir",
    dir,
    ...args,
  ];
  /** A CLI as `npm run <script> -- <args>` runs it. */
  const cli = (script: string, args: string[], input = "") => {
    const r = spawnSync(process.execPath, cliArgs(script, args), {
      encoding: "utf8",
      cwd: ROOT,
      env: env(),
      input,
      timeout: 120_000,
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const sh = async (h: RigHost, command: string) => {
    const r = await h.exec(["sh", "-c", command]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  };
  /** Polls `probe` until it holds or `ms` pass. */
  const until = async (what: string, probe: () => boolean | Promise<boolean>, ms = 30_000) => {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      if (await probe()) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.fail(`timed out after ${ms} ms waiting for ${what}`);
  };

  before(async function () {
    this.timeout(900_000);
    w = await startWorld({ hosts: 2, bastion: true, prefix: "glo", subnetIndex: 9 });
    [h0, h1] = w.hosts;
    bastion = w.rig.bastion!;
    const s3 = new S3Client({
      region: REGION,
      endpoint: w.aws.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: "test", secretAccessKey: "test" },
    });
    const a = await siteArtifact("base", dir);
    artifact = { key: artifactKey(a.sha256), sha256: a.sha256 };
    await uploadArtifact(s3, w.artifactBucket, artifact.key, a.file, a.sha256);
    s3.destroy();
    const ok = async (h: RigHost, call: Parameters<World["step"]>[1]) => {
      const r = await w.step(h, call);
      assert.equal(r.code, 0, `${call.step} on ${h.name}: ${r.stderr.slice(-2000)}`);
    };
    await Promise.all([h0, h1].map((h) => ok(h, w.values.bootstrap())));
    await Promise.all([h0, h1].map((h) => ok(h, w.values.fetch("blue", RELEASE, artifact))));
    await ok(h0, w.values.backup(RELEASE));
    await ok(h0, w.values.migrate(RELEASE));
    await Promise.all([h0, h1].map((h) => ok(h, w.values.activate("blue", RELEASE))));

    // A `pulumi` that answers `stack output --json --show-secrets --stack S` as a deployed
    // stack would, from outputs.S.json, and fails like the real CLI for a stack it does not know.
    fs.mkdirSync(bin);
    fs.writeFileSync(
      path.join(bin, "pulumi"),
      [
        "#!/bin/sh",
        'stack=""; prev=""',
        'for a in "$@"; do [ "$prev" = --stack ] && stack=$a; prev=$a; done',
        '[ "$1 $2" = "stack output" ] && [ -f "$GL_FAKE_DIR/outputs.$stack.json" ] && exec cat "$GL_FAKE_DIR/outputs.$stack.json"',
        `echo "error: no stack named '$stack' found" >&2`,
        "exit 255",
        "",
      ].join("\n"),
      { mode: 0o755 },
    );
    for (const stack of ["qa", "prod"]) {
      const text = fs.readFileSync(path.join(ROOT, `Pulumi.${stack}.yaml`), "utf8");
      fs.writeFileSync(
        path.join(dir, `Pulumi.${stack}.yaml`),
        writeConfig(text, {
          blueRelease: RELEASE,
          blueArtifact: artifact.key,
          blueSha256: artifact.sha256,
          live: "blue",
        }),
      );
      deployed(stack, outputs(stack as "qa" | "prod"));
    }
  });

  after(async () => {
    await w?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  describe("manage", () => {
    it("runs manage.py on host 0 as the app user, in the live release, with its .env", () => {
      const r = cli("manage", [
        "--stack",
        "qa",
        "--",
        "shell",
        "-c",
        "import getpass, os; from django.conf import settings; print(getpass.getuser(), os.getcwd(), os.uname().nodename, settings.ALLOWED_HOSTS)",
      ]);
      assert.equal(r.code, 0, r.stderr);
      // (Django 5.2's shell first says how many objects it imported.)
      assert.equal(r.stdout.trim().split("\n").pop(), `app /srv/${APP}/releases/${RELEASE} h0 ['site.elb.example']`);
      assert.match(r.stderr, /greenlight: manage\.py shell -c .* on h0 of qa \(blue, release r1\)/);
    });

    it("runs with the --settings that the release's migrate passes (a cookiecutter-style site)", async () => {
      // The release as if its greenlight.json said "migrate": [..., "--settings=greenlight_site.ops_settings"].
      const rel = `/srv/${APP}/releases/${RELEASE}`;
      const manifest = `${rel}/manifest.json`;
      const original = await sh(h0, `cat ${manifest}`);
      const m = JSON.parse(original) as { migrate?: string[] };
      const migrate = [...(m.migrate ?? ["python", "manage.py", "migrate", "--noinput"])];
      await sh(
        h0,
        `printf '%s\\n' 'from .settings import *  # noqa' 'OPS_MARK = "production settings"' > ${rel}/greenlight_site/ops_settings.py && ` +
          `printf '%s' '${JSON.stringify({ ...m, migrate: [...migrate, "--settings=greenlight_site.ops_settings"] })}' > ${manifest}`,
      );
      try {
        const r = cli("manage", [
          "--stack",
          "qa",
          "--",
          "shell",
          "-c",
          "from django.conf import settings; print(settings.OPS_MARK)",
        ]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout.trim().split("\n").pop(), "production settings");
      } finally {
        await sh(h0, `printf '%s' '${original}' > ${manifest} && rm -f ${rel}/greenlight_site/ops_settings.py`);
      }
    });

    it("creates a superuser (createsuperuser --noinput) on --host 1, and passes stdin through", () => {
      const made = cli("manage", [
        "--stack",
        "qa",
        "--host",
        "1",
        "--",
        "createsuperuser",
        "--noinput",
        "--username",
        "ops",
        "--email",
        "ops@example.com",
      ]);
      assert.equal(made.code, 0, made.stderr);
      assert.match(made.stdout, /Superuser created successfully/);
      const check = cli(
        "manage",
        ["--stack", "qa", "--", "shell"],
        "from django.contrib.auth.models import User\nprint('superuser', User.objects.get(username='ops').is_superuser)\n",
      );
      assert.equal(check.code, 0, check.stderr);
      assert.match(check.stdout, /^superuser True$/m, "one database: host 0 sees the user host 1 made");
    });

    it("is interactive with a terminal: the shell on the host has a TTY", () => {
      // util-linux script(1) gives the CLI a terminal, as a user's has.
      const command = [process.execPath, ...cliArgs("manage", ["--stack", "qa", "--", "shell"])]
        .map((a) => `'${a.replace(/'/g, `'\\''`)}'`)
        .join(" ");
      const r = spawnSync("script", ["-qec", command, "/dev/null"], {
        encoding: "utf8",
        cwd: ROOT,
        env: env(),
        input: "import sys; print('tty:', sys.stdin.isatty(), 6 * 7)\nexit()\n",
        timeout: 120_000,
      });
      assert.equal(r.status, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /tty: True 42/);
    });

    it("exits with the command's status and refuses without a command", () => {
      const bad = cli("manage", ["--stack", "qa", "--", "nosuchcommand"]);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /Unknown command: 'nosuchcommand'/);
      const none = cli("manage", ["--stack", "qa"]);
      assert.equal(none.code, 1);
      assert.match(none.stderr, /^error: usage: npm run manage -- --stack STACK .*after --/);
    });

    it("in prod goes through the bastion, and asks for --yes without a terminal to confirm on", async () => {
      const refused = cli("manage", ["--stack", "prod", "--", "shell", "-c", "print('ran')"]);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /^error: prod is a protected stack: to run manage\.py shell .* pass --yes\n$/);
      assert.doesNotMatch(refused.stdout, /ran/);
      const before = (await sh(bastion, "grep -c 'Accepted publickey for admin' /var/log/sshd.log || true")) || "0";
      const r = cli("manage", [
        "--stack",
        "prod",
        "--yes",
        "--host",
        "1",
        "--",
        "shell",
        "-c",
        "import os; print(os.uname().nodename)",
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim().split("\n").pop(), "h1");
      const afterCount = await sh(bastion, "grep -c 'Accepted publickey for admin' /var/log/sshd.log || true");
      assert.equal(Number(afterCount), Number(before) + 1, "one jump through the bastion");
    });
  });

  describe("logs", () => {
    it("shows the app's and nginx's lines from every host, prefixed by host and source; --grep and --slot filter", async () => {
      for (const h of [h0, h1]) assert.equal((await w.get(h, 8001, `/healthz?from-${h.name}`)).status, 200);
      const r = cli("logs", ["--stack", "qa", "--lines", "20"]);
      assert.equal(r.code, 0, r.stderr);
      for (const h of ["h0", "h1"]) {
        assert.match(r.stdout, new RegExp(`^${h} nginx-blue \\| .*GET /healthz\\?from-${h} `, "m"), r.stderr);
        assert.match(r.stdout, new RegExp(`^${h} app-blue \\| `, "m"), "gunicorn's own log");
      }
      const grepped = cli("logs", ["--stack", "qa", "--grep", "from-h[01]"]);
      assert.equal(grepped.code, 0, grepped.stderr);
      const lines = grepped.stdout.trim().split("\n");
      assert.ok(lines.length >= 2, grepped.stdout);
      for (const l of lines) assert.match(l, /^h[01] (nginx|app)-blue \| .*from-h[01]/);
      const green = cli("logs", ["--stack", "qa", "--slot", "green"]);
      assert.equal(green.code, 0, green.stderr);
      assert.doesNotMatch(green.stdout, /-blue \|/);
      const badRe = cli("logs", ["--stack", "qa", "--grep", "("]);
      assert.notEqual(badRe.code, 0);
      assert.match(badRe.stderr, /h0 grep: /);
    });

    it("--follow through the bastion streams new lines until Ctrl-C, then ends its readers on the hosts", async () => {
      const child: ChildProcess = spawn(
        process.execPath,
        cliArgs("logs", ["--stack", "prod", "--follow", "--lines", "0"]),
        {
          cwd: ROOT,
          env: env(),
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      let out = "";
      let err = "";
      child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
      child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
      const readers = async (h: RigHost) =>
        Number((await h.exec(["sh", "-c", "pgrep -u deploy -c -x tail || true"])).stdout.trim() || 0);
      try {
        await until("the readers on both hosts", async () => (await readers(h0)) > 0 && (await readers(h1)) > 0);
        const marker = `follow-${Date.now()}`;
        await until(
          "the new request's line from h1",
          async () => {
            await w.get(h1, 8001, `/healthz?${marker}`);
            return new RegExp(`^h1 nginx-blue \\| .*${marker}`, "m").test(out);
          },
          20_000,
        );
        child.kill("SIGINT");
        assert.equal(await exited, 0, err);
      } finally {
        child.kill("SIGKILL");
      }
      for (const h of [h0, h1]) await until(`no reader left on ${h.name}`, async () => (await readers(h)) === 0);
    });
  });

  describe("status", () => {
    it("reports per host and colour the release, its process and health, disk, last backup; no drift", () => {
      const r = cli("status", ["--stack", "prod", "--json"]);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      const s = JSON.parse(r.stdout) as {
        hosts: {
          name: string;
          hostname: string;
          slots: Record<
            string,
            { release: string | null; process: string; health: { code: number; body: string } | null }
          >;
          disk: { usedPercent: number; availKb: number };
          lastBackup: { key: string; release: string } | null;
        }[];
        drift: unknown[];
      };
      assert.deepEqual(
        s.hosts.map((h) => [h.name, h.hostname, h.slots.blue.release, h.slots.blue.process, h.slots.blue.health?.body]),
        [
          ["h0", "h0", RELEASE, "RUNNING", RELEASE],
          ["h1", "h1", RELEASE, "RUNNING", RELEASE],
        ],
      );
      assert.equal(s.hosts[0].slots.green.release, null);
      assert.ok(s.hosts[0].disk.availKb > 0 && s.hosts[0].disk.usedPercent >= 0);
      assert.match(s.hosts[0].lastBackup?.key ?? "", /^db\/\d{8}T\d{6}Z-before-r1\.dump$/);
      assert.equal(s.hosts[0].lastBackup?.release, RELEASE);
      assert.equal(s.hosts[1].lastBackup, null, "backups run on the first host only");
      assert.deepEqual(s.drift, []);
      const text = cli("status", ["--stack", "qa"]);
      assert.equal(text.code, 0, text.stderr);
      assert.match(text.stdout, /^ {2}blue {2}r1 +RUNNING +healthy {2}<- live$/m);
      assert.match(text.stdout, /^drift: none$/m);
    });

    it("names drift: a pending release in the stack file, a slot the hosts serve differently, an unhealthy slot", async () => {
      const file = path.join(dir, "Pulumi.qa.yaml");
      const text = fs.readFileSync(file, "utf8");
      try {
        fs.writeFileSync(
          file,
          writeConfig(text, { greenRelease: "r2", greenArtifact: artifact.key, greenSha256: artifact.sha256 }),
        );
        await sh(h1, `supervisorctl stop ${APP}-blue`);
        const r = cli("status", ["--stack", "qa"]);
        assert.equal(r.code, 2, r.stderr + r.stdout);
        assert.match(r.stdout, /^ {2}h0: green serves nothing, the stack file asks for r2 \(pulumi up is pending\)$/m);
        assert.match(r.stdout, /^ {2}h1: blue \(live\) is not healthy: HTTP 502/m);
      } finally {
        fs.writeFileSync(file, text);
        await sh(h1, `supervisorctl start ${APP}-blue`);
      }
    });
  });

  describe("refusals", () => {
    it("refuses a stack that is not deployed, or that it cannot read, in one line", () => {
      deployed("qa", {});
      try {
        for (const [script, args] of [
          ["manage", ["--stack", "qa", "--", "check"]],
          ["logs", ["--stack", "qa"]],
          ["status", ["--stack", "qa"]],
        ] as const) {
          const r = cli(script, [...args]);
          assert.equal(r.code, 1, script);
          assert.equal(
            r.stderr,
            "error: stack qa is not deployed (its outputs have no hosts): run pulumi up --stack qa first\n",
            script,
          );
        }
      } finally {
        deployed("qa", outputs("qa"));
      }
      fs.rmSync(path.join(dir, "outputs.prod.json"));
      try {
        const r = cli("status", ["--stack", "prod"]);
        assert.equal(r.code, 1);
        assert.equal(
          r.stderr,
          "error: cannot read the outputs of stack prod (pulumi stack output --stack prod: error: no stack named 'prod' found)\n",
        );
      } finally {
        deployed("prod", outputs("prod"));
      }
    });

    it("refuses a host or a bastion whose key is not the pinned one, before anything runs", async () => {
      const marker = "/tmp/gl-ops-should-not-exist";
      const swapped = (stack: "qa" | "prod", who: RigHost, key: RigHost) =>
        outputs(stack, {
          knownHosts:
            [h0, h1, bastion].map((h) => `${h.ip} ${(h === who ? key : h).hostKey.publicKey}`).join("\n") + "\n",
        });
      try {
        deployed("qa", swapped("qa", h0, h1));
        const host = cli("manage", ["--stack", "qa", "--", "shell", "-c", `open('${marker}', 'w')`]);
        assert.equal(host.code, 1);
        assert.match(
          host.stderr,
          /^error: host key mismatch for host 0 \(10\.231\.9\.10\): the stack pins SHA256:\S+, the server offered SHA256:\S+; refusing to connect/m,
        );
        const logs = cli("logs", ["--stack", "qa"]);
        assert.equal(logs.code, 1);
        assert.match(logs.stderr, /error: h0 \(10\.231\.9\.10\): host key mismatch for host 0/);
        deployed("prod", swapped("prod", bastion, h0));
        const jump = cli("manage", ["--stack", "prod", "--yes", "--", "shell", "-c", `open('${marker}', 'w')`]);
        assert.equal(jump.code, 1);
        assert.match(jump.stderr, /^error: host key mismatch for the bastion \(10\.231\.9\.5\)/m);
        for (const h of [h0, h1]) assert.equal((await h.exec(["test", "-e", marker])).code, 1, `ran on ${h.name}`);
      } finally {
        deployed("qa", outputs("qa"));
        deployed("prod", outputs("prod"));
      }
    });
  });

  describe("plain settings", () => {
    it("greenlight:settings reach the hosts' .env through the settings step, beside the secrets", async () => {
      const c = stackConfig("qa", { settings: JSON.stringify({ EMAIL_HOST: "smtp.example.com", EMAIL_PORT: 587 }) });
      const cfg = parseConfig(c.values, new Set(c.secretKeys), { stack: "qa" });
      // As the program publishes them (environment.ts): plain Strings under the stack's path.
      for (const [name, value] of Object.entries(cfg.settings)) {
        w.aws.putParameter(`${w.parameterPath}${name}`, value, "String");
      }
      const r = await w.step(h0, w.values.settings());
      assert.equal(r.code, 0, r.stderr);
      const read = cli("manage", [
        "--stack",
        "qa",
        "--",
        "shell",
        "-c",
        "from greenlight_site.envfile import read_env; e = read_env('.env'); print(e['EMAIL_HOST'], e['EMAIL_PORT'], 'SECRET_KEY' in e)",
      ]);
      assert.equal(read.code, 0, read.stderr);
      assert.equal(read.stdout.trim().split("\n").pop(), "smtp.example.com 587 True");
    });
  });

  describe("sshConfig", () => {
    it("lets plain ssh -F reach a private host through the bastion with the stack's key and pinned keys", () => {
      const key = path.join(dir, "greenlight-prod.key");
      const known = path.join(dir, "greenlight-prod.known_hosts");
      fs.writeFileSync(key, w.deployKey.privateKey, { mode: 0o600 });
      fs.writeFileSync(known, outputs("prod").knownHosts);
      const config = path.join(dir, "ssh_config");
      fs.writeFileSync(
        config,
        sshConfig({
          stack: "prod",
          hosts: [h0.ip, h1.ip],
          bastion: bastion.ip,
          identityFile: key,
          knownHostsFile: known,
        }),
      );
      // No agent, no user config: only what the file says.
      const ssh = (known2?: string) =>
        spawnSync(
          "ssh",
          [
            "-F",
            config,
            ...(known2 ? ["-o", `UserKnownHostsFile=${known2}`] : []),
            "-o",
            "BatchMode=yes",
            "prod-1",
            "id -un; hostname; echo $SSH_CONNECTION",
          ],
          { encoding: "utf8", env: { PATH: process.env.PATH, HOME: dir }, timeout: 60_000 },
        );
      const r = ssh();
      assert.equal(r.status, 0, r.stderr);
      const [user, hostname, conn] = r.stdout.trim().split("\n");
      assert.deepEqual([user, hostname, conn.split(" ")[0]], ["deploy", "h1", bastion.ip]);
      const empty = path.join(dir, "empty.known_hosts");
      fs.writeFileSync(empty, "");
      const refused = ssh(empty);
      assert.notEqual(refused.status, 0, "an unknown host key is refused (StrictHostKeyChecking yes)");
      assert.match(refused.stderr, /Host key verification failed/);
    });
  });
});
