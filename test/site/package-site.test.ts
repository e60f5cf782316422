// package-site end to end: the CLI's output and errors, reproducibility, and what ends up in
// the archive, with wheels repacked from Debian (there is no PyPI here).
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { ArtifactError, sha256Hex } from "../../scripts/cli/lib/artifact";
import { packageSite, parseArgs } from "../../scripts/cli/package-site";
import { debianWheels, ok, ROOT, run, RunResult, SITE_DIR, SYSTEM_PYTHON, tmpDir } from "./helpers";

const CLI = path.join(ROOT, "scripts", "cli", "package-site.ts");
const TS_NODE = path.join(ROOT, "node_modules", "ts-node", "register", "transpile-only");

/** Runs the CLI from cwd (a temp dir by default, so its dist/ never lands in the checkout). */
function cli(args: string[], env: NodeJS.ProcessEnv = {}, cwd = tmpDir("cwd")): Promise<RunResult> {
  return run(process.execPath, ["-r", TS_NODE, CLI, ...args], {
    cwd,
    // ts-node looks for tsconfig.json from cwd, which is not the checkout here.
    env: { ...process.env, TS_NODE_PROJECT: path.join(ROOT, "tsconfig.json"), GREENLIGHT_FIND_LINKS: "", ...env },
  });
}

function assertOneLineError(r: RunResult, pattern: RegExp): void {
  assert.strictEqual(r.code, 1, `exit code\n${r.stderr}`);
  assert.strictEqual(r.stdout, "");
  const lines = r.stderr.trimEnd().split("\n");
  assert.strictEqual(lines.length, 1, `one line expected:\n${r.stderr}`);
  assert.match(lines[0], /^package-site: /);
  assert.match(lines[0], pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
}

async function rejectsWith(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => e instanceof ArtifactError && pattern.test(e.message));
}

function copySite(): string {
  const dir = path.join(tmpDir("sitecopy"), "site");
  fs.cpSync(SITE_DIR, dir, { recursive: true, filter: (src) => !/(__pycache__|\.pyc$)/.test(src) });
  return dir;
}

async function listTar(file: string): Promise<string[]> {
  return (await ok("tar", ["-tzf", file])).stdout.split("\n").filter((l) => l !== "");
}

describe("package-site: errors", () => {
  it("parses its arguments", () => {
    assert.deepStrictEqual(parseArgs(["site", "--out", "a.tgz", "--find-links=w"]), {
      dir: "site",
      out: "a.tgz",
      findLinks: "w",
    });
    assert.deepStrictEqual(parseArgs(["--find-links", "w", "site"]), { dir: "site", out: undefined, findLinks: "w" });
    assert.strictEqual(parseArgs(["--help"]), "help");
    assert.throws(() => parseArgs([]), /missing site directory/);
    assert.throws(() => parseArgs(["a", "b"]), /one site directory only/);
    assert.throws(() => parseArgs(["a", "--out"]), /--out needs a value/);
    assert.throws(() => parseArgs(["a", "--out="]), /--out needs a value/);
  });

  it("says in one line that greenlight.json is missing", async () => {
    const dir = copySite();
    fs.unlinkSync(path.join(dir, "greenlight.json"));
    assertOneLineError(await cli([dir]), /greenlight\.json not found: .*greenlight\.json$/);
  });

  it("says in one line that the site dir does not exist", async () => {
    assertOneLineError(await cli(["/nonexistent/site"]), /site directory not found: \/nonexistent\/site$/);
  });

  it("shows pip's last lines when pip fails", async () => {
    const dir = copySite();
    fs.writeFileSync(path.join(dir, "requirements.txt"), "no-such-package-xyz==1.0\n");
    const r = await cli([dir, "--find-links", tmpDir("emptywheels")]);
    assert.strictEqual(r.code, 1);
    assert.match(r.stderr, /^package-site: pip wheel failed \(exit 1\); its last lines:\n/);
    assert.match(r.stderr, /No matching distribution found for no-such-package-xyz==1\.0/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
  });

  it("rejects a bad greenlight.json, a missing requirements.txt and unknown options", async () => {
    const dir = copySite();
    fs.writeFileSync(path.join(dir, "greenlight.json"), '{"wsgi": "greenlight_site.wsgi"}');
    await rejectsWith(packageSite(dir), /"wsgi" must look like/);
    fs.writeFileSync(path.join(dir, "greenlight.json"), "{");
    await rejectsWith(packageSite(dir), /greenlight\.json is not valid JSON/);
    fs.writeFileSync(path.join(dir, "greenlight.json"), '{"wsgi": "greenlight_site.wsgi:application"}');
    fs.unlinkSync(path.join(dir, "requirements.txt"));
    await rejectsWith(packageSite(dir), /requirements\.txt not found/);
    await rejectsWith(packageSite(dir, { findLinks: "/nonexistent/wheels" }), /requirements\.txt not found/);
    assertOneLineError(await cli([dir, "--bogus"]), /unknown option --bogus; usage: /);
  });
});

describe("package-site: building the example site", () => {
  let wheels: string;
  let out: string;

  before(async () => {
    wheels = await debianWheels();
    out = tmpDir("out");
  });

  it("debian-wheels.py is idempotent: a second run rewrites nothing", async () => {
    const before = fs.readdirSync(wheels).map((f) => [f, sha256Hex(fs.readFileSync(path.join(wheels, f)))]);
    const r = await ok(SYSTEM_PYTHON, [
      path.join(ROOT, "test", "rig", "debian-wheels.py"),
      wheels,
      "Django",
      "gunicorn",
      "psycopg2",
    ]);
    assert.doesNotMatch(r.stdout, /^wrote /m);
    const after = fs.readdirSync(wheels).map((f) => [f, sha256Hex(fs.readFileSync(path.join(wheels, f)))]);
    assert.deepStrictEqual(after, before);
    const names = before.map(([f]) => f.split("-")[0].toLowerCase()).sort();
    assert.deepStrictEqual(names, ["asgiref", "django", "gunicorn", "psycopg2", "pytz", "setuptools", "sqlparse"]);
  });

  it("prints one JSON line, names the default output by content, and honours GREENLIGHT_FIND_LINKS", async () => {
    const cwd = tmpDir("cwd");
    const r = await cli([SITE_DIR], { GREENLIGHT_FIND_LINKS: wheels }, cwd);
    assert.strictEqual(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split("\n");
    assert.strictEqual(lines.length, 1, r.stdout);
    const result = JSON.parse(lines[0]) as { file: string; sha256: string; size: number; lockHash: string };
    assert.deepStrictEqual(Object.keys(result), ["file", "sha256", "size", "lockHash"]);
    assert.strictEqual(result.file, path.join(cwd, "dist", `site-${result.sha256.slice(0, 12)}.tar.gz`));
    const bytes = fs.readFileSync(result.file);
    assert.strictEqual(sha256Hex(bytes), result.sha256);
    assert.strictEqual(bytes.length, result.size);
    assert.match(result.lockHash, /^[0-9a-f]{64}$/);
  });

  it("builds byte-identical archives from the same inputs", async () => {
    const a = await packageSite(SITE_DIR, { findLinks: wheels, out: path.join(out, "a.tar.gz") });
    const b = await packageSite(SITE_DIR, { findLinks: wheels, out: path.join(out, "b.tar.gz") });
    assert.strictEqual(a.sha256, b.sha256);
    assert.ok(fs.readFileSync(a.file).equals(fs.readFileSync(b.file)));
    assert.strictEqual(a.lockHash, b.lockHash);
  });

  it("lays the archive out as the hosts expect: manifest, lock, wheelhouse, app without host state", async () => {
    const dir = copySite();
    for (const [rel, text] of Object.entries({
      ".env": "SECRET_KEY=leak\n",
      REVISION: "r1\n",
      "media/notes/upload.txt": "user data",
      "static/admin/base.css": "collected",
      "notes/__pycache__/models.cpython-311.pyc": "",
      ".git/HEAD": "ref: refs/heads/main\n",
      "notes/static/notes/app.css": "body {}",
    })) {
      fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
      fs.writeFileSync(path.join(dir, rel), text);
    }
    const art = await packageSite(dir, { findLinks: wheels, out: path.join(dir, "site.tar.gz") });
    const names = await listTar(art.file);
    const app = names.filter((n) => n.startsWith("app/"));
    for (const gone of [".env", "REVISION", "media/", "static/", "__pycache__", ".git/", "site.tar.gz"]) {
      assert.ok(!app.some((n) => n.includes(gone) && !n.includes("notes/static")), `${gone} leaked: ${app}`);
    }
    assert.ok(app.includes("app/notes/static/notes/app.css"), "an app's own static files are source");
    assert.ok(app.includes("app/manage.py") && app.includes("app/notes/migrations/0002_note_attachment.py"));
    assert.deepStrictEqual(
      names.filter((n) => !n.startsWith("app/") && !n.startsWith("wheelhouse/")),
      ["manifest.json", "requirements.lock"],
    );

    const x = tmpDir("layout");
    await ok("tar", ["-xzf", art.file, "-C", x]);
    const lock = fs.readFileSync(path.join(x, "requirements.lock"));
    const manifest = JSON.parse(fs.readFileSync(path.join(x, "manifest.json"), "utf8"));
    assert.deepStrictEqual(manifest, {
      format: 1,
      lockHash: sha256Hex(lock),
      wsgi: "greenlight_site.wsgi:application",
      migrate: ["python", "manage.py", "migrate", "--noinput"],
      collectstatic: ["python", "manage.py", "collectstatic", "--noinput"],
      python: "3.11",
    });
    assert.strictEqual(art.lockHash, manifest.lockHash);
    const whls = fs.readdirSync(path.join(x, "wheelhouse")).sort();
    const expectedLock = whls
      .map((f) => {
        const [name, version] = f.split("-");
        return `${name.toLowerCase()}==${version} --hash=sha256:${sha256Hex(fs.readFileSync(path.join(x, "wheelhouse", f)))}\n`;
      })
      .sort()
      .join("");
    assert.strictEqual(lock.toString(), expectedLock);
    assert.match(lock.toString(), /^django==3\.2\.25 /m);
    assert.match(lock.toString(), /^gunicorn==20\.1\.0 /m);
    assert.match(lock.toString(), /^psycopg2==2\.9\.5 /m);
  });

  it("refuses a site whose requirements do not bring gunicorn", async () => {
    const dir = copySite();
    fs.writeFileSync(path.join(dir, "requirements.txt"), "Django==3.2.25\n");
    await rejectsWith(
      packageSite(dir, { findLinks: wheels, out: path.join(out, "x.tar.gz") }),
      /must include gunicorn/,
    );
    assert.ok(!fs.existsSync(path.join(out, "x.tar.gz")));
  });
});
