import * as pulumi from "@pulumi/pulumi";
import * as assert from "assert";
import { execFileSync } from "child_process";
import { MAX_COMMAND, SCRIPT_DIR, scriptId, scriptsId } from "../../components/remote";
import { ProgramRun, Registered, isSecretValue, reveal } from "../rig/program";
import { byName, evaluate, ofType, slot } from "./fakeEngine";

const COMMAND = "command:remote:Command";
type Inputs = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const inputs = (r: Registered) => reveal<Inputs>(r.inputs);
const commands = (run: ProgramRun) => ofType(run, COMMAND);
const names = (run: ProgramRun) => commands(run).map((c) => c.name.replace(/^(qa|prod)-release-/, ""));
const dependsOn = (run: ProgramRun, a: string, b: string) =>
  byName(run, a).options.dependencies.includes(byName(run, b).urn);

/**
 * The values a command hands step.sh, read back through a real shell in which `bash` is a
 * function that prints its arguments. `sudo -n ` is stripped first, and any other shape is
 * refused: this must never execute a script on the test machine.
 */
function values(create: string): Record<string, string> {
  const command = create.replace(/^sudo -n /, "");
  if (!/^bash \/\S+\/step\.sh [a-z]+ GL_/.test(command))
    throw new Error(`unexpected command shape: ${command.slice(0, 60)}`);
  const out = execFileSync("/bin/bash", ["-c", `bash() { shift 2; printf '%s\\0' "$@"; }; ${command}`], {
    env: { PATH: "/usr/bin:/bin" },
    stdio: ["ignore", "pipe", "pipe"],
  }).toString();
  return Object.fromEntries(
    out
      .split("\0")
      .filter(Boolean)
      .map((v) => [v.slice(0, v.indexOf("=")), v.slice(v.indexOf("=") + 1)]),
  );
}

const both: Record<string, string> = { ...slot("blue", "r1"), ...slot("green", "r2"), live: "green" };

describe("release graph", () => {
  let qaEmpty: ProgramRun;
  let qa: ProgramRun;
  let prod: ProgramRun;
  before(async () => {
    qaEmpty = await evaluate("qa");
    qa = await evaluate("qa", slot("blue", "r1"));
    prod = await evaluate("prod", both);
  });

  it("a stack without releases only bootstraps its hosts and renders their settings", () => {
    assert.deepEqual(names(qaEmpty), ["bootstrap-0", "settings-0"]);
  });

  it("reads as a plan: step names say the colour and the step", () => {
    assert.deepEqual(names(qa).sort(), [
      "blue-activate-0",
      "blue-backup",
      "blue-check",
      "blue-fetch-0",
      "blue-migrate",
      "bootstrap-0",
      "cleanup-0",
      "maintenance-off-0",
      "settings-0",
    ]);
    assert.deepEqual(names(prod).sort(), [
      "blue-activate-0",
      "blue-activate-1",
      "blue-backup",
      "blue-check",
      "blue-fetch-0",
      "blue-fetch-1",
      "blue-migrate",
      "bootstrap-0",
      "bootstrap-1",
      "cleanup-0",
      "cleanup-1",
      "green-activate-0",
      "green-activate-1",
      "green-backup",
      "green-check",
      "green-fetch-0",
      "green-fetch-1",
      "green-migrate",
      "maintenance-off-0",
      "maintenance-off-1",
      "settings-0",
      "settings-1",
      "workers-start-0",
      "workers-start-1",
      "workers-stop-0",
      "workers-stop-1",
    ]);
  });

  describe("background workers (with Redis: prod's default)", () => {
    const p = (s: string) => `prod-release-${s}`;
    it("stop on every host after the cutover, then start on every host; beat on the first host only", () => {
      for (const i of [0, 1]) {
        assert.ok(dependsOn(prod, p(`workers-stop-${i}`), "prod-alb-https"), `stop ${i} waits for the cutover`);
        assert.ok(dependsOn(prod, p(`workers-stop-${i}`), p(`green-activate-${i}`)));
        for (const j of [0, 1]) {
          assert.ok(dependsOn(prod, p(`workers-start-${i}`), p(`workers-stop-${j}`)), `start ${i} after stop ${j}`);
        }
        const start = values(inputs(byName(prod, p(`workers-start-${i}`))).create);
        assert.deepEqual([start.GL_MODE, start.GL_SLOT, start.GL_RELEASE], ["start", "green", "r2"]);
        assert.equal(start.GL_BEAT, i === 0 ? "1" : undefined, `beat only on host 0 (${i})`);
        // stop's command names no release: a release's preview shows only its new triggers.
        const stop = values(inputs(byName(prod, p(`workers-stop-${i}`))).create);
        assert.deepEqual(
          [stop.GL_MODE, stop.GL_SLOT, stop.GL_RELEASE, stop.GL_BEAT],
          ["stop", undefined, undefined, undefined],
        );
      }
      const listener = byName(prod, "prod-alb-https");
      for (const c of commands(prod).filter((x) => x.name.includes("-workers-"))) {
        assert.ok(!listener.options.dependencies.includes(c.urn), `the listener does not wait for ${c.name}`);
      }
    });
    it("workers-start's delete is workers.sh off for its own slot and release: a short line with no secret", async () => {
      for (const i of [0, 1]) {
        const start = inputs(byName(prod, p(`workers-start-${i}`)));
        assert.equal(typeof start.delete, "string", `workers-start-${i} has a delete`);
        assert.ok(start.delete.length < MAX_COMMAND && !start.delete.includes("\n"), start.delete);
        assert.deepEqual(values(start.delete), {
          GL_APP: "site",
          GL_SLOT: "green",
          GL_RELEASE: "r2",
          GL_MODE: "off",
          GL_TIMEOUT: "1200",
        });
        // It runs the same installed scripts as the create: it calls the script, inlines nothing.
        const runner = (cmd: string) => cmd.split(" ").slice(0, 3).join(" ");
        assert.equal(runner(start.delete), runner(start.create));
        assert.match(start.delete, /^bash \/srv\/greenlight-scripts\/[0-9a-f]{16}\/step\.sh workers /);
        assert.ok(start.delete.length < 200, `${start.delete.length} characters: the preview stays small`);
      }
      // Nothing else deletes anything on a host.
      for (const c of commands(prod).filter((x) => !/-workers-start-\d$/.test(x.name))) {
        assert.equal(inputs(c).delete, undefined, c.name);
      }
      // Rolling back: the new steps' delete names the release they start.
      const back = await evaluate("prod", { ...both, live: "blue" });
      const d = values(inputs(byName(back, p("workers-start-1"))).delete);
      assert.deepEqual([d.GL_SLOT, d.GL_RELEASE, d.GL_MODE], ["blue", "r1", "off"]);
    });
    it("a stack without Redis has no worker steps", async () => {
      assert.ok(!names(qa).some((n) => n.startsWith("workers-")));
      const off = await evaluate("prod", { ...both, redis: "off" });
      assert.ok(!names(off).some((n) => n.startsWith("workers-")));
    });
  });

  describe("maintenance mode", () => {
    const p = (s: string) => `prod-release-${s}`;
    let unsafe: ProgramRun;
    let restoring: ProgramRun;
    before(async () => {
      unsafe = await evaluate("prod", { ...both, allowUnsafeMigrations: "r2" });
      restoring = await evaluate("prod", { ...both, restoreBackup: "db/20261101T000000Z-before-r2.dump" });
    });
    const listener = (run: ProgramRun) => byName(run, "prod-alb-https");

    it("a release that breaks compatibility on purpose: on everywhere after every fetch -> backup -> migrate -> activate -> cutover -> off everywhere", () => {
      const on = (i: number) => p(`maintenance-on-${i}`);
      const off = (i: number) => p(`maintenance-off-${i}`);
      for (const i of [0, 1]) {
        for (const j of [0, 1])
          assert.ok(dependsOn(unsafe, on(i), p(`green-fetch-${j}`)), "the window opens after every fetch");
        assert.ok(dependsOn(unsafe, p("green-backup"), on(i)), "the backup waits for maintenance on every host");
        for (const j of [0, 1])
          assert.ok(dependsOn(unsafe, off(i), p(`green-activate-${j}`)), "off after every activation");
        assert.ok(byName(unsafe, off(i)).options.dependencies.includes(listener(unsafe).urn), "off after the cutover");
        assert.deepEqual(values(inputs(byName(unsafe, on(i))).create), {
          GL_APP: "site",
          GL_MODE: "on",
          GL_REASON: "release r2",
          GL_TIMEOUT: "1200",
        });
        assert.equal(values(inputs(byName(unsafe, off(i))).create).GL_MODE, "off");
      }
      assert.ok(dependsOn(unsafe, p("green-migrate"), p("green-backup")));
      assert.ok(listener(unsafe).options.dependencies.includes(byName(unsafe, p("green-activate-1")).urn));
      // The window's steps say so (each turns the mode on again on its host, and its failure
      // message says the site stays in maintenance); the serving colour's steps do not.
      for (const s of ["green-backup", "green-migrate", "green-activate-0", "green-activate-1"])
        assert.equal(values(inputs(byName(unsafe, p(s))).create).GL_MAINTENANCE, "release r2", s);
      for (const s of ["blue-backup", "blue-migrate", "blue-activate-0", "green-fetch-0"])
        assert.equal(values(inputs(byName(unsafe, p(s))).create).GL_MAINTENANCE, undefined, s);
      assert.ok(!dependsOn(unsafe, p("blue-backup"), on(0)), "the other colour is not in the window");
    });

    it("a restore runs under maintenance: on everywhere -> safety dump and restore -> off everywhere", () => {
      for (const i of [0, 1]) {
        assert.ok(dependsOn(restoring, p("restore"), p(`maintenance-on-${i}`)));
        assert.ok(dependsOn(restoring, p(`maintenance-off-${i}`), p("restore")));
        assert.equal(
          values(inputs(byName(restoring, p(`maintenance-on-${i}`))).create).GL_REASON,
          "restore db/20261101T000000Z-before-r2.dump",
        );
      }
      assert.equal(
        values(inputs(byName(restoring, p("restore"))).create).GL_MAINTENANCE,
        "restore db/20261101T000000Z-before-r2.dump",
      );
    });

    it("no window, no maintenance-on; giving a window up (or finishing one) turns the mode off again", () => {
      assert.ok(!commands(prod).some((c) => c.name.includes("maintenance-on")));
      for (const i of [0, 1]) {
        const was = reveal<unknown[]>(inputs(byName(unsafe, p(`maintenance-off-${i}`))).triggers);
        const now = reveal<unknown[]>(inputs(byName(prod, p(`maintenance-off-${i}`))).triggers);
        assert.equal(was[0], "release r2");
        assert.equal(now[0], "", "a new trigger: the off step runs again when the stack stops naming the window");
      }
      // A rollback (live flips) keeps the off steps as they are: still one change, no command.
      const back = evaluate("prod", { ...both, live: "blue" });
      return back.then((run) => {
        for (const i of [0, 1])
          assert.deepEqual(
            reveal(inputs(byName(run, p(`maintenance-off-${i}`)))),
            reveal(inputs(byName(prod, p(`maintenance-off-${i}`)))),
          );
      });
    });
  });

  it("a rotated secret re-renders every host's settings and runs no release step", async () => {
    const before = await evaluate("qa", {
      ...slot("blue", "r1"),
      sentryDsn: { secret: "https://old@sentry.example/1" },
    });
    const after = await evaluate("qa", {
      ...slot("blue", "r1"),
      sentryDsn: { secret: "https://new@sentry.example/1" },
    });
    const changed = commands(after)
      .filter((c) => JSON.stringify(reveal(c.inputs)) !== JSON.stringify(reveal(byName(before, c.name).inputs)))
      .map((c) => c.name);
    assert.deepEqual(changed, ["qa-release-settings-0"]);
    const triggers = byName(after, "qa-release-settings-0").inputs.triggers as unknown[];
    assert.ok(isSecretValue(triggers) || isSecretValue(triggers[0]), "the digest of secret values is itself secret");
    assert.match(String(reveal<unknown[]>(triggers)[0]), /^[0-9a-f]{64}$/);
  });

  it("a changed plain setting (greenlight:settings) re-renders every host's settings too", async () => {
    const with_ = (v: string) => evaluate("qa", { ...slot("blue", "r1"), settings: JSON.stringify({ EMAIL_HOST: v }) });
    const [a, b] = [await with_("smtp.example.com"), await with_("smtp2.example.com")];
    const trigger = (run: typeof a) =>
      String(reveal<unknown[]>(byName(run, "qa-release-settings-0").inputs.triggers as unknown[])[0]);
    assert.notEqual(trigger(a), trigger(b));
  });

  it("bootstraps host after host, as admin through sudo; every other step runs as deploy", () => {
    assert.ok(dependsOn(prod, "prod-release-bootstrap-1", "prod-release-bootstrap-0"));
    assert.ok(dependsOn(prod, "prod-release-settings-1", "prod-release-settings-0"), "settings host after host");
    for (const c of commands(prod)) {
      const i = inputs(c);
      if (c.name.includes("bootstrap")) {
        assert.equal(i.connection.user, "admin");
        assert.match(i.create, /^sudo -n bash \/home\/admin\/\.greenlight\/[0-9a-f]{16}\/remote\/step\.sh bootstrap /);
      } else {
        assert.equal(i.connection.user, "deploy");
        assert.doesNotMatch(i.create, /^sudo/);
      }
    }
  });

  it("orders each colour: fetch everywhere -> backup -> migrate (first host) -> activate everywhere", () => {
    const p = (s: string) => `prod-release-${s}`;
    for (const c of ["blue", "green"]) {
      for (const i of [0, 1]) {
        assert.ok(dependsOn(prod, p(`${c}-fetch-${i}`), p(`bootstrap-${i}`)));
        assert.ok(dependsOn(prod, p(`${c}-backup`), p(`${c}-fetch-${i}`)), "backup after every fetch");
        assert.ok(dependsOn(prod, p(`${c}-activate-${i}`), p(`${c}-migrate`)), "activate after migrate");
        assert.ok(dependsOn(prod, p(`cleanup-${i}`), p(`${c}-activate-${i}`)));
      }
      assert.ok(dependsOn(prod, p(`${c}-migrate`), p(`${c}-backup`)), "migrate after the backup");
    }
  });

  it("checks the migrations on the first host after its fetch, before the backup (and so before any migration)", () => {
    const p = (s: string) => `prod-release-${s}`;
    for (const c of ["blue", "green"]) {
      assert.ok(dependsOn(prod, p(`${c}-check`), p(`${c}-fetch-0`)), "the check reads the fetched release");
      assert.ok(!dependsOn(prod, p(`${c}-check`), p(`${c}-fetch-1`)), "it does not wait for the other hosts");
      assert.ok(dependsOn(prod, p(`${c}-backup`), p(`${c}-check`)), "the backup waits for the check");
      assert.ok(!dependsOn(prod, p(`${c}-check`), p(`${c}-backup`)));
      // It reads the database and SSM: it waits for what the fetch waits for (the database, the parameters).
      const ready = byName(prod, p(`${c}-fetch-0`)).options.dependencies.filter((u: string) =>
        /rds\/instance:Instance|ssm\/parameter:Parameter/.test(u),
      );
      assert.ok(ready.length > 0);
      for (const u of ready) assert.ok(byName(prod, p(`${c}-check`)).options.dependencies.includes(u), u);
    }
    const host = (name: string) => inputs(byName(prod, `prod-release-${name}`)).connection.host;
    assert.equal(host("green-check"), host("bootstrap-0"));
  });

  it("the check names its release and stack; --allow-unsafe only for the release allowUnsafeMigrations names", async () => {
    const check = (run: ProgramRun, name: string) => values(inputs(byName(run, name)).create);
    assert.deepEqual(check(prod, "prod-release-green-check"), {
      GL_APP: "site",
      GL_SLOT: "green",
      GL_RELEASE: "r2",
      GL_STACK: "prod",
      GL_TIMEOUT: "1200",
    });
    // What serves is read on the host (the other slot's release): a release to one slot
    // changes nothing in the other slot's check.
    const next = await evaluate("prod", { ...both, ...slot("blue", "r3"), live: "blue" });
    assert.deepEqual(
      reveal(byName(next, "prod-release-green-check").inputs),
      reveal(byName(prod, "prod-release-green-check").inputs),
    );
    const allowed = await evaluate("prod", { ...both, allowUnsafeMigrations: "r2" });
    assert.equal(check(allowed, "prod-release-green-check").GL_ALLOW_UNSAFE, "1");
    assert.equal(check(allowed, "prod-release-blue-check").GL_ALLOW_UNSAFE, undefined, "only the named release");
    assert.equal(check(prod, "prod-release-green-check").GL_ALLOW_UNSAFE, undefined);
    // The allowance changes the check's command only: a check that already ran prints its record.
    assert.deepEqual(inputs(byName(allowed, "prod-release-green-check")).triggers, [
      "r2",
      both.greenSha256,
      "prod-host-0-id",
      [],
    ]);
    const c = byName(prod, "prod-release-green-check");
    assert.equal(inputs(c).logging, "stdout", "Django's own output stays out of the logs");
    assert.ok(c.options.additionalSecretOutputs.includes("stderr"));
  });

  it("the release's migrations are a trigger of its check, so the preview names them; a rollback changes none", async () => {
    const listed = ["notes.0001_initial", "notes.0002_note_attachment", "notes.0003_note_pinned"];
    const run = await evaluate("prod", { ...both, greenMigrations: listed, blueMigrations: listed.slice(0, 2) });
    assert.deepEqual(inputs(byName(run, "prod-release-green-check")).triggers, [
      "r2",
      both.greenSha256,
      "prod-host-0-id",
      listed,
    ]);
    assert.deepEqual(inputs(byName(run, "prod-release-blue-check")).triggers.at(-1), listed.slice(0, 2));
    assert.deepEqual((run.outputs.releases as Record<string, { migrations: string[] }>).green.migrations, listed);
    // Only the check has them: the other steps of the slot run exactly as before.
    for (const n of ["green-fetch-0", "green-backup", "green-migrate", "green-activate-1"]) {
      assert.deepEqual(
        reveal(byName(run, `prod-release-${n}`).inputs),
        reveal(byName(prod, `prod-release-${n}`).inputs),
        n,
      );
    }
    const back = await evaluate("prod", { ...both, greenMigrations: listed, live: "blue" });
    assert.deepEqual(
      reveal(byName(back, "prod-release-green-check").inputs),
      reveal(byName(run, "prod-release-green-check").inputs),
    );
  });

  it("backs up and migrates on the first host only; fetches and activates on every host", () => {
    const host = (name: string) => inputs(byName(prod, `prod-release-${name}`)).connection.host;
    const h0 = host("bootstrap-0");
    const h1 = host("bootstrap-1");
    assert.notEqual(h0, h1);
    assert.equal(host("green-backup"), h0);
    assert.equal(host("green-migrate"), h0);
    assert.equal(host("green-fetch-1"), h1);
    assert.equal(host("green-activate-1"), h1);
  });

  it("runs each step once per release: triggers are the release id, the sha256 and the host", () => {
    const sha = both.greenSha256;
    for (const n of ["green-fetch-1", "green-activate-1"]) {
      assert.deepEqual(inputs(byName(prod, `prod-release-${n}`)).triggers, ["r2", sha, "prod-host-1-id"]);
    }
    for (const n of ["green-backup", "green-migrate"]) {
      assert.deepEqual(inputs(byName(prod, `prod-release-${n}`)).triggers, ["r2", sha, "prod-host-0-id"]);
    }
    // An input change that is not a new release (a new greenlight script, a new bastion
    // address) must not repeat a backup, a migration or a restart: the update prints the result
    // the step recorded on the host, so its stdout (and backups, lastBackup, migrations) keep
    // their values.
    for (const [n, record] of [
      ["green-fetch-0", "green.r2.fetch"],
      ["green-check", "green.r2.check"],
      ["green-backup", "green.r2.backup"],
      ["green-migrate", "green.r2.migrate"],
      ["green-activate-0", "green.r2.activate"],
      ["blue-backup", "blue.r1.backup"],
      ["settings-0", "settings"],
      ["cleanup-1", "cleanup"],
    ]) {
      const update = inputs(byName(prod, `prod-release-${n}`)).update as string;
      assert.ok(update.startsWith(`cat /srv/site/steps/${record}.json 2>/dev/null || `), `${n}: ${update}`);
    }
    // The bootstrap's update runs it again: it installs a new scripts version (and prepares the
    // host only when its own script or values changed, see bootstrap.sh).
    assert.equal(inputs(byName(prod, "prod-release-bootstrap-0")).update, undefined);
  });

  it("a new scripts version changes no step's triggers: it is an update (the recorded result), not a run", () => {
    for (const c of commands(prod)) {
      const triggers = JSON.stringify(inputs(c).triggers);
      assert.ok(!triggers.includes(scriptsId()), `${c.name}'s triggers do not name the scripts' version`);
      if (c.name.includes("bootstrap")) assert.ok(triggers.includes(scriptId("bootstrap")), c.name);
      else assert.ok(inputs(c).create.includes(`/srv/greenlight-scripts/${scriptsId()}/step.sh `), c.name);
    }
  });

  it("the scripts reach each host once per version: a copy of scripts/remote, as admin, before its bootstrap", async () => {
    const copies = ofType(prod, "command:remote:CopyToRemote");
    assert.deepEqual(copies.map((c) => c.name).sort(), ["prod-release-scripts-0", "prod-release-scripts-1"]);
    for (const [i, copy] of copies.entries()) {
      const c = inputs(copy);
      assert.equal(c.remotePath, `/home/admin/.greenlight/${scriptsId()}`);
      const source = copy.inputs.source as pulumi.asset.FileArchive;
      assert.ok(pulumi.asset.Archive.isInstance(source), "an archive (a directory, copied as-is)");
      assert.equal(await source.path, SCRIPT_DIR);
      assert.equal(c.connection.user, "admin");
      assert.deepEqual(c.triggers, [`prod-host-${i}-id`], "a replaced host gets its copy");
      assert.ok(dependsOn(prod, `prod-release-bootstrap-${i}`, copy.name));
    }
  });

  it("every step's command is one short line, and its limit is commandTimeoutMinutes, enforced on the host", async () => {
    for (const c of commands(prod)) {
      const i = inputs(c);
      assert.ok(i.create.length < MAX_COMMAND && !i.create.includes("\n"), `${c.name}: ${i.create.length} characters`);
      assert.equal(values(i.create).GL_TIMEOUT, "1200", c.name);
      if (i.delete) assert.equal(values(i.delete).GL_TIMEOUT, "1200", `${c.name}'s delete`);
    }
    const short = await evaluate("qa", { ...slot("blue", "r1"), commandTimeoutMinutes: "5" });
    for (const c of commands(short)) assert.equal(values(inputs(c).create).GL_TIMEOUT, "300", c.name);
  });

  it("the cutover waits for every activation of the live colour; the test listener for the idle one", async () => {
    const listener = byName(prod, "prod-alb-https");
    for (const i of [0, 1]) {
      assert.ok(listener.options.dependencies.includes(byName(prod, `prod-release-green-activate-${i}`).urn));
      assert.ok(!listener.options.dependencies.includes(byName(prod, `prod-release-blue-activate-${i}`).urn));
    }
    const withTest = await evaluate("qa", { ...both, testListener: true });
    const test = byName(withTest, "qa-alb-test");
    assert.ok(test.options.dependencies.includes(byName(withTest, "qa-release-blue-activate-0").urn));
  });

  it("rolling back moves the cutover's dependencies to the other colour; no command but the workers' changes", async () => {
    const back = await evaluate("prod", { ...both, live: "blue" });
    const listener = byName(back, "prod-alb-https");
    assert.ok(listener.options.dependencies.includes(byName(back, "prod-release-blue-activate-0").urn));
    for (const c of commands(prod).filter((x) => !x.name.includes("-workers-"))) {
      assert.deepEqual(reveal(byName(back, c.name).inputs), reveal(c.inputs), `${c.name} unchanged`);
    }
    // With Redis the workers move back too, after the listener (which waits for none of them).
    for (const c of commands(back).filter((x) => x.name.includes("-workers-"))) {
      if (c.name.includes("-start-")) assert.equal(values(inputs(c).create).GL_RELEASE, "r1", c.name);
      assert.ok(inputs(c).triggers.includes("r1"), c.name);
      assert.ok(!listener.options.dependencies.includes(c.urn));
    }
    const noRedis = await evaluate("prod", { ...both, redis: "off" });
    const noRedisBack = await evaluate("prod", { ...both, redis: "off", live: "blue" });
    for (const c of commands(noRedis)) {
      assert.deepEqual(reveal(byName(noRedisBack, c.name).inputs), reveal(c.inputs), `${c.name} unchanged`);
    }
  });

  it("connections pin the generated host key, use the deploy key, and go through the bastion in prod", () => {
    for (const c of commands(prod)) {
      assert.ok(isSecretValue(c.inputs.connection), "the connection (with its private key) is secret");
      const conn = inputs(c).connection;
      assert.match(conn.hostKey, /^ssh-ed25519 \S+$/);
      assert.match(conn.privateKey, /BEGIN OPENSSH PRIVATE KEY/);
      assert.equal(conn.dialErrorLimit, 60);
      assert.equal(conn.perDialTimeout, 15);
      assert.match(conn.proxy.hostKey, /^ssh-ed25519 \S+$/);
      assert.notEqual(conn.proxy.hostKey, conn.hostKey);
      assert.equal(conn.proxy.user, "admin");
      assert.deepEqual(c.options.customTimeouts, { create: "20m", update: "20m", delete: "20m" });
    }
    const userData = inputs(byName(prod, "prod-host-0")).userData as string;
    const pinned = inputs(byName(prod, "prod-release-bootstrap-0")).connection.hostKey;
    assert.ok(userData.includes(`ed25519_public: ${pinned}`), "the pinned key is the one user data installs");
    for (const c of commands(qa)) assert.equal(inputs(c).connection.proxy, undefined);
  });

  it("no secret in a command's text or environment; output that app code writes is kept out of the logs", () => {
    const secrets = prod.resources
      .filter((r) => r.type.startsWith("random:") || r.type.startsWith("tls:"))
      .flatMap((r) => Object.entries(r.state ?? {}))
      .filter(([k]) => ["result", "privateKeyOpenssh", "privateKeyPem"].includes(k))
      .map(([, v]) => String(v));
    assert.ok(secrets.length >= 4);
    for (const c of commands(prod)) {
      const i = inputs(c);
      assert.equal(i.environment, undefined, `${c.name} uses no environment map`);
      assert.equal(i.addPreviousOutputInEnv, false);
      for (const s of secrets) {
        assert.ok(!i.create.includes(s), `${c.name} carries a secret`);
        assert.ok(!(i.delete ?? "").includes(s), `${c.name}'s delete carries a secret`);
      }
    }
    const migrate = byName(prod, "prod-release-green-migrate");
    assert.equal(inputs(migrate).logging, "stdout");
    assert.ok(migrate.options.additionalSecretOutputs.includes("stderr"));
  });

  it("hands each script the values of its slot and host", () => {
    const fetch = inputs(byName(prod, "prod-release-green-fetch-1")).create as string;
    assert.deepEqual(values(fetch), {
      GL_APP: "site",
      GL_PARAMETER_PATH: "/greenlight/prod/",
      GL_REGION: "eu-west-1",
      GL_SLOT: "green",
      GL_RELEASE: "r2",
      GL_ARTIFACT_BUCKET: ofType(prod, "aws:s3/bucket:Bucket").find((b) => b.name === "prod-buckets-artifacts")!.state!
        .bucket,
      GL_ARTIFACT_KEY: both.greenArtifact,
      GL_SHA256: both.greenSha256,
      GL_WORKERS: "2",
      GL_TIMEOUT: "1200",
    });
    const activate = values(inputs(byName(prod, "prod-release-blue-activate-0")).create);
    assert.equal(activate.GL_PORT, "8001");
    assert.equal(activate.GL_HEALTH_PATH, "/healthz");
    const boot = values(inputs(byName(prod, "prod-release-bootstrap-0")).create);
    assert.equal(boot.GL_VPC_CIDR, "10.40.0.0/16");
    assert.match(boot.GL_DEPLOY_KEY, /^ssh-ed25519 /);
    assert.equal(boot.GL_PG_MAJOR, "15");
  });

  it("restoreBackup restores once per key, before any backup or migration of the same update", async () => {
    const run = await evaluate("qa", { ...slot("blue", "r1"), restoreBackup: "db/20261101T000000Z-before-r1.dump" });
    const restore = byName(run, "qa-release-restore");
    assert.deepEqual(inputs(restore).triggers, ["db/20261101T000000Z-before-r1.dump"]);
    assert.equal(values(inputs(restore).create).GL_BACKUP_KEY, "db/20261101T000000Z-before-r1.dump");
    assert.ok(dependsOn(run, "qa-release-blue-backup", "qa-release-restore"));
    assert.equal(inputs(restore).logging, "stdout");
    assert.equal(values(inputs(restore).create).GL_RESTORE_ID, undefined);
  });

  it("restoreId makes the same key a new restore request: its id is a trigger and goes to the host", async () => {
    const key = "db/20261101T000000Z-before-r1.dump";
    const run = await evaluate("qa", { ...slot("blue", "r1"), restoreBackup: key, restoreId: "again-2" });
    const restore = byName(run, "qa-release-restore");
    assert.deepEqual(inputs(restore).triggers, [key, "again-2"]);
    assert.equal(values(inputs(restore).create).GL_RESTORE_ID, "again-2");
    assert.equal(values(inputs(restore).create).GL_BACKUP_KEY, key);
  });

  it("the cutover of an update that restores waits for the restore: a rollback with it moves the listener inside the window", async () => {
    const run = await evaluate("prod", {
      ...both,
      live: "blue",
      restoreBackup: "db/20261101T000000Z-before-r2.dump",
    });
    const listener = byName(run, "prod-alb-https");
    for (const dep of ["prod-release-restore", "prod-release-blue-activate-0", "prod-release-blue-activate-1"])
      assert.ok(listener.options.dependencies.includes(byName(run, dep).urn), `the cutover waits for ${dep}`);
    for (const i of [0, 1])
      assert.ok(dependsOn(run, `prod-release-maintenance-off-${i}`, "prod-release-restore"), "and off comes after");
  });

  it("exports the release outputs users query", () => {
    assert.deepEqual(prod.outputs.releases, {
      blue: { release: "r1", artifact: both.blueArtifact, sha256: both.blueSha256, migrations: [] },
      green: { release: "r2", artifact: both.greenArtifact, sha256: both.greenSha256, migrations: [] },
    });
    assert.equal(prod.outputs.liveRelease, "r2");
    assert.ok("lastBackup" in prod.outputs && "migrations" in prod.outputs);
  });
});
