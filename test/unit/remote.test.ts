import * as assert from "assert";
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ADMIN_USER, DEPLOY_USER } from "../../components/hosts";
import {
  ADMIN,
  DEPLOY,
  MAX_COMMAND,
  QUIET_STEPS,
  SCRIPT_DIR,
  STEPS,
  StepCall,
  createCommand,
  recordPath,
  restoreRequest,
  scriptId,
  scriptsId,
  shellQuote,
  steps,
  updateCommand,
} from "../../components/remote";

const common = { app: "site", parameterPath: "/greenlight/prod/", region: "eu-west-1" };
const release = "2026-12-01.3";
/** Every step with values as long as a real prod stack's. */
const calls: StepCall[] = [
  steps.bootstrap({
    app: "site",
    deployKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBq2mY0n8rD1bU4cX9w7xVtq0l6kGdH8zQyE3pLrNs5W",
    vpcCidr: "10.40.0.0/16",
    pgMajor: "15",
    healthPath: "/healthz",
  }),
  steps.settings({ ...common, healthPath: "/healthz" }),
  steps.fetch({
    ...common,
    slot: "green",
    release,
    artifactBucket: "prod-buckets-artifacts-0123abcd4567ef89",
    artifactKey: `artifacts/${"f".repeat(64)}.tar.gz`,
    sha256: "f".repeat(64),
    workers: 4,
  }),
  steps.backup({ ...common, slot: "green", release, backupBucket: "prod-buckets-backups-0123abcd4567ef89" }),
  steps.migrate({ app: "site", slot: "green", release }),
  steps.activate({ app: "site", slot: "green", release, healthPath: "/healthz" }),
  steps.cleanup({ app: "site", keep: 5 }),
  steps.workers({ app: "site", slot: "green", release, mode: "start", beat: true }),
  steps.workers({ app: "site", slot: "green", release, mode: "off" }),
  steps.restore({
    ...common,
    backupBucket: "prod-buckets-backups-0123abcd4567ef89",
    backupKey: "db/20261101T000000Z-before-2026-11-01.1.dump",
    restoreId: "2026-12-02.again",
    maintenance: "restore db/20261101T000000Z-before-2026-11-01.1.dump",
  }),
];

/**
 * The words a command hands step.sh, read back through a real bash in which `bash` is a
 * function that prints its arguments: nothing runs on the test machine.
 */
function words(command: string): string[] {
  const plain = command.replace(/^sudo -n /, "");
  if (!/^bash \/\S+\/step\.sh [a-z]+ /.test(plain)) throw new Error(`unexpected command shape: ${plain.slice(0, 60)}`);
  const out = execFileSync("/bin/bash", ["-c", `bash() { printf '%s\\0' "$@"; }; ${plain}`], {
    env: { PATH: "/usr/bin:/bin" },
    stdio: ["ignore", "pipe", "pipe"],
  }).toString("utf8");
  return out.split("\0").slice(0, -1);
}

describe("remote command builder", () => {
  it("quotes any value so the shell expands nothing", () => {
    for (const v of [
      "plain",
      "it's",
      "$(reboot)",
      "`id`",
      'a"b',
      "back\\slash",
      "*",
      "; rm -rf /",
      "$HOME",
      "tab\there",
    ]) {
      const echoed = execFileSync("/bin/bash", ["-c", `printf '%s' ${shellQuote(v)}`], {
        stdio: ["ignore", "pipe", "pipe"],
      }).toString();
      assert.equal(echoed, v);
    }
  });

  it("each step's command is one line under 600 characters: the step, the scripts' version and the values", () => {
    const id = scriptsId();
    for (const call of calls) {
      const command = createCommand(call, { timeoutSeconds: 1200 });
      assert.ok(!/[\r\n]/.test(command), `${call.step}: one line`);
      assert.ok(command.length < MAX_COMMAND, `${call.step}: ${command.length} characters`);
      assert.ok(command.includes(`/${id}/`), `${call.step} names the scripts' version`);
      assert.doesNotMatch(command, /set -Eeuo|pipefail|#!/, `${call.step} carries no script text`);
      const [script, step, ...values] = words(command);
      assert.equal(step, call.step);
      assert.match(script, /\/step\.sh$/);
      assert.deepEqual(
        Object.fromEntries(values.map((w) => [w.slice(0, w.indexOf("=")), w.slice(w.indexOf("=") + 1)])),
        { ...call.values, GL_TIMEOUT: "1200" },
      );
    }
  });

  it("the workers' off (workers-start's delete) names the slot and release it may stop, and nothing else", () => {
    const off = steps.workers({ app: "site", slot: "blue", release: "r7", mode: "off", beat: true });
    assert.deepEqual(off.values, { GL_APP: "site", GL_SLOT: "blue", GL_RELEASE: "r7", GL_MODE: "off" });
    assert.equal(recordPath(off), "/srv/site/steps/blue.r7.workers.off.json");
    const runner = fs.readFileSync(path.join(SCRIPT_DIR, "step.sh"), "utf8");
    assert.match(runner, /GL_MODE =~ \^\(on\|off\|stop\|start\)\$/, "step.sh takes mode off");
  });

  it("quoted values reach step.sh unexpanded", () => {
    const call = steps.migrate({ app: "site", slot: "blue", release: "r1'$(touch /tmp/pwned)" });
    assert.ok(words(createCommand(call, { timeoutSeconds: 60 })).includes("GL_RELEASE=r1'$(touch /tmp/pwned)"));
    assert.ok(!fs.existsSync("/tmp/pwned"));
  });

  it("runs the bootstrap through sudo from the admin's copy, every other step as deploy from the installed scripts", () => {
    const id = scriptsId();
    for (const call of calls) {
      const command = createCommand(call, { timeoutSeconds: 60 });
      if (call.step === "bootstrap") {
        assert.equal(call.user, ADMIN);
        assert.ok(command.startsWith(`sudo -n bash /home/admin/.greenlight/${id}/remote/step.sh bootstrap `));
      } else {
        assert.equal(call.user, DEPLOY);
        assert.ok(command.startsWith(`bash /srv/greenlight-scripts/${id}/step.sh ${call.step} `), command);
      }
    }
    assert.equal(ADMIN, ADMIN_USER);
    assert.equal(DEPLOY, DEPLOY_USER);
  });

  it("refuses variable names and values that are not plain one-line strings, and a command too long", () => {
    const bad = (values: Record<string, string>): StepCall => ({ step: "fetch", user: DEPLOY, values });
    const c = (values: Record<string, string>) => createCommand(bad(values), { timeoutSeconds: 60 });
    assert.throws(() => c({ PATH: "/tmp" }), /not a greenlight variable name: PATH/);
    assert.throws(() => c({ "GL_A;B": "x" }), /not a greenlight variable name/);
    assert.throws(() => c({ GL_A: "x\ny" }), /GL_A must be a one-line string/);
    assert.throws(() => c({ GL_A: "x".repeat(600) }), /the fetch command is \d+ characters, over 600/);
  });

  it("the content address of the scripts is the one the bootstrap checks on the host (lib.sh's scripts_id)", () => {
    const onHost = execFileSync("/bin/bash", ["-c", `. ${SCRIPT_DIR}/lib.sh; scripts_id ${SCRIPT_DIR}`], {
      env: { PATH: "/usr/bin:/bin" },
      stdio: ["ignore", "pipe", "pipe"],
    })
      .toString()
      .trim();
    assert.equal(onHost, scriptsId());
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gl-scripts-"));
    try {
      for (const f of fs.readdirSync(SCRIPT_DIR)) fs.copyFileSync(path.join(SCRIPT_DIR, f), path.join(dir, f));
      assert.equal(scriptsId(dir), scriptsId());
      fs.appendFileSync(path.join(dir, "cleanup.sh"), "\n");
      assert.notEqual(scriptsId(dir), scriptsId(), "any script's change is a new version");
      assert.equal(scriptId("bootstrap", dir), scriptId("bootstrap"), "the bootstrap's own id is unchanged");
      fs.appendFileSync(path.join(dir, "background-boot.sh"), "\n");
      assert.notEqual(scriptId("bootstrap", dir), scriptId("bootstrap"), "the bootstrap installs background-boot");
      fs.appendFileSync(path.join(dir, "lib.sh"), "\n");
      assert.notEqual(scriptId("bootstrap", dir), scriptId("bootstrap"), "lib.sh is part of every step");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("an update prints the step's recorded result, per slot and release, and fails saying why when there is none", () => {
    const fetch = calls.find((c) => c.step === "fetch")!;
    assert.equal(recordPath(fetch), `/srv/site/steps/green.${release}.fetch.json`);
    assert.equal(recordPath(calls.find((c) => c.step === "settings")!), "/srv/site/steps/settings.json");
    const run = (fake: string, command: string) =>
      spawnSync("/bin/bash", ["-c", `${fake}; ${command}`], {
        env: { PATH: "/usr/bin:/bin" },
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
      });
    const shown = run(`cat() { echo "shown: $*"; }`, updateCommand(fetch));
    assert.equal(shown.status, 0);
    assert.equal(shown.stdout, `shown: /srv/site/steps/green.${release}.fetch.json\n`);
    const missing = run(`cat() { return 1; }; hostname() { echo host-7; }`, updateCommand(fetch));
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /^greenlight fetch: no recorded result \/srv\/site\/steps\/green\.\S+ on host-7: /);
    for (const call of calls.filter((c) => c.step !== "bootstrap")) {
      assert.ok(updateCommand(call).length < MAX_COMMAND);
    }
    assert.throws(() => updateCommand(calls[0]), /the bootstrap has no recorded result/);
  });

  it("a restore's record is per request (backup key and restore id), named as step.sh names it on the host", () => {
    const key = "db/20261101T000000Z-before-r1.dump";
    const restore = (backupKey: string, restoreId?: string) =>
      steps.restore({ ...common, backupBucket: "b-backups", backupKey, restoreId });
    const paths = [restore(key), restore(key, "again-2"), restore(key, "again-3"), restore("db/other.dump")].map(
      recordPath,
    );
    assert.equal(new Set(paths).size, 4, "another key or another id is another request, with a record of its own");
    assert.equal(recordPath(restore(key)), recordPath(restore(key)), "the same request, the same record");
    for (const p of paths) assert.match(p, /^\/srv\/site\/steps\/restore\.[0-9a-f]{16}\.json$/);
    assert.equal(recordPath(restore(key, "again-2")), `/srv/site/steps/restore.${restoreRequest(key, "again-2")}.json`);
    // step.sh's own lines compute the name on the host: run them with bash.
    const runner = fs.readFileSync(path.join(SCRIPT_DIR, "step.sh"), "utf8");
    const line = /^ {2}request=\$\(.*\)$/m.exec(runner);
    assert.ok(line, "step.sh names a restore's request");
    for (const [k, id] of [
      [key, undefined],
      [key, "again-2"],
      ["db/other.dump", "x"],
    ] as const) {
      const r = spawnSync("/bin/bash", ["-c", `${line[0]}; printf %s "$request"`], {
        env: { PATH: "/usr/bin:/bin", GL_BACKUP_KEY: k, ...(id ? { GL_RESTORE_ID: id } : {}) },
        encoding: "utf8",
      });
      assert.equal(r.stdout, restoreRequest(k, id), `${k} ${id ?? ""}`);
    }
  });

  it("a restore's update prints its request's record, or the one a restore before per-request records left for the same key", () => {
    const key = "db/20261101T000000Z-before-r1.dump";
    const run = (fake: string, command: string) =>
      spawnSync("/bin/bash", ["-c", `${fake}; ${command}`], {
        env: { PATH: "/usr/bin:/bin" },
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
      });
    const plain = steps.restore({ ...common, backupBucket: "b", backupKey: key });
    const own = recordPath(plain);
    // A host with only the old restore.json, of this key: shown.
    const legacy = `cat() { if [ "$1" = ${own} ]; then return 1; fi; echo "shown: $*"; }; grep() { [ "$3" = /srv/site/steps/restore.json ] && [ "$2" = '"restored":"${key}"' ]; }`;
    assert.equal(run(legacy, updateCommand(plain)).stdout, "shown: /srv/site/steps/restore.json\n");
    // Of another key: no record, it says so.
    const other = `cat() { if [ "$1" = ${own} ]; then return 1; fi; echo "shown: $*"; }; grep() { return 1; }; hostname() { echo h0; }`;
    const r = run(other, updateCommand(plain));
    assert.equal(r.status, 1);
    assert.match(
      r.stderr,
      /greenlight restore: no recorded result \/srv\/site\/steps\/restore\.[0-9a-f]{16}\.json on h0/,
    );
    // A request with an id never takes the old record.
    assert.doesNotMatch(
      updateCommand(steps.restore({ ...common, backupBucket: "b", backupKey: key, restoreId: "again-2" })),
      /restore\.json/,
    );
  });

  it("the runner and the program agree on whose output is secret", () => {
    const runner = fs.readFileSync(path.join(SCRIPT_DIR, "step.sh"), "utf8");
    const m = /^case \$step in ([a-z |]+)\) quiet=1 ;; esac$/m.exec(runner);
    assert.ok(m, "step.sh names its quiet steps");
    assert.deepEqual(m[1].split(" | ").sort(), [...QUIET_STEPS].sort());
  });

  it("every remote script is strict bash that refuses to run without its values", () => {
    const unprivileged = (argv: string[]) => {
      const [file, ...args] =
        process.getuid?.() === 0 ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", ...argv] : argv;
      return spawnSync(file, args, {
        env: { PATH: "/usr/bin:/bin" },
        encoding: "utf8",
        cwd: "/",
        stdio: ["ignore", "pipe", "pipe"],
      });
    };
    for (const step of STEPS) {
      const file = path.join(SCRIPT_DIR, `${step}.sh`);
      assert.match(fs.readFileSync(file, "utf8"), /^#!\/usr\/bin\/env bash\n/);
      // Unprivileged, so a script that forgot to check its values first could do no harm here.
      const r = unprivileged(["/bin/bash", file]);
      assert.notEqual(r.status, 0, `${step} ran without values`);
      assert.match(r.stderr, /missing value GL_APP/, step);
      const runner = unprivileged(["/bin/bash", path.join(SCRIPT_DIR, "step.sh"), step]);
      assert.notEqual(runner.status, 0);
      assert.match(runner.stderr, new RegExp(`^greenlight ${step} on \\S+: GL_TIMEOUT is not a number of seconds`));
    }
    const r = unprivileged(["/bin/bash", path.join(SCRIPT_DIR, "step.sh"), "reboot"]);
    assert.match(r.stderr, /not a greenlight step: 'reboot'/);
    assert.match(fs.readFileSync(path.join(SCRIPT_DIR, "lib.sh"), "utf8"), /^set -Eeuo pipefail$/m);
  });
});
