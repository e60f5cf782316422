import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parseConfig } from "../../components/config";
import {
  CliError,
  DeployedResource,
  activatedRelease,
  artifactKey,
  planRelease,
  planRollback,
  readState,
  refuseUnhealthy,
  servingColour,
  stackFile,
  writeConfig,
} from "../../scripts/cli/lib/stack";
import { ROOT, stackConfig } from "../rig/stackConfig";

const sha = (c: string) => c.repeat(64);
const rel = (id: string, c: string) => ({
  release: id,
  artifact: artifactKey(sha(c)),
  sha256: sha(c),
  migrations: [] as string[],
});
const qaText = fs.readFileSync(path.join(ROOT, "Pulumi.qa.yaml"), "utf8");

function release(text: string, id: string, c: string): string {
  return writeConfig(text, planRelease(readState(text), rel(id, c)).values);
}

/** The stack's state after `pulumi up` activated `release` (sha of `c`) in `colour` on `hosts` hosts. */
function activated(colour: string, id: string, c: string, hosts = 1): DeployedResource[] {
  return Array.from({ length: hosts }, (_, i) => ({
    type: "command:remote:Command",
    urn: `urn:pulumi:qa::greenlight::greenlight:release:Release$command:remote:Command::qa-release-${colour}-activate-${i}`,
    outputs: { triggers: [id, sha(c), `i-${i}`] },
  }));
}

describe("release and rollback: stack file edits", () => {
  it("the first release goes into the live slot; the next into the idle one, which becomes live", () => {
    const first = release(qaText, "r1", "a");
    assert.deepEqual(readState(first), { live: "blue", slots: { blue: rel("r1", "a"), green: undefined } });
    const second = release(first, "r2", "b");
    assert.deepEqual(readState(second), { live: "green", slots: { blue: rel("r1", "a"), green: rel("r2", "b") } });
    const third = release(second, "r3", "c");
    assert.deepEqual(readState(third), { live: "blue", slots: { blue: rel("r3", "c"), green: rel("r2", "b") } });
    assert.equal(planRelease(readState(second), rel("r3", "c")).replaces, "r1");
  });

  it("writes the release's migrations next to its id, names the ones the serving release lacks, and never keeps a stale list", () => {
    const m1 = ["notes.0001_initial", "notes.0002_note_attachment"];
    const m2 = [...m1, "notes.0003_note_pinned"];
    const p1 = planRelease(readState(qaText), { ...rel("r1", "a"), migrations: m1 });
    assert.deepEqual(p1.values.blueMigrations, m1);
    assert.deepEqual(p1.newMigrations, m1, "a first release adds all it carries");
    const first = writeConfig(qaText, p1.values);
    assert.match(first, /greenlight:blueMigrations: \[ notes\.0001_initial, notes\.0002_note_attachment \]/);
    const p2 = planRelease(readState(first), { ...rel("r2", "b"), migrations: m2 });
    assert.deepEqual(p2.newMigrations, ["notes.0003_note_pinned"]);
    const second = writeConfig(first, p2.values);
    assert.deepEqual(readState(second).slots.green?.migrations, m2);
    const cfg = parseConfig(
      stackConfig(
        "qa",
        {},
        (() => {
          const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gl-cli-"));
          fs.writeFileSync(path.join(dir, "Pulumi.qa.yaml"), second);
          return dir;
        })(),
      ).values,
      new Set(),
      { stack: "qa" },
    );
    assert.deepEqual(cfg.slots.green?.migrations, m2, "the program reads what the CLI wrote");
    // An artifact whose manifest lists none (built before package-site recorded them): the
    // slot's previous list goes, and nothing new is claimed.
    const p3 = planRelease(readState(second), rel("r3", "c"));
    assert.deepEqual(p3.values.blueMigrations, []);
    const p4 = planRelease(readState(second), { ...rel("r3", "c"), migrations: undefined });
    assert.deepEqual([p4.values.blueMigrations, p4.newMigrations], [[], undefined]);
  });

  it("keeps the stack file's comments and other keys", () => {
    const out = release(release(qaText, "r1", "a"), "r2", "b");
    for (const line of qaText.split("\n").filter((l) => l.trim().startsWith("#"))) {
      assert.ok(out.includes(line.trim()), `comment kept: ${line}`);
    }
    assert.match(out, /greenlight:operatorCidrs:\n\s+- 203\.0\.113\.10\/32/);
    const written = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "gl-cli-")), "Pulumi.qa.yaml");
    fs.writeFileSync(written, out);
    const c = stackConfig("qa", {}, path.dirname(written));
    const cfg = parseConfig(c.values, new Set(c.secretKeys), { stack: "qa" });
    assert.equal(cfg.live, "green");
    assert.deepEqual(cfg.slots.green, rel("r2", "b"));
  });

  it("release refuses to guess the serving colour when the state is unreadable and both slots are full (issue 11, 3)", () => {
    const both = release(release(qaText, "r1", "a"), "r2", "b");
    assert.throws(
      () => planRelease(readState(both), rel("r3", "c"), undefined, "the Pulumi CLI is not installed"),
      /cannot tell which colour the load balancer serves \(the Pulumi CLI is not installed\), and both slots hold releases \(blue r1, green r2\)/,
    );
    // One slot empty: the new release goes into the empty one, which cannot be serving.
    const one = release(qaText, "r1", "a");
    assert.equal(planRelease(readState(one), rel("r2", "b"), undefined, "no CLI").slot, "green");
  });

  it("rollback refuses a slot whose release never ran on the hosts, or a state it cannot read (issue 11, 13)", () => {
    const both = readState(release(release(qaText, "r1", "a"), "r2", "b")); // live green (r2), blue holds r1
    assert.throws(() => planRollback(both, { unreadable: "no CLI" }), /cannot read the stack's state \(no CLI\)/);
    assert.throws(
      () => planRollback(both, { resources: [] }),
      /slot blue holds release r1, but the hosts never activated it in blue/,
    );
    assert.throws(
      () => planRollback(both, { resources: [...activated("blue", "r0", "z"), ...activated("green", "r2", "b")] }),
      /were last activated in blue with r0/,
    );
    // Two hosts that disagree (one activation failed): not deployed.
    const split = [...activated("blue", "r1", "a", 2)];
    (split[1].outputs!.triggers as string[])[0] = "r0";
    assert.throws(() => planRollback(both, { resources: split }), /never activated it in blue/);
    assert.equal(planRollback(both, { resources: activated("blue", "r1", "a", 2) }).to, "blue");
    assert.deepEqual(activatedRelease(activated("blue", "r1", "a", 2), "blue"), { release: "r1", sha256: sha("a") });
  });

  it("rollback refuses a target colour that does not answer its release on every host, naming each (issue 11, 13)", () => {
    assert.doesNotThrow(() => refuseUnhealthy("blue", "r1", [{ host: "10.0.0.5", ok: true }]));
    assert.throws(
      () =>
        refuseUnhealthy("blue", "r1", [
          { host: "10.0.0.5", ok: true },
          { host: "10.0.0.6", ok: false, why: 'port 8001 answered "r0", not r1' },
          { host: "10.0.0.7", ok: false, why: "cannot connect over SSH: connect ECONNREFUSED 10.0.0.7:22" },
        ]),
      (e: Error) =>
        e instanceof CliError &&
        /^blue \(release r1\) is not healthy on every host, so the load balancer must not move to it: /.test(
          e.message,
        ) &&
        e.message.includes('host 10.0.0.6: slot blue port 8001 answered "r0", not r1') &&
        e.message.includes("host 10.0.0.7: slot blue cannot connect over SSH: connect ECONNREFUSED") &&
        !e.message.includes("10.0.0.5") &&
        /Nothing was changed/.test(e.message),
    );
    assert.throws(() => refuseUnhealthy("blue", "r1", []), /not healthy on every host/, "no host answered: no proof");
    assert.throws(
      () => refuseUnhealthy("green", "r2", [], "pulumi stack output --stack qa failed: passphrase"),
      /cannot check that green \(release r2\) is healthy on the hosts: pulumi stack output --stack qa failed: passphrase; refusing to roll back blind/,
    );
  });

  it("rollback flips live to the other slot and nothing else", () => {
    const two = release(release(qaText, "r1", "a"), "r2", "b");
    const plan = planRollback(readState(two), { resources: activated("blue", "r1", "a") });
    assert.deepEqual(plan, { from: "green", to: "blue", release: "r1", values: { live: "blue" } });
    const back = writeConfig(two, plan.values);
    assert.deepEqual(readState(back).slots, readState(two).slots);
    assert.equal(readState(back).live, "blue");
  });

  it("refuses what would lose track of a release or point at nothing", () => {
    const one = release(qaText, "r1", "a");
    assert.throws(() => planRollback(readState(one)), /slot green is empty: there is no earlier release/);
    assert.throws(() => planRelease(readState(one), rel("r1", "a")), /already live in blue/);
    assert.throws(() => planRelease(readState(one), rel("r1", "b")), /immutable/);
    assert.throws(() => planRelease(readState(one), rel("r 2", "b")), CliError);
    assert.throws(() => planRelease(readState(one), { ...rel("r2", "b"), sha256: "nope" }), /not a sha256/);
  });

  it("after a release that never went live, the next one replaces it and leaves the served slot alone", () => {
    const pending = release(release(qaText, "r1", "a"), "r2", "b"); // r2 in green, live green in config
    const plan = planRelease(readState(pending), rel("r3", "c"), "blue"); // ...but the ALB still serves blue
    assert.equal(plan.slot, "green");
    assert.equal(plan.neverLive, "r2");
    assert.deepEqual(plan.previousLive, { colour: "blue", release: "r1" });
    const after = readState(writeConfig(pending, plan.values));
    assert.deepEqual(after, { live: "green", slots: { blue: rel("r1", "a"), green: rel("r3", "c") } });
    // When the ALB serves what the config says, nothing special happens.
    assert.equal(planRelease(readState(pending), rel("r3", "c"), "green").slot, "blue");
  });

  it("reads the served colour from the stack's state: the live listener's target group, by tags", () => {
    const tg = (colour: string) => ({
      type: "aws:lb/targetGroup:TargetGroup",
      outputs: { arn: `arn:tg/${colour}`, tags: { colour } },
    });
    // Names say nothing: the listeners' tags tell the live one from the test and redirect ones.
    const listener = (urn: string, role: string, actions: object[]) => ({
      type: "aws:lb/listener:Listener",
      urn,
      outputs: { defaultActions: actions, tags: { "greenlight:listener": role } },
    });
    const resources = [
      tg("blue"),
      tg("green"),
      listener("urn:...::a", "redirect", [{ type: "redirect" }]),
      listener("urn:...::b", "test", [{ type: "forward", targetGroupArn: "arn:tg/green" }]),
      listener("urn:...::c", "live", [{ type: "forward", targetGroupArn: "arn:tg/blue" }]),
    ];
    assert.equal(servingColour(resources), "blue");
    assert.equal(servingColour([resources[0], resources[1], resources[3]]), undefined, "a test listener is not live");
    assert.equal(servingColour([]), undefined);
  });

  it("names the known stacks when the stack is unknown", () => {
    assert.throws(() => stackFile("staging", ROOT), /unknown stack "staging".*known stacks: prod, qa/);
    assert.throws(() => stackFile("../etc", ROOT), /not a stack name/);
  });

  describe("the commands", () => {
    let dir: string;
    /** A stand-in `pulumi` on PATH: `stack export` prints $GL_FAKE_STATE, or fails like a missing login. */
    const run = (script: string, ...args: string[]) =>
      spawnSync(
        process.execPath,
        ["-r", "ts-node/register/transpile-only", path.join(ROOT, "scripts/cli", script), ...args],
        {
          encoding: "utf8",
          cwd: ROOT,
          env: {
            ...process.env,
            PATH: `${path.join(dir, "bin")}:${process.env.PATH}`,
            GL_FAKE_STATE: path.join(dir, "state.json"),
          },
        },
      );
    const exported = (resources: DeployedResource[]) =>
      fs.writeFileSync(path.join(dir, "state.json"), JSON.stringify({ deployment: { resources } }));
    beforeEach(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), "gl-cli-"));
      fs.copyFileSync(path.join(ROOT, "Pulumi.qa.yaml"), path.join(dir, "Pulumi.qa.yaml"));
      fs.mkdirSync(path.join(dir, "bin"));
      fs.writeFileSync(
        path.join(dir, "bin", "pulumi"),
        '#!/bin/sh\n[ "$1 $2" = "stack export" ] && [ -f "$GL_FAKE_STATE" ] && exec cat "$GL_FAKE_STATE"\n' +
          '[ "$1 $2" = "stack output" ] && [ -f "$GL_FAKE_STATE.outputs" ] && exec cat "$GL_FAKE_STATE.outputs"\n' +
          'echo "error: PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions" >&2\nexit 255\n',
        { mode: 0o755 },
      );
    });
    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

    it("release: one clear line for a missing artifact or an unknown stack, and no edit", () => {
      const missing = run("release.ts", "--stack", "qa", "--artifact", "nope.tar.gz", "--dir", dir);
      assert.equal(missing.status, 1);
      assert.equal(
        missing.stderr,
        "error: artifact nope.tar.gz does not exist (build one with npm run package-site -- DIR)\n",
      );
      const unknown = run("release.ts", "--stack", "stage", "--artifact", "x", "--dir", dir);
      assert.equal(unknown.status, 1);
      assert.match(
        unknown.stderr,
        /^error: unknown stack "stage": there is no Pulumi\.stage\.yaml \(known stacks: qa\)\n$/,
      );
      assert.equal(fs.readFileSync(path.join(dir, "Pulumi.qa.yaml"), "utf8"), qaText);
    });

    it("rehearse --artifact: one clear line for a missing, empty, foreign or other-Python artifact, before starting anything", async () => {
      const { buildTarGz } = await import("../../scripts/cli/lib/artifact");
      const said = (...args: string[]) => {
        const r = run("rehearse.ts", ...args);
        assert.equal(r.status, 1, r.stdout + r.stderr);
        assert.equal(r.stdout, "", "nothing started");
        assert.equal(r.stderr.split("\n").length, 2, `one line: ${r.stderr}`);
        return r.stderr;
      };
      const rebuild = "(build one with npm run package-site -- DIR)";
      assert.equal(said("--artifact", "nope.tar.gz"), `error: artifact nope.tar.gz does not exist ${rebuild}\n`);
      assert.equal(said("--artifact", dir), `error: artifact ${dir} is not a file ${rebuild}\n`);
      const text = path.join(dir, "notes.txt");
      fs.writeFileSync(text, "not an archive");
      assert.match(
        said("--artifact", text),
        /^error: cannot read .*notes\.txt as an artifact: .*package-site -- DIR\)\n$/,
      );
      const manifest = {
        format: 1,
        lockHash: "a".repeat(64),
        wsgi: "mysite.wsgi:application",
        migrate: ["python", "manage.py", "migrate", "--noinput"],
        collectstatic: ["python", "manage.py", "collectstatic", "--noinput"],
        python: "3.12",
        migrations: [],
      };
      const tgz = (m: object, name = "manifest.json") =>
        buildTarGz([{ path: name, type: "file", mode: 0o644, data: Buffer.from(JSON.stringify(m)) }]);
      const other = path.join(dir, "other.tar.gz");
      fs.writeFileSync(other, await tgz(manifest));
      assert.equal(
        said("--artifact", other),
        `error: artifact ${other} was built for Python 3.12, the hosts run 3.11: build it again with this version's npm run package-site\n`,
      );
      fs.writeFileSync(other, await tgz({ ...manifest, python: "3.11", format: 2 }));
      assert.match(said("--artifact", other), /manifest\.json of .* has format 2, not 1: build it again/);
      fs.writeFileSync(other, await tgz(manifest, "app/manage.py"));
      assert.match(said("--artifact", other), /does not start with manifest\.json/);
      assert.match(said("--release", "r1"), /^error: --release names the release of --artifact FILE; usage: /);
      assert.match(said("--artifact", other, "--release", "../x"), /^error: --release "\.\.\/x" is not a release id/);
      assert.match(said("--stack", "stage"), /^error: --stack must be qa or prod, got "stage"/);
      assert.match(said("--artefact", other), /^error: Unknown option '--artefact'.*; usage: /);
    });

    it("release --bucket still reads the serving colour, and refuses before uploading when it cannot", () => {
      fs.writeFileSync(path.join(dir, "Pulumi.qa.yaml"), release(release(qaText, "r1", "a"), "r2", "b"));
      const artifact = path.join(dir, "site.tar.gz");
      fs.writeFileSync(artifact, "not really an archive");
      const r = run("release.ts", "--stack", "qa", "--artifact", artifact, "--bucket", "qa-artifacts-x", "--dir", dir);
      assert.equal(r.status, 1);
      assert.match(
        r.stderr,
        /^error: cannot tell which colour the load balancer serves \(pulumi stack export --stack qa failed/,
      );
      assert.doesNotMatch(r.stdout, /uploaded/);
    });

    it("rollback: refuses an empty slot, an unreadable or undeployed state and a target it cannot check, each in one line", () => {
      const empty = run("rollback.ts", "--stack", "qa", "--dir", dir);
      assert.equal(empty.status, 1);
      assert.equal(empty.stderr, "error: slot green is empty: there is no earlier release to roll back to\n");
      fs.writeFileSync(path.join(dir, "Pulumi.qa.yaml"), release(release(qaText, "r1", "a"), "r2", "b"));
      const blind = run("rollback.ts", "--stack", "qa", "--dir", dir);
      assert.equal(blind.status, 1);
      assert.match(
        blind.stderr,
        /cannot read the stack's state \(pulumi stack export --stack qa failed: error: PULUMI_ACCESS_TOKEN/,
      );
      exported(activated("green", "r2", "b"));
      const undeployed = run("rollback.ts", "--stack", "qa", "--dir", dir);
      assert.equal(undeployed.status, 1);
      assert.match(undeployed.stderr, /slot blue holds release r1, but the hosts never activated it in blue/);
      exported([...activated("blue", "r1", "a"), ...activated("green", "r2", "b")]);
      const before = fs.readFileSync(path.join(dir, "Pulumi.qa.yaml"), "utf8");
      // Deployed, but the hosts cannot be asked (no outputs): no flip. (That a healthy colour is
      // flipped to, over real SSH, is test/hosts/faults.test.ts.)
      const unasked = run("rollback.ts", "--stack", "qa", "--dir", dir);
      assert.equal(unasked.status, 1);
      assert.match(
        unasked.stderr,
        /^error: cannot check that blue \(release r1\) is healthy on the hosts: pulumi stack output --stack qa failed: .*refusing to roll back blind/,
      );
      // A host nobody answers on: refused, naming the host and the colour.
      fs.writeFileSync(
        path.join(dir, "state.json.outputs"),
        JSON.stringify({
          hosts: [{ id: "i-0", address: "127.0.0.1" }],
          knownHosts: "127.0.0.1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKoFNQ4MvKz8bXbFvLYzUqfG1mmAw6ykPmCkoHG2j5Yo\n",
          sshPrivateKey: "not used: nothing answers",
        }),
      );
      const down = run("rollback.ts", "--stack", "qa", "--dir", dir);
      assert.equal(down.status, 1);
      assert.match(
        down.stderr,
        /^error: blue \(release r1\) is not healthy on every host, .*host 127\.0\.0\.1: slot blue (cannot connect over SSH|no answer)/,
      );
      assert.equal(fs.readFileSync(path.join(dir, "Pulumi.qa.yaml"), "utf8"), before, "nothing written");
    });
  });
});
