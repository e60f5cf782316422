// Unit tests of the artifact's pure parts. The tar writer is checked against two independent
// readers (Python's tarfile and GNU tar), not against itself.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import * as zlib from "zlib";
import {
  ArtifactError,
  DEFAULT_COLLECTSTATIC,
  DEFAULT_MIGRATE,
  TarEntry,
  buildLock,
  buildManifest,
  buildTar,
  buildTarGz,
  canonicalName,
  collectSource,
  isExcluded,
  manifestJson,
  parseSiteConfig,
  parseWheelFilename,
  sha256Hex,
  splitUstarPath,
} from "../../scripts/cli/lib/artifact";
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
    });
    assert.deepStrictEqual(DEFAULT_MIGRATE, ["python", "manage.py", "migrate", "--noinput"]);
    assert.deepStrictEqual(DEFAULT_COLLECTSTATIC, ["python", "manage.py", "collectstatic", "--noinput"]);
  });

  it("takes overrides of the commands", () => {
    const c = parseSiteConfig(JSON.stringify({ wsgi: "a.b:app", migrate: ["python", "m.py", "migrate"] }));
    assert.deepStrictEqual(c.migrate, ["python", "m.py", "migrate"]);
    assert.deepStrictEqual(c.collectstatic, [...DEFAULT_COLLECTSTATIC]);
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
  });
});

describe("artifact: manifest and lock", () => {
  it("writes the manifest with its keys in the documented order", () => {
    const m = buildManifest(parseSiteConfig('{"wsgi": "s.wsgi:application"}'), H1, "3.11");
    const text = manifestJson(m);
    assert.deepStrictEqual(Object.keys(JSON.parse(text)), [
      "format",
      "lockHash",
      "wsgi",
      "migrate",
      "collectstatic",
      "python",
    ]);
    assert.deepStrictEqual(JSON.parse(text), {
      format: 1,
      lockHash: H1,
      wsgi: "s.wsgi:application",
      migrate: ["python", "manage.py", "migrate", "--noinput"],
      collectstatic: ["python", "manage.py", "collectstatic", "--noinput"],
      python: "3.11",
    });
    assert.ok(text.endsWith("}\n"));
    throwsArtifact(() => buildManifest(m, "abc", "3.11"), /sha256/);
    throwsArtifact(() => buildManifest(m, H1, "3"), /MAJOR.MINOR/);
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
  it("excludes host state and build droppings, but keeps an app's own static/", () => {
    const excluded = [
      ".env",
      "notes/.env",
      "media",
      "media/notes/a.txt",
      "static",
      "static/admin/css/base.css",
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

  it("walks a site dir in byte order with normalised modes, and refuses symlinks", () => {
    const dir = tmpDir("source");
    fs.mkdirSync(path.join(dir, "b", "__pycache__"), { recursive: true });
    fs.mkdirSync(path.join(dir, "static"));
    fs.writeFileSync(path.join(dir, "b", "z.py"), "z", { mode: 0o600 });
    fs.writeFileSync(path.join(dir, "b", "__pycache__", "z.pyc"), "");
    fs.writeFileSync(path.join(dir, "B.py"), "");
    fs.writeFileSync(path.join(dir, "run.sh"), "", { mode: 0o700 });
    fs.writeFileSync(path.join(dir, ".env"), "SECRET_KEY=x");
    fs.writeFileSync(path.join(dir, "skip.tar.gz"), "");
    const found = collectSource(dir, new Set([path.join(dir, "skip.tar.gz")])).map((s) => [s.rel, s.kind, s.mode]);
    assert.deepStrictEqual(found, [
      ["B.py", "file", 0o644],
      ["b/", "dir", 0o755],
      ["b/z.py", "file", 0o644],
      ["run.sh", "file", 0o755],
    ]);
    fs.symlinkSync("/etc/passwd", path.join(dir, "b", "passwd"));
    throwsArtifact(() => collectSource(dir), /symlinks cannot be packaged: .*b\/passwd/);
    // An excluded name may be a symlink: on hosts .env and media are.
    fs.unlinkSync(path.join(dir, "b", "passwd"));
    fs.rmSync(path.join(dir, "static"), { recursive: true });
    fs.symlinkSync("/nonexistent", path.join(dir, "static"));
    assert.doesNotThrow(() => collectSource(dir));
  });
});

describe("artifact: tar writer", () => {
  const longDir = "app/" + "d".repeat(60) + "/" + "e".repeat(60) + "/";
  const longName = "f".repeat(120) + ".txt";
  const entries: TarEntry[] = [
    { path: "wheelhouse/", type: "dir", mode: 0o755 },
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

  it("splits long paths into ustar prefix and name at a slash", () => {
    assert.deepStrictEqual(splitUstarPath("a/b"), { name: Buffer.from("a/b"), prefix: Buffer.alloc(0) });
    const s = splitUstarPath(longDir + "ok.txt")!;
    assert.strictEqual(s.prefix.toString() + "/" + s.name.toString(), longDir + "ok.txt");
    assert.ok(s.name.length <= 100 && s.prefix.length <= 155);
    const d = splitUstarPath(longDir)!;
    assert.ok(d.name.toString().endsWith("/"), "a directory keeps its trailing slash in the name part");
    assert.strictEqual(splitUstarPath(longDir + longName), null);
  });

  it("is read back exactly by Python's tarfile: sorted, uid/gid 0, mtime 0, modes, long names", async () => {
    const file = path.join(tmpDir("tar"), "t.tar");
    fs.writeFileSync(file, buildTar(entries));
    const members = await pythonList(file);
    const expected = [...entries].sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
    assert.deepStrictEqual(
      members.map((m) => m.name),
      expected.map((e) => e.path.replace(/\/$/, "")),
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

  it("is accepted by GNU tar, which extracts the same bytes", async () => {
    const dir = tmpDir("gnutar");
    const file = path.join(dir, "t.tar.gz");
    fs.writeFileSync(file, buildTarGz(entries));
    const out = path.join(dir, "out");
    fs.mkdirSync(out);
    await ok("tar", ["-xzf", file, "-C", out]);
    for (const e of entries.filter((x) => x.type === "file")) {
      assert.deepStrictEqual(fs.readFileSync(path.join(out, e.path)), e.data, e.path);
    }
    assert.strictEqual(fs.statSync(path.join(out, "app/manage.py")).mode & 0o777, 0o755);
  });

  it("gives identical bytes for identical entries in any order, with a timeless gzip header", () => {
    const a = buildTarGz(entries);
    const b = buildTarGz([...entries].reverse());
    assert.ok(a.equals(b));
    assert.strictEqual(a.readUInt32LE(4), 0, "gzip MTIME is zero");
    assert.strictEqual(a[3] & 0x08, 0, "gzip FNAME flag is clear");
    assert.ok(zlib.gunzipSync(a).equals(buildTar(entries)));
    assert.strictEqual(buildTar(entries).length % 10240, 0, "whole tar records");
    const changed = entries.map((e) => (e.path === "app/empty" ? { ...e, mode: 0o600 } : e));
    assert.ok(!buildTarGz(changed).equals(a), "a mode change changes the archive");
  });

  it("refuses unsafe, duplicate and mistyped paths", () => {
    const f = (p: string): TarEntry => ({ path: p, type: "file", mode: 0o644, data: Buffer.alloc(0) });
    throwsArtifact(() => buildTar([f("/etc/passwd")]), /unsafe path/);
    throwsArtifact(() => buildTar([f("app/../../x")]), /unsafe path/);
    throwsArtifact(() => buildTar([f("app//x")]), /unsafe path/);
    throwsArtifact(() => buildTar([f("a"), f("a")]), /duplicate path/);
    throwsArtifact(() => buildTar([f("a/")]), /directory paths/);
    throwsArtifact(() => buildTar([{ path: "d", type: "dir", mode: 0o755 }]), /directory paths/);
  });
});
