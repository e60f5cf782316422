// package-site end to end: the CLI's output and errors, reproducibility, and what ends up in
// the archive, with the hosts' wheels from PyPI (cached in ~/.cache/greenlight/wheels by the
// lock's hash: the first run on a machine downloads them, later runs reuse them).
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { ArtifactError, readManifest, sha256Hex } from "../../scripts/cli/lib/artifact";
import { packageSite, parseArgs } from "../../scripts/cli/package-site";
import { UV } from "../../scripts/cli/lib/installer";
import { ok, ROOT, run, RunResult, SITE_DIR, tmpDir } from "./helpers";

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

const quiet = { note: () => undefined };

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
    assert.deepStrictEqual(parseArgs(["--find-links", "w", "--no-index", "site", "--python", "python3.12"]), {
      dir: "site",
      out: undefined,
      findLinks: "w",
      noIndex: true,
      python: "python3.12",
    });
    assert.strictEqual(parseArgs(["--help"]), "help");
    assert.throws(() => parseArgs([]), /missing site directory/);
    assert.throws(() => parseArgs(["a", "b"]), /one site directory only/);
    assert.throws(() => parseArgs(["a", "--out"]), /--out needs a value/);
    assert.throws(() => parseArgs(["a", "--out="]), /--out needs a value/);
    assert.throws(() => parseArgs(["a", "--no-index"]), /--no-index needs --find-links/);
  });

  it("says in one line that greenlight.json is missing", async () => {
    const dir = copySite();
    fs.unlinkSync(path.join(dir, "greenlight.json"));
    assertOneLineError(await cli([dir]), /greenlight\.json not found: .*greenlight\.json$/);
  });

  it("says in one line that the site dir does not exist", async () => {
    assertOneLineError(await cli(["/nonexistent/site"]), /site directory not found: \/nonexistent\/site$/);
  });

  it("names a dependency without a wheel for the hosts, and the way out", async () => {
    const dir = copySite();
    fs.writeFileSync(path.join(dir, "requirements.txt"), "no-such-package-xyz==1.0\n");
    const r = await cli([dir, "--no-index", "--find-links", tmpDir("emptywheels")]);
    assertOneLineError(
      r,
      /no wheel for the hosts \(CPython 3\.11 on manylinux x86_64.*\) on the index for: no-such-package-xyz==1\.0\. Ways out: /,
    );
    assert.match(r.stderr, /pass --find-links wheels\/$/m);
  });

  it("names psycopg2 (source only on PyPI) and offers psycopg[binary]", async () => {
    const dir = copySite();
    fs.writeFileSync(path.join(dir, "requirements.txt"), "gunicorn==23.0.0\npsycopg2==2.9.10\n");
    await rejectsWith(
      packageSite(dir, { ...quiet, wheelCache: "" }),
      /no wheel for the hosts .* for: psycopg2==2\.9\.10\. Ways out: .*psycopg2 -> psycopg\[binary\]/,
    );
  });

  it("says how to fix a requirements file that hashes some requirements only", async () => {
    const dir = copySite();
    const full = fs.readFileSync(path.join(SITE_DIR, "requirements.txt"), "utf8");
    // gunicorn pinned and hashed, its dependency packaging not listed at all.
    const block = /^gunicorn==(\S+)[^\n]*((\n {4}--hash[^\n]*)+)/m.exec(full)!;
    const hashes = [...block[2].matchAll(/sha256:[0-9a-f]{64}/g)].map((m) => `--hash=${m[0]}`);
    fs.writeFileSync(path.join(dir, "requirements.txt"), `gunicorn==${block[1]} ${hashes.join(" ")}\n`);
    await rejectsWith(
      packageSite(dir, { ...quiet, wheelCache: "" }),
      /pins hashes for some requirements but not all .*uv pip compile --generate-hashes --python-version 3\.11/,
    );
  });

  it("rejects a bad greenlight.json, a missing requirements file and unknown options", async () => {
    const dir = copySite();
    fs.writeFileSync(path.join(dir, "greenlight.json"), '{"wsgi": "greenlight_site.wsgi"}');
    await rejectsWith(packageSite(dir, quiet), /"wsgi" must look like/);
    fs.writeFileSync(path.join(dir, "greenlight.json"), "{");
    await rejectsWith(packageSite(dir, quiet), /greenlight\.json is not valid JSON/);
    fs.writeFileSync(path.join(dir, "greenlight.json"), '{"wsgi": "greenlight_site.wsgi:application"}');
    fs.unlinkSync(path.join(dir, "requirements.txt"));
    await rejectsWith(packageSite(dir, quiet), /requirements\.txt not found/);
    fs.writeFileSync(
      path.join(dir, "greenlight.json"),
      '{"wsgi": "greenlight_site.wsgi:application", "requirements": "requirements/production.txt"}',
    );
    await rejectsWith(packageSite(dir, quiet), /requirements\/production\.txt not found/);
    assertOneLineError(await cli([dir, "--bogus"]), /unknown option --bogus; usage: /);
  });

  it("refuses a symlink that leads outside the site, naming it", async () => {
    const dir = copySite();
    fs.symlinkSync("/etc/passwd", path.join(dir, "notes", "passwd"));
    assertOneLineError(await cli([dir]), /symlink notes\/passwd -> \/etc\/passwd leads outside the site/);
  });
});

describe("package-site: building the example site", () => {
  let out: string;

  before(() => {
    out = tmpDir("out");
  });

  it("prints one JSON line, names the default output by content, and notes what it skipped", async () => {
    const cwd = tmpDir("cwd");
    const dir = copySite();
    fs.symlinkSync(tmpDir("some-venv"), path.join(dir, ".venv"));
    const r = await cli([dir], {}, cwd);
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
    assert.match(r.stderr, /^package-site: skipped \.venv: a symlink to a virtualenv/m);
    assert.ok(!(await listTar(result.file)).some((n) => n.includes(".venv")));
  });

  it("builds byte-identical archives from the same inputs", async () => {
    const a = await packageSite(SITE_DIR, { ...quiet, out: path.join(out, "a.tar.gz") });
    const b = await packageSite(SITE_DIR, { ...quiet, out: path.join(out, "b.tar.gz") });
    assert.strictEqual(a.sha256, b.sha256);
    assert.ok(fs.readFileSync(a.file).equals(fs.readFileSync(b.file)));
    assert.strictEqual(a.lockHash, b.lockHash);
  });

  it("reuses the cached wheels of the same lock without running pip, and checks them", async () => {
    const cache = tmpDir("wheelcache");
    const first = await packageSite(SITE_DIR, { ...quiet, wheelCache: cache, out: path.join(out, "c1.tar.gz") });
    const [key] = fs.readdirSync(cache);
    assert.match(key, /^[0-9a-f]{64}$/);
    assert.ok(fs.existsSync(path.join(cache, key, ".complete")));
    // A python that cannot start proves pip never ran.
    const again = await packageSite(SITE_DIR, {
      ...quiet,
      wheelCache: cache,
      python: "/nonexistent/python3",
      out: path.join(out, "c2.tar.gz"),
    });
    assert.strictEqual(again.sha256, first.sha256);
    // A cached wheel that no longer matches the lock is not used: the cache is downloaded again.
    const victim = fs.readdirSync(path.join(cache, key)).find((f) => f.startsWith("sqlparse"))!;
    fs.writeFileSync(path.join(cache, key, victim), "tampered");
    await rejectsWith(
      packageSite(SITE_DIR, { ...quiet, wheelCache: cache, python: "/nonexistent/python3" }),
      /cannot run \/nonexistent\/python3/,
    );
  });

  it("lays the archive out as the hosts expect: manifest first, lock, wheelhouse, app without host state", async () => {
    const dir = copySite();
    for (const [rel, text] of Object.entries({
      ".env": "SECRET_KEY=leak\n",
      REVISION: "r1\n",
      "media/notes/upload.txt": "user data",
      "staticfiles/admin/base.css": "collected", // the example's .gitignore: its STATIC_ROOT
      "notes/__pycache__/models.cpython-311.pyc": "",
      ".git/HEAD": "ref: refs/heads/main\n",
      "notes/static/notes/app.css": "body {}",
      "node_modules/left-pad/index.js": "", // ignored by a .gitignore rule added below
      "db.sqlite3": "",
    })) {
      fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
      fs.writeFileSync(path.join(dir, rel), text);
    }
    fs.appendFileSync(path.join(dir, ".gitignore"), "node_modules/\n*.sqlite3\n");
    const art = await packageSite(dir, { ...quiet, out: path.join(dir, "site.tar.gz") });
    const names = await listTar(art.file);
    assert.deepStrictEqual(names.slice(0, 2), ["manifest.json", "requirements.lock"]);
    const app = names.filter((n) => n.startsWith("app/"));
    for (const gone of [
      ".env",
      "REVISION",
      "media/",
      "app/staticfiles/",
      "__pycache__",
      ".git/",
      "site.tar.gz",
      "node_modules",
      "sqlite3",
    ]) {
      assert.ok(!app.some((n) => n.includes(gone)), `${gone} leaked: ${app}`);
    }
    assert.ok(app.includes("app/notes/static/notes/app.css"), "an app's own static files are source");
    assert.ok(app.includes("app/manage.py") && app.includes("app/notes/migrations/0002_note_attachment.py"));
    assert.deepStrictEqual(
      names.filter((n) => !n.startsWith("app/") && !n.startsWith("wheelhouse/") && !n.startsWith("tools/")),
      ["manifest.json", "requirements.lock"],
    );
    // The hosts' installer, last: uv's wheel from PyPI, the pinned one (installer.ts).
    assert.deepStrictEqual(
      names.filter((n) => n.startsWith("tools/")),
      ["tools/", `tools/${UV.filename}`],
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
      migrations: ["notes.0001_initial", "notes.0002_note_attachment"],
      worker: ["celery", "-A", "greenlight_site", "worker", "--pool=threads", "--concurrency=2", "--loglevel=INFO"],
      beat: ["celery", "-A", "greenlight_site", "beat", "--loglevel=INFO"],
    });
    assert.strictEqual(art.lockHash, manifest.lockHash);
    assert.deepStrictEqual(await readManifest(art.file), manifest, "npm run release reads it without unpacking");
    const whls = fs.readdirSync(path.join(x, "wheelhouse")).sort();
    const expectedLock = whls
      .map((f) => {
        const [name, version] = f.split("-");
        const canonical = name.toLowerCase().replace(/_/g, "-");
        const hash = sha256Hex(fs.readFileSync(path.join(x, "wheelhouse", f)));
        return [canonical, `${canonical}==${version} --hash=sha256:${hash}\n`];
      })
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, line]) => line)
      .join("");
    assert.strictEqual(lock.toString(), expectedLock);
    assert.match(lock.toString(), /^django==5\.2\.\d+ /m);
    assert.match(lock.toString(), /^gunicorn==23\.\d+\.\d+ /m);
    assert.match(lock.toString(), /^psycopg==3\.\d+\.\d+ /m);
    assert.match(lock.toString(), /^psycopg-binary==3\.\d+\.\d+ /m);
    // Every wheel runs on the hosts: pure Python (py3, or universal py2.py3 as click-plugins is),
    // CPython 3.11 for manylinux x86_64, or the stable ABI of a CPython up to 3.11 (wcwidth's
    // cp310-abi3).
    for (const w of whls)
      assert.match(
        w,
        /-((py3|py2\.py3)-none-any|cp311-cp311-manylinux[\w.]*x86_64|cp3(\d|10|11)-abi3-manylinux[\w.]*x86_64)\.whl$/,
        w,
      );
    // Every wheel is one the site's hash-locked requirements.txt allows.
    const allowed = fs.readFileSync(path.join(SITE_DIR, "requirements.txt"), "utf8");
    for (const w of whls) {
      assert.ok(allowed.includes(sha256Hex(fs.readFileSync(path.join(x, "wheelhouse", w)))), `${w} is not in the lock`);
    }
    assert.strictEqual(sha256Hex(fs.readFileSync(path.join(x, "tools", UV.filename))), UV.sha256);
  });

  it("keeps a root static/ (STATICFILES_DIRS) and resolves a symlink that stays inside", async () => {
    const dir = copySite();
    fs.writeFileSync(path.join(dir, ".gitignore"), ".env\nREVISION\nmedia/\n__pycache__/\n");
    fs.mkdirSync(path.join(dir, "static", "css"), { recursive: true });
    fs.writeFileSync(path.join(dir, "static", "css", "site.css"), "body {}");
    fs.symlinkSync("css/site.css", path.join(dir, "static", "site.css"));
    const notes: string[] = [];
    const art = await packageSite(dir, { note: (n) => notes.push(n), out: path.join(out, "static.tar.gz") });
    const names = await listTar(art.file);
    assert.ok(names.includes("app/static/css/site.css"), names.join("\n"));
    assert.ok(names.includes("app/static/site.css"));
    assert.deepStrictEqual(notes, [
      "resolved symlink static/site.css -> css/site.css: shipped as a copy (hosts take no links)",
    ]);
    const listing = (await ok("tar", ["-tvzf", art.file])).stdout;
    assert.match(listing, /^-rw-r--r-- .* app\/static\/site\.css$/m, "a regular file, not a link");
  });

  it("takes the source from what git tracks and would add, not from ignored files", async () => {
    const dir = copySite();
    await ok("git", ["init", "-q"], { cwd: dir });
    await ok("git", ["add", "."], { cwd: dir });
    fs.writeFileSync(path.join(dir, "notes", "untracked.py"), "# new, not ignored: git add would take it\n");
    fs.writeFileSync(path.join(dir, "local_settings.py"), "DEBUG = True\n");
    fs.appendFileSync(path.join(dir, ".git", "info", "exclude"), "local_settings.py\n");
    fs.rmSync(path.join(dir, "notes", "admin.py")); // tracked, deleted in the work tree
    const art = await packageSite(dir, { ...quiet, out: path.join(out, "git.tar.gz") });
    const names = await listTar(art.file);
    assert.ok(names.includes("app/notes/untracked.py"));
    assert.ok(!names.includes("app/local_settings.py"), "git's own excludes apply");
    assert.ok(!names.includes("app/notes/admin.py"));
    assert.ok(names.includes("app/notes/models.py"));
  });

  it("refuses a site whose requirements do not bring gunicorn", async () => {
    const dir = copySite();
    const full = fs.readFileSync(path.join(SITE_DIR, "requirements.txt"), "utf8");
    // gunicorn alone: its dependency packaging stays, as kombu (Celery) needs it too.
    const noGunicorn = full.replace(/^gunicorn==[^\n]*(\n {4}[^\n]*)*\n/m, "");
    fs.writeFileSync(path.join(dir, "requirements.txt"), noGunicorn);
    await rejectsWith(packageSite(dir, { ...quiet, out: path.join(out, "x.tar.gz") }), /must include gunicorn/);
    assert.ok(!fs.existsSync(path.join(out, "x.tar.gz")));
  });
});
