import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parseConfig } from "../../components/config";
import {
  CliError,
  artifactKey,
  planRelease,
  planRollback,
  readState,
  servingColour,
  stackFile,
  writeConfig,
} from "../../scripts/cli/lib/stack";
import { ROOT, stackConfig } from "../rig/stackConfig";

const sha = (c: string) => c.repeat(64);
const rel = (id: string, c: string) => ({ release: id, artifact: artifactKey(sha(c)), sha256: sha(c) });
const qaText = fs.readFileSync(path.join(ROOT, "Pulumi.qa.yaml"), "utf8");

function release(text: string, id: string, c: string): string {
  return writeConfig(text, planRelease(readState(text), rel(id, c)).values);
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

  it("rollback flips live to the other slot and nothing else", () => {
    const two = release(release(qaText, "r1", "a"), "r2", "b");
    const plan = planRollback(readState(two));
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
    const run = (script: string, ...args: string[]) =>
      spawnSync(
        process.execPath,
        ["-r", "ts-node/register/transpile-only", path.join(ROOT, "scripts/cli", script), ...args],
        {
          encoding: "utf8",
          cwd: ROOT,
        },
      );
    let dir: string;
    beforeEach(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), "gl-cli-"));
      fs.copyFileSync(path.join(ROOT, "Pulumi.qa.yaml"), path.join(dir, "Pulumi.qa.yaml"));
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

    it("rollback: refuses an empty slot with one line, flips live otherwise", () => {
      const empty = run("rollback.ts", "--stack", "qa", "--dir", dir);
      assert.equal(empty.status, 1);
      assert.equal(empty.stderr, "error: slot green is empty: there is no earlier release to roll back to\n");
      fs.writeFileSync(path.join(dir, "Pulumi.qa.yaml"), release(release(qaText, "r1", "a"), "r2", "b"));
      const ok = run("rollback.ts", "--stack", "qa", "--dir", dir);
      assert.equal(ok.status, 0, ok.stderr);
      assert.match(ok.stdout, /live: green -> blue \(release r1\)/);
      assert.equal(readState(fs.readFileSync(path.join(dir, "Pulumi.qa.yaml"), "utf8")).live, "blue");
    });
  });
});
