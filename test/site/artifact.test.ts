// Unit tests of the artifact's parts that need no pip: greenlight.json, the manifest and lock,
// which files are source, reading requirements files. The tar writer (tar-stream) is checked
// against two independent readers (Python's tarfile and GNU tar), not against itself.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import * as zlib from "zlib";
import {
  ArtifactError,
  DEFAULT_COLLECTSTATIC,
  DEFAULT_MIGRATE,
  HOST_PYTHON,
  TarEntry,
  buildLock,
  buildManifest,
  buildTarGz,
  canonicalName,
  isExcluded,
  manifestJson,
  siteMigrations,
  orderEntries,
  parseSiteConfig,
  parseWheelFilename,
  sha256Hex,
} from "../../scripts/cli/lib/artifact";
import { collectSource } from "../../scripts/cli/lib/source";
import { explainPipFailure, isHashLocked, readRequirements, targetArgs } from "../../scripts/cli/lib/wheels";
import { ok, SYSTEM_PYTHON, tmpDir } from "./helpers";

const H1 = "a".repeat(64);
const H2 = "b".repeat(64);

function throwsArtifact(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof ArtifactError && message.test(e.message));
}

interface Member {
  name: string;
  type: string;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  uname: string;
  gname: string;
  sha256: string | null;
}

const LIST_TAR = `
import hashlib, json, sys, tarfile
out = []
with tarfile.open(sys.argv[1], "r:*") as tf:
    for m in tf.getmembers():
        data = tf.extractfile(m).read() if m.isfile() else None
        out.append(dict(name=m.name, type="dir" if m.isdir() else "file" if m.isfile() else m.type.decode(),
                        size=m.size, mode=m.mode, uid=m.uid, gid=m.gid, mtime=m.mtime, uname=m.uname,
                        gname=m.gname, sha256=hashlib.sha256(data).hexdigest() if data is not None else None))
print(json.dumps(out))
`;

async function pythonList(file: string): Promise<Member[]> {
  return JSON.parse((await ok(SYSTEM_PYTHON, ["-c", LIST_TAR, file])).stdout) as Member[];
}

describe("artifact: greenlight.json", () => {
  it("fills in the default migrate and collectstatic commands", () => {
    assert.deepStrictEqual(parseSiteConfig('{ "wsgi": "greenlight_site.wsgi:application" }'), {
      wsgi: "greenlight_site.wsgi:application",
      migrate: ["python", "manage.py", "migrate", "--noinput"],
      collectstatic: ["python", "manage.py", "collectstatic", "--noinput"],
      requirements: "requirements.txt",
    });
    assert.deepStrictEqual(DEFAULT_MIGRATE, ["python", "manage.py", "migrate", "--noinput"]);
    assert.deepStrictEqual(DEFAULT_COLLECTSTATIC, ["python", "manage.py", "collectstatic", "--noinput"]);
  });

  it("takes overrides of the commands", () => {
    const c = parseSiteConfig(JSON.stringify({ wsgi: "a.b:app", migrate: ["python", "m.py", "migrate"] }));
    assert.deepStrictEqual(c.migrate, ["python", "m.py", "migrate"]);
    assert.deepStrictEqual(c.collectstatic, [...DEFAULT_COLLECTSTATIC]);
    const r = parseSiteConfig(
      JSON.stringify({ wsgi: "config.wsgi:application", requirements: "requirements/production.txt" }),
    );
    assert.strictEqual(r.requirements, "requirements/production.txt");
  });

  it("refuses what it cannot use, saying why", () => {
    throwsArtifact(() => parseSiteConfig("{ wsgi: 1 }"), /not valid JSON/);
    throwsArtifact(() => parseSiteConfig("[]"), /must be a JSON object/);
    throwsArtifact(() => parseSiteConfig("{}"), /"wsgi" must look like/);
    throwsArtifact(() => parseSiteConfig('{"wsgi": "app"}'), /"wsgi" must look like/);
    throwsArtifact(() => parseSiteConfig('{"wsgi": "a.b:app; rm -rf /"}'), /"wsgi" must look like/);
    throwsArtifact(() => parseSiteConfig('{"wsgi": "a:b", "migrations": []}'), /unknown key "migrations"/);
    throwsArtifact(() => parseSiteConfig('{"wsgi": "a:b", "migrate": []}'), /"migrate" must be a non-empty array/);
    throwsArtifact(() => parseSiteConfig('{"wsgi": "a:b", "collectstatic": "x"}'), /"collectstatic" must be/);
    throwsArtifact(() => parseSiteConfig('{"wsgi": "a:b", "migrate": ["python", ""]}'), /"migrate" must be/);
    throwsArtifact(
      () => parseSiteConfig('{"wsgi": "a:b", "requirements": "../req.txt"}'),
      /"requirements" must be a relative path/,
    );
    throwsArtifact(() => parseSiteConfig('{"wsgi": "a:b", "requirements": "/etc/req.txt"}'), /"requirements" must be/);
  });
});

describe("artifact: greenlight.json's worker and beat", () => {
  const site = (extra: object) => JSON.stringify({ wsgi: "s.wsgi:application", ...extra });
  const worker = ["celery", "-A", "s", "worker", "--loglevel=INFO"];
  const beat = ["celery", "-A", "s", "beat"];

  it("are optional, and reach the manifest (after its other keys) only when declared", () => {
    const none = buildManifest(parseSiteConfig(site({})), H1, HOST_PYTHON);
    assert.ok(!("worker" in none) && !("beat" in none));
    const both = buildManifest(parseSiteConfig(site({ worker, beat })), H1, HOST_PYTHON);
    assert.deepStrictEqual(Object.keys(JSON.parse(manifestJson(both))).slice(-2), ["worker", "beat"]);
    assert.deepStrictEqual(both.worker, worker);
    assert.deepStrictEqual(both.beat, beat);
    assert.deepStrictEqual(parseSiteConfig(site({ worker: ["python", "-m", "celery", "-A", "s", "worker"] })).worker, [
      "python",
      "-m",
      "celery",
      "-A",
      "s",
      "worker",
    ]);
  });

  it("refuses what supervisor could not run or would lose, saying why", () => {
    throwsArtifact(() => parseSiteConfig(site({ worker: [] })), /"worker" must be a non-empty array/);
    throwsArtifact(() => parseSiteConfig(site({ worker: ["/usr/bin/celery", "worker"] })), /console script/);
    throwsArtifact(() => parseSiteConfig(site({ worker: ["celery;", "worker"] })), /console script/);
    throwsArtifact(() => parseSiteConfig(site({ worker: [...worker, "--detach"] })), /foreground.*--detach/);
    throwsArtifact(() => parseSiteConfig(site({ worker, beat: [...beat, "-D"] })), /foreground.*-D/);
    throwsArtifact(
      () => parseSiteConfig(site({ worker, beat: [...beat, "--schedule=/tmp/x"] })),
      /hosts pass --schedule/,
    );
    throwsArtifact(() => parseSiteConfig(site({ worker, beat: [...beat, "-s", "x"] })), /must not set "-s"/);
    throwsArtifact(() => parseSiteConfig(site({ beat })), /"beat" is set without "worker"/);
    throwsArtifact(() => parseSiteConfig(site({ workers: worker })), /unknown key "workers"/);
  });
});

describe("artifact: manifest and lock", () => {
  it("lists the site's own migrations as Django names them, from its migration files", () => {
    assert.deepStrictEqual(
      siteMigrations([
        "notes/migrations/0002_note_attachment.py",
        "notes/migrations/__init__.py",
        "notes/migrations/0001_initial.py",
        "shop/apps/cart/migrations/0001_initial.py",
        "notes/models.py",
        "notes/migrations/README.md",
        "scripts/migrations.py",
      ]),
      ["cart.0001_initial", "notes.0001_initial", "notes.0002_note_attachment"],
    );
  });

  it("writes the manifest with its keys in the documented order", () => {
    const m = buildManifest(parseSiteConfig('{"wsgi": "s.wsgi:application"}'), H1, HOST_PYTHON);
    const text = manifestJson(m);
    assert.deepStrictEqual(Object.keys(JSON.parse(text)), [
      "format",
      "lockHash",
      "wsgi",
      "migrate",
      "collectstatic",
      "python",
      "migrations",
    ]);
    assert.deepStrictEqual(JSON.parse(text), {
      format: 1,
      lockHash: H1,
      wsgi: "s.wsgi:application",
      migrate: ["python", "manage.py", "migrate", "--noinput"],
      collectstatic: ["python", "manage.py", "collectstatic", "--noinput"],
      python: "3.11",
      migrations: [],
    });
    assert.ok(text.endsWith("}\n"));
    const c = parseSiteConfig('{"wsgi": "s.wsgi:application"}');
    throwsArtifact(() => buildManifest(c, "abc", "3.11"), /sha256/);
    throwsArtifact(() => buildManifest(c, H1, "3"), /MAJOR.MINOR/);
  });

  it("reads names and versions from wheel file names", () => {
    assert.deepStrictEqual(parseWheelFilename("Django-3.2.25-py3-none-any.whl"), {
      name: "django",
      version: "3.2.25",
      tags: "py3-none-any",
    });
    assert.deepStrictEqual(parseWheelFilename("zope.interface-6.0-1-cp311-cp311-linux_x86_64.whl"), {
      name: "zope-interface",
      version: "6.0",
      tags: "cp311-cp311-linux_x86_64",
    });
    assert.strictEqual(canonicalName("Foo__Bar.baz"), "foo-bar-baz");
    throwsArtifact(() => parseWheelFilename("Django-3.2.25.tar.gz"), /not a wheel/);
    throwsArtifact(() => parseWheelFilename("Django-py3-none-any.whl"), /not a wheel/);
  });

  it("pins and hashes every wheel, one sorted line per project", () => {
    const lock = buildLock([
      { filename: "sqlparse-0.4.2-py3-none-any.whl", sha256: H2 },
      { filename: "Django-3.2.25-py3-none-any.whl", sha256: H1 },
      { filename: "psycopg2-2.9.5-cp311-cp311-linux_x86_64.whl", sha256: H2 },
      { filename: "psycopg2-2.9.5-cp311-cp311-linux_aarch64.whl", sha256: H1 },
    ]);
    assert.strictEqual(
      lock,
      `django==3.2.25 --hash=sha256:${H1}\n` +
        `psycopg2==2.9.5 --hash=sha256:${H1} --hash=sha256:${H2}\n` +
        `sqlparse==0.4.2 --hash=sha256:${H2}\n`,
    );
    assert.strictEqual(sha256Hex(lock), sha256Hex(Buffer.from(lock)));
  });

  it("refuses an empty wheelhouse, two versions of a project and bad digests", () => {
    throwsArtifact(() => buildLock([]), /wheelhouse is empty/);
    throwsArtifact(
      () =>
        buildLock([
          { filename: "pytz-2022.7.1-py3-none-any.whl", sha256: H1 },
          { filename: "pytz-2023.3-py3-none-any.whl", sha256: H2 },
        ]),
      /two versions of pytz/,
    );
    throwsArtifact(() => buildLock([{ filename: "pytz-2022.7.1-py3-none-any.whl", sha256: "XYZ" }]), /bad sha256/);
  });
});

describe("artifact: source files", () => {
  it("never ships secrets, host state or bytecode, but keeps static/ dirs, root one included", () => {
    const excluded = [
      ".env",
      "notes/.env",
      "media",
      "media/notes/a.txt",
      "REVISION",
      "__pycache__",
      "notes/__pycache__/models.cpython-311.pyc",
      "notes/models.pyc",
      "x.pyo",
      ".git",
      ".git/HEAD",
      "vendor/.git/config",
    ];
    const kept = [
      "manage.py",
      "static",
      "static/css/site.css",
      "notes/static/notes/app.css",
      "notes/media.py",
      "docs/REVISION",
      ".env.example",
      ".gitignore",
      "requirements.txt",
      "greenlight.json",
      "pyc.txt",
    ];
    for (const p of excluded) assert.strictEqual(isExcluded(p), true, `${p} should be excluded`);
    for (const p of kept) assert.strictEqual(isExcluded(p), false, `${p} should be kept`);
  });

  function tree(files: Record<string, string>): string {
    const dir = path.join(tmpDir("source"), "site");
    for (const [rel, text] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
      fs.writeFileSync(path.join(dir, rel), text);
    }
    return dir;
  }
  const rels = (dir: string) => collectSource(dir).files.map((s) => s.rel);

  it("walks a site dir in byte order with normalised modes, applying every .gitignore on the way", () => {
    const dir = tree({
      "B.py": "",
      "b/z.py": "z",
      "b/__pycache__/z.pyc": "",
      "b/.gitignore": "*.log\n/local.py\n",
      "b/app.log": "",
      "b/local.py": "",
      "b/deep/local.py": "", // "/local.py" anchors to b/ only
      ".gitignore": "node_modules/\ndb.sqlite3\n!keep.sqlite3\n",
      "node_modules/x/index.js": "",
      "db.sqlite3": "",
      "static/site.css": "",
      ".env": "SECRET_KEY=x",
    });
    fs.writeFileSync(path.join(dir, "run.sh"), "", { mode: 0o700 });
    fs.chmodSync(path.join(dir, "b", "z.py"), 0o600);
    const found = collectSource(dir);
    assert.strictEqual(found.via, "gitignore");
    assert.deepStrictEqual(
      found.files.map((s) => [s.rel, s.kind, s.mode]),
      [
        [".gitignore", "file", 0o644],
        ["B.py", "file", 0o644],
        ["b/", "dir", 0o755],
        ["b/.gitignore", "file", 0o644],
        ["b/deep/", "dir", 0o755],
        ["b/deep/local.py", "file", 0o644],
        ["b/z.py", "file", 0o644],
        ["run.sh", "file", 0o755],
        ["static/", "dir", 0o755],
        ["static/site.css", "file", 0o644],
      ],
    );
  });

  it("skips virtualenvs, resolves links that stay inside, refuses links that escape or dangle", () => {
    const dir = tree({ "app/models.py": "", "layouts/base.html": "<html>", "venv/pyvenv.cfg": "home = /usr/bin\n" });
    const elsewhere = tmpDir("venv-elsewhere");
    fs.writeFileSync(path.join(elsewhere, "pyvenv.cfg"), "");
    fs.symlinkSync(elsewhere, path.join(dir, ".venv"));
    fs.symlinkSync("../layouts", path.join(dir, "app", "templates"));
    fs.symlinkSync("models.py", path.join(dir, "app", "alias.py"));
    const found = collectSource(dir);
    assert.deepStrictEqual(
      found.files.map((s) => s.rel),
      [
        "app/",
        "app/alias.py",
        "app/models.py",
        "app/templates/",
        "app/templates/base.html",
        "layouts/",
        "layouts/base.html",
      ],
    );
    assert.strictEqual(
      found.files.find((s) => s.rel === "app/alias.py")!.abs,
      fs.realpathSync(path.join(dir, "app/models.py")),
    );
    assert.deepStrictEqual(found.notes, [
      "skipped .venv: a symlink to a virtualenv (the hosts build theirs from the wheelhouse)",
      "resolved symlink app/alias.py -> models.py: shipped as a copy (hosts take no links)",
      "resolved symlink app/templates -> ../layouts: shipped as a copy (hosts take no links)",
      "skipped venv/: a virtualenv (the hosts build theirs from the wheelhouse)",
    ]);
    fs.symlinkSync("/etc/passwd", path.join(dir, "app", "passwd"));
    throwsArtifact(
      () => collectSource(dir),
      /symlink app\/passwd -> \/etc\/passwd leads outside the site \(to \/etc\/passwd\)/,
    );
    fs.unlinkSync(path.join(dir, "app", "passwd"));
    fs.symlinkSync("nowhere.py", path.join(dir, "app", "gone.py"));
    throwsArtifact(() => collectSource(dir), /symlink app\/gone\.py -> nowhere\.py points nowhere/);
    fs.unlinkSync(path.join(dir, "app", "gone.py"));
    fs.symlinkSync("..", path.join(dir, "app", "up"));
    throwsArtifact(() => collectSource(dir), /symlink app\/up -> \.\. makes a loop/);
    fs.unlinkSync(path.join(dir, "app", "up"));
    // An excluded name may be a link that leads anywhere: on hosts .env and media are.
    fs.symlinkSync("/nonexistent", path.join(dir, "media"));
    fs.symlinkSync("/etc/hostname", path.join(dir, ".env"));
    assert.doesNotThrow(() => collectSource(dir));
    // A gitignored link is never looked at.
    fs.writeFileSync(path.join(dir, ".gitignore"), "escape\n");
    fs.symlinkSync("/etc", path.join(dir, "escape"));
    assert.ok(!rels(dir).includes("escape"));
  });

  it("in a git work tree takes what git tracks and would add, skipping ignored and deleted files", async () => {
    const dir = tree({ "a.py": "", "gone.py": "", ".gitignore": "*.log\n", "debug.log": "", "sub/b.py": "" });
    await ok("git", ["init", "-q"], { cwd: dir });
    await ok("git", ["add", "a.py", "gone.py", ".gitignore"], { cwd: dir });
    await ok("git", ["add", "-f", "debug.log"], { cwd: dir }); // tracked despite the rule: git ships it
    fs.rmSync(path.join(dir, "gone.py"));
    const found = collectSource(dir);
    assert.strictEqual(found.via, "git");
    assert.deepStrictEqual(
      found.files.map((s) => s.rel),
      [".gitignore", "a.py", "debug.log", "sub/", "sub/b.py"],
    );
    // The site may be a subdirectory of the repository.
    assert.deepStrictEqual(rels(path.join(dir, "sub")), ["b.py"]);
  });
});

describe("artifact: requirements files", () => {
  it("reads pins, hashes, markers, extras, continuation lines and included files", () => {
    const dir = tmpDir("reqs");
    fs.mkdirSync(path.join(dir, "requirements"));
    fs.writeFileSync(
      path.join(dir, "requirements", "base.txt"),
      `# comment\nDjango==5.2.1 \\\n    --hash=sha256:${H1} \\\n    --hash=sha256:${H2}\n` +
        `typing-extensions==4.12.2 ; python_version < "3.13" --hash=sha256:${H1}\npsycopg[binary]==3.2.3 --hash=sha256:${H2}\n`,
    );
    fs.writeFileSync(path.join(dir, "requirements", "production.txt"), `-r base.txt\ngunicorn==23.0.0  # the server\n`);
    const tree = readRequirements(path.join(dir, "requirements", "production.txt"));
    assert.strictEqual(tree.files.length, 2);
    assert.deepStrictEqual(
      tree.requirements.map((r) => [r.name, r.pinned, r.hashes.length]),
      [
        ["django", true, 2],
        ["typing-extensions", true, 1],
        ["psycopg", true, 1],
        ["gunicorn", true, 0],
      ],
    );
    assert.strictEqual(isHashLocked(tree), false, "gunicorn has no hash");
    assert.strictEqual(isHashLocked(readRequirements(path.join(dir, "requirements", "base.txt"))), true);
    fs.writeFileSync(path.join(dir, "loose.txt"), "django>=5.2\n-e ./vendor/pkg\n");
    const loose = readRequirements(path.join(dir, "loose.txt"));
    assert.deepStrictEqual(
      loose.requirements.map((r) => [r.name, r.pinned]),
      [["django", false]],
    );
    throwsArtifact(() => readRequirements(path.join(dir, "none.txt")), /requirements file not found/);
  });

  it("targets the hosts: CPython 3.11, manylinux x86_64 up to Debian 12's glibc, wheels only", () => {
    const args = targetArgs();
    assert.ok(args.includes("--only-binary=:all:"));
    assert.deepStrictEqual(args.slice(1, 7), ["--python-version", "3.11", "--implementation", "cp", "--abi", "cp311"]);
    const platforms = args.filter((_, i) => args[i - 1] === "--platform");
    assert.ok(platforms.includes("manylinux_2_36_x86_64") && platforms.includes("manylinux_2_17_x86_64"));
    assert.ok(platforms.includes("manylinux2014_x86_64"));
    assert.ok(!platforms.some((p) => /manylinux_2_3[7-9]|aarch64|macosx|win/.test(p)), platforms.join(" "));
  });

  it("turns pip's failures into the problem and the way out", () => {
    const none =
      "ERROR: Could not find a version that satisfies the requirement psycopg2==2.9.10 (from versions: none)\nERROR: No matching distribution found for psycopg2==2.9.10\n";
    assert.match(
      explainPipFailure(none, "requirements.txt")!,
      /^no wheel for the hosts .* for: psycopg2==2\.9\.10\. Ways out: /,
    );
    assert.match(
      explainPipFailure(
        "ERROR: Hashes are required in --require-hashes mode, but they are missing from some requirements.",
        "r.txt",
      )!,
      /^r\.txt pins hashes for some requirements but not all/,
    );
    assert.match(
      explainPipFailure(
        "ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE.\n    django==5.2.1 from https://x/django.whl:\n",
        "r.txt",
      )!,
      /does not match its hash in r\.txt \(django\)/,
    );
    assert.strictEqual(explainPipFailure("ERROR: something else", "r.txt"), undefined);
  });
});

describe("artifact: tar writer (tar-stream)", () => {
  const longDir = "app/" + "d".repeat(60) + "/" + "e".repeat(60) + "/";
  const longName = "f".repeat(120) + ".txt";
  const entries: TarEntry[] = [
    { path: "wheelhouse/", type: "dir", mode: 0o755 },
    { path: "requirements.lock", type: "file", mode: 0o644, data: Buffer.from("x==1\n") },
    { path: "manifest.json", type: "file", mode: 0o644, data: Buffer.from("{}\n") },
    { path: "app/", type: "dir", mode: 0o755 },
    { path: "app/manage.py", type: "file", mode: 0o755, data: Buffer.from("#!/usr/bin/env python3\n") },
    { path: "app/empty", type: "file", mode: 0o644, data: Buffer.alloc(0) },
    { path: "app/été.txt", type: "file", mode: 0o644, data: Buffer.from("ünïcode") },
    { path: longDir, type: "dir", mode: 0o755 },
    { path: longDir + "ok.txt", type: "file", mode: 0o644, data: Buffer.alloc(513, 7) },
    { path: longDir + longName, type: "file", mode: 0o644, data: Buffer.alloc(512, 1) },
    { path: "app-other.txt", type: "file", mode: 0o644, data: Buffer.from("x") },
  ];

  it("is read back exactly by Python's tarfile: manifest first, then sorted, uid/gid 0, mtime 0, modes, long names", async () => {
    const file = path.join(tmpDir("tar"), "t.tar.gz");
    fs.writeFileSync(file, await buildTarGz(entries));
    const members = await pythonList(file);
    const expected = orderEntries(entries);
    assert.deepStrictEqual(
      members.map((m) => m.name),
      expected.map((e) => e.path.replace(/\/$/, "")),
    );
    assert.deepStrictEqual(
      members.slice(0, 2).map((m) => m.name),
      ["manifest.json", "requirements.lock"],
    );
    members.forEach((m, i) => {
      const e = expected[i];
      assert.strictEqual(m.type, e.type, m.name);
      assert.strictEqual(m.mode, e.mode, m.name);
      assert.deepStrictEqual([m.uid, m.gid, m.mtime, m.uname, m.gname], [0, 0, 0, "", ""], m.name);
      if (e.type === "file") assert.strictEqual(m.sha256, sha256Hex(e.data!), m.name);
    });
    assert.ok(members.findIndex((m) => m.name === "app") < members.findIndex((m) => m.name === "app/manage.py"));
  });

  it("is accepted by GNU tar, which extracts the same bytes, and reads files from disk when told", async () => {
    const dir = tmpDir("gnutar");
    const onDisk = path.join(dir, "wheel.whl");
    fs.writeFileSync(onDisk, Buffer.alloc(70_000, 3));
    const file = path.join(dir, "t.tar.gz");
    const all = [...entries, { path: "wheelhouse/w.whl", type: "file" as const, mode: 0o644, file: onDisk }];
    fs.writeFileSync(file, await buildTarGz(all));
    const out = path.join(dir, "out");
    fs.mkdirSync(out);
    await ok("tar", ["-xzf", file, "-C", out]);
    for (const e of entries.filter((x) => x.type === "file")) {
      assert.deepStrictEqual(fs.readFileSync(path.join(out, e.path)), e.data, e.path);
    }
    assert.deepStrictEqual(fs.readFileSync(path.join(out, "wheelhouse/w.whl")), fs.readFileSync(onDisk));
    assert.strictEqual(fs.statSync(path.join(out, "app/manage.py")).mode & 0o777, 0o755);
  });

  it("gives identical bytes for identical entries in any order, with a timeless gzip header", async () => {
    const a = await buildTarGz(entries);
    const b = await buildTarGz([...entries].reverse());
    assert.ok(a.equals(b));
    assert.strictEqual(a.readUInt32LE(4), 0, "gzip MTIME is zero");
    assert.strictEqual(a[3] & 0x08, 0, "gzip FNAME flag is clear");
    assert.ok(zlib.gunzipSync(a).length > 0);
    const changed = entries.map((e) => (e.path === "app/empty" ? { ...e, mode: 0o600 } : e));
    assert.ok(!(await buildTarGz(changed)).equals(a), "a mode change changes the archive");
  });

  it("refuses unsafe, duplicate and mistyped paths", () => {
    const f = (p: string): TarEntry => ({ path: p, type: "file", mode: 0o644, data: Buffer.alloc(0) });
    throwsArtifact(() => orderEntries([f("/etc/passwd")]), /unsafe path/);
    throwsArtifact(() => orderEntries([f("app/../../x")]), /unsafe path/);
    throwsArtifact(() => orderEntries([f("app//x")]), /unsafe path/);
    throwsArtifact(() => orderEntries([f("a"), f("a")]), /duplicate path/);
    throwsArtifact(() => orderEntries([f("a/")]), /directory paths/);
    throwsArtifact(() => orderEntries([{ path: "d", type: "dir", mode: 0o755 }]), /directory paths/);
  });
});
