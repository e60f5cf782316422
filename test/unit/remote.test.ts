import * as assert from "assert";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { SCRIPT_DIR, STEPS, remoteCommand, scriptId, scriptText, shellQuote } from "../../components/remote";

/** Runs `command` in a real bash where `bash` itself is a function that records what it got. */
function capture(command: string): { script: string; argv0: string; env: Record<string, string> } {
  // Never let a script run on the test machine: only the plain (non-sudo) shape is accepted.
  if (!/^GL_[A-Z0-9_]+='/.test(command)) throw new Error(`unexpected command shape: ${command.slice(0, 40)}`);
  const out = execFileSync(
    "/bin/bash",
    ["-c", `bash() { printf '%s\\0%s\\0' "$2" "$3"; env -0 | grep -z '^GL_'; }; ${command}`],
    { env: { PATH: "/usr/bin:/bin" }, maxBuffer: 16 << 20 },
  ).toString("utf8");
  const [script, argv0, ...vars] = out.split("\0").filter((x, i, a) => i < a.length - 1 || x !== "");
  return {
    script,
    argv0,
    env: Object.fromEntries(vars.map((v) => [v.slice(0, v.indexOf("=")), v.slice(v.indexOf("=") + 1)])),
  };
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
      const echoed = execFileSync("/bin/bash", ["-c", `printf '%s' ${shellQuote(v)}`]).toString();
      assert.equal(echoed, v);
    }
  });

  it("sends lib.sh and the step's script byte for byte, values as quoted assignments", () => {
    for (const step of STEPS) {
      const values = { GL_APP: "site", GL_RELEASE: "r1'$(touch /tmp/pwned)" };
      const c = capture(remoteCommand(step, values));
      const onDisk = Buffer.concat([
        fs.readFileSync(path.join(SCRIPT_DIR, "lib.sh")),
        fs.readFileSync(path.join(SCRIPT_DIR, `${step}.sh`)),
      ]);
      assert.equal(Buffer.compare(Buffer.from(c.script), onDisk), 0, `${step} arrives unchanged`);
      assert.equal(c.argv0, `greenlight-${step}`);
      assert.deepEqual(c.env, values);
      assert.equal(scriptText(step), onDisk.toString("utf8"));
    }
    assert.ok(!fs.existsSync("/tmp/pwned"));
  });

  it("runs the bootstrap through sudo, everything else as the connecting user", () => {
    assert.match(remoteCommand("bootstrap", { GL_APP: "site" }, { sudo: true }), /^sudo -n GL_APP='site' bash -c '/);
    assert.match(remoteCommand("fetch", { GL_APP: "site" }), /^GL_APP='site' bash -c '/);
  });

  it("refuses variable names and values that are not plain one-line strings", () => {
    assert.throws(() => remoteCommand("fetch", { PATH: "/tmp" }), /not a greenlight variable name: PATH/);
    assert.throws(() => remoteCommand("fetch", { "GL_A;B": "x" }), /not a greenlight variable name/);
    assert.throws(() => remoteCommand("fetch", { GL_A: "x\ny" }), /GL_A must be a one-line string/);
  });

  it("gives each script a stable id that changes with its content", () => {
    assert.match(scriptId("bootstrap"), /^[0-9a-f]{16}$/);
    assert.equal(scriptId("bootstrap"), scriptId("bootstrap"));
    assert.notEqual(scriptId("bootstrap"), scriptId("fetch"));
  });

  it("every remote script is strict bash that refuses to run without its values", () => {
    for (const step of STEPS) {
      const text = fs.readFileSync(path.join(SCRIPT_DIR, `${step}.sh`), "utf8");
      assert.match(text, /^#!\/usr\/bin\/env bash\n/);
      const r = (() => {
        try {
          // Unprivileged, so a script that forgot to check its values first could do no harm here.
          const argv = ["/bin/bash", "-c", scriptText(step)];
          const [file, ...args] =
            process.getuid?.() === 0 ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", ...argv] : argv;
          execFileSync(file, args, { env: { PATH: "/usr/bin:/bin" }, stdio: "pipe", cwd: "/" });
          return { code: 0, stderr: "" };
        } catch (e) {
          const err = e as { status: number; stderr: Buffer };
          return { code: err.status, stderr: err.stderr.toString() };
        }
      })();
      assert.notEqual(r.code, 0, `${step} ran without values`);
      assert.match(r.stderr, /missing value GL_APP/, step);
    }
    assert.match(fs.readFileSync(path.join(SCRIPT_DIR, "lib.sh"), "utf8"), /^set -Eeuo pipefail$/m);
  });
});
