// One definition of each value the config and the host scripts both check (components/
// constants.ts VALUES), held against scripts/remote/*.sh: the regex text of every script's
// `check GL_X '...'`, and what lib.sh's check functions really accept, run with bash.
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { LINE_SEPARATORS, VALUES, ValueRule, isValid } from "../../components/constants";
import { ROOT } from "../rig/stackConfig";

const LIB = path.join(ROOT, "scripts", "remote", "lib.sh");
const REMOTE = path.join(ROOT, "scripts", "remote");

/** Runs lib.sh's check function `fn` with `variable` set to `value`; true if it accepts. */
function shellAccepts(fn: string, variable: string, value: string): boolean {
  const r = spawnSync("bash", ["-c", `source "$1"; ${fn}`, "bash", LIB], {
    env: { PATH: process.env.PATH, [variable]: value },
    encoding: "utf8",
  });
  if (r.status !== 0 && !/greenlight.*error/.test(r.stderr)) assert.fail(`${fn} failed oddly: ${r.stderr}`);
  return r.status === 0;
}

const SAMPLES: Record<string, string[]> = {
  app: ["site", "s1", "a", "Site", "my-site", "1site", "a".repeat(16), "a".repeat(17), "si..te"],
  release: [
    "r1",
    "2026-11-21.1",
    "r1..2",
    "..",
    "a..",
    "-r1",
    ".r1",
    "r 1",
    "$(reboot)",
    "r/1",
    "a".repeat(64),
    "a".repeat(65),
  ],
  key: [
    "releases/x.tar.gz",
    "db/20261121T101500Z-before-r42.dump",
    "releases/../x.tar.gz",
    "a..b",
    "/abs",
    "x;touch /tmp/pwned",
    "x y",
    "a".repeat(255),
    "a".repeat(256),
  ],
};

/** lib.sh's check functions, by the rule they enforce, and the variable each reads. */
const FUNCTIONS: [keyof typeof VALUES, string, string][] = [
  ["app", "check_app", "GL_APP"],
  ["release", "check_release", "GL_RELEASE"],
  ["key", "check_key GL_ARTIFACT_KEY", "GL_ARTIFACT_KEY"],
  ["key", "check_key GL_BACKUP_KEY", "GL_BACKUP_KEY"],
];

/**
 * Where lib.sh is known to accept more than the definition (the other way round, config
 * accepting what a script refuses half-way through `pulumi up`, is never allowed). Each entry
 * names the fix lib.sh needs; once it is made, the entry fails this test and must go.
 */
const SHELL_ACCEPTS_MORE: Record<string, string> = {};

describe("one definition of each value, shared by config and the host scripts", () => {
  for (const [rule, fn, variable] of FUNCTIONS) {
    it(`lib.sh's ${fn} accepts exactly what VALUES.${rule} accepts`, () => {
      for (const v of SAMPLES[rule]) {
        const ts = isValid(VALUES[rule], v);
        const sh = shellAccepts(fn, variable, v);
        const known = SHELL_ACCEPTS_MORE[`${fn.split(" ")[0]} ${v}`];
        if (ts)
          assert.ok(sh, `${fn} refuses ${JSON.stringify(v)}, which config accepts: pulumi up would fail half-way`);
        else if (known) assert.ok(sh, `${fn} now refuses ${JSON.stringify(v)}: remove it from SHELL_ACCEPTS_MORE`);
        else assert.ok(!sh, `${fn} accepts ${JSON.stringify(v)}, which config refuses`);
      }
    });
  }

  it("every script's inline `check GL_X '<regex>'` of a shared value uses the definition's regex", () => {
    const byVariable: Record<string, ValueRule> = {
      GL_APP: VALUES.app,
      GL_RELEASE: VALUES.release,
      GL_SHA256: VALUES.sha256,
      GL_ARTIFACT_BUCKET: VALUES.bucket,
      GL_BACKUP_BUCKET: VALUES.bucket,
      GL_PARAMETER_PATH: VALUES.parameterPath,
      GL_RESTORE_ID: VALUES.release,
    };
    const seen = new Set<string>();
    for (const f of fs.readdirSync(REMOTE).filter((x) => x.endsWith(".sh"))) {
      const text = fs.readFileSync(path.join(REMOTE, f), "utf8");
      for (const m of text.matchAll(/check "?(GL_[A-Z_0-9]+|\$1)"? '([^']+)'/g)) {
        const rule = m[1] === "$1" ? VALUES.key : byVariable[m[1]];
        if (!rule) continue;
        seen.add(m[1]);
        // RegExp.source writes / as \/; bash reads both alike.
        assert.equal(m[2], rule.pattern.source.replace(/\\\//g, "/"), `${f}: check ${m[1]}`);
      }
    }
    for (const v of [...Object.keys(byVariable), "$1"]) assert.ok(seen.has(v), `no script checks ${v}`);
  });

  it("background-boot.sh (which runs without lib.sh, at supervisor's start) checks the app and release ids with the definitions' regexes", () => {
    const text = fs.readFileSync(path.join(REMOTE, "background-boot.sh"), "utf8");
    const tests = [...text.matchAll(/=~ (\^[^ ]+\$)/g)].map((m) => m[1]);
    assert.ok(tests.includes(VALUES.app.pattern.source), `its app test: ${tests.join(" ")}`);
    assert.ok(tests.includes(VALUES.release.pattern.source), `its release test: ${tests.join(" ")}`);
    assert.ok(VALUES.release.noDotDot && /\$release != \*\.\.\*/.test(text), "and it refuses .. in a release id");
  });

  it("LINE_SEPARATORS are exactly what Python's str.splitlines splits on (plus NUL)", function () {
    const py = spawnSync(
      "/usr/bin/python3",
      ["-c", "import sys; print(','.join(str(c) for c in range(0x110000) if len(('a'+chr(c)+'b').splitlines()) > 1))"],
      { encoding: "utf8" },
    );
    if (py.status !== 0) assert.fail(`/usr/bin/python3 failed: ${py.stderr}`);
    const python = py.stdout.trim().split(",").map(Number);
    const ours = LINE_SEPARATORS.filter((c) => c !== "\0").map((c) => c.codePointAt(0)!);
    assert.deepEqual(
      ours.sort((a, b) => a - b),
      python,
    );
  });
});
