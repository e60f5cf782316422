// The example site as the hosts will run it, from the artifact: an offline, hash-checked venv,
// settings from a shared 0600 .env, migrations against a real PostgreSQL over TLS, gunicorn
// behind a unix socket, uploads landing in a media dir that lives outside the release.
import * as assert from "assert";
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { hostPolicy } from "../../components/hosts";
import { Manifest } from "../../scripts/cli/lib/artifact";
import { startAwsStandIn } from "../rig/awsStandIn";
import { packageSite } from "../../scripts/cli/package-site";
import { RigRedis, startRedis } from "../rig/redis";
import {
  freePort,
  Gunicorn,
  multipart,
  ok,
  PgCluster,
  request,
  run,
  RunOptions,
  SITE_DIR,
  SYSTEM_PYTHON,
  tmpDir,
  waitFor,
} from "./helpers";

const RELEASE_ID = "20240501-1200-abc1234";
const DB_PASSWORD = "Pw-_.~x9Zq"; // the generated-secret alphabet's punctuation, all of it
const SECRET_KEY = "k=3$HOME'\"#x-not-expanded";
const PUBLIC_HOST = "site.test";
// What the hosts' fetch step runs: offline, from the artifact's own wheelhouse, hash-checked.
const PIP_OFFLINE = ["--disable-pip-version-check", "--no-index", "--find-links", "wheelhouse", "--require-hashes"];

// Settings must come from .env only: a decoy in the environment must change nothing.
const DECOY_ENV = {
  PATH: process.env.PATH ?? "/usr/bin:/bin",
  LANG: "C.UTF-8",
  SECRET_KEY: "from-the-environment",
  DATABASE_URL: "postgres://env:env@env.invalid:1/env",
};

function envFile(lines: Record<string, string>): string {
  return (
    "# rendered from SSM\n\n" +
    Object.entries(lines)
      .map(([k, v]) => `${k}=${v}\n`)
      .join("")
  );
}

const PROBE = `
import json, os
os.environ["DJANGO_SETTINGS_MODULE"] = "greenlight_site.settings"
import django
django.setup()
from django.conf import settings as s
from django.test import Client
from django.urls import NoReverseMatch, reverse
try:
    admin = reverse("admin:index")
except NoReverseMatch:
    admin = None
health = Client().get(s.HEALTH_PATH, HTTP_HOST="10.0.0.9")
db = s.DATABASES["default"]
print(json.dumps(dict(
    secret=s.SECRET_KEY, debug=s.DEBUG, hosts=s.ALLOWED_HOSTS, admin=admin, release=s.RELEASE_ID,
    db={k: db[k] for k in ("ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT", "OPTIONS")},
    secure=[s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE], proxy=list(s.SECURE_PROXY_SSL_HEADER),
    health=[health.status_code, health["Content-Type"], health.content.decode()],
    first_middleware=s.MIDDLEWARE[0], media=str(s.MEDIA_ROOT), static=str(s.STATIC_ROOT),
)))
`;

describe("example site: from the artifact to a running release", () => {
  let work: string; // plays /srv/<app>
  let release: string; // releases/<id>, the unpacked artifact
  let app: string; // BASE_DIR
  let venv: string;
  let shared: string;
  let manifest: Manifest;
  let pg: PgCluster | undefined;

  const python = (): string => path.join(venv, "bin", "python");
  const inApp = (args: string[], opts: RunOptions = {}) => ok(python(), args, { cwd: app, env: DECOY_ENV, ...opts });
  // A manifest argv, run as the hosts do: "python" means the release venv's interpreter.
  const manifestCommand = (argv: string[]) => {
    assert.strictEqual(argv[0], "python");
    return inApp(argv.slice(1));
  };

  before(async () => {
    work = tmpDir("srv");
    const art = await packageSite(SITE_DIR, { out: path.join(work, "site.tar.gz"), note: () => undefined });
    release = path.join(work, "releases", RELEASE_ID);
    fs.mkdirSync(release, { recursive: true });
    await ok("tar", ["-xzf", art.file, "-C", release]);
    manifest = JSON.parse(fs.readFileSync(path.join(release, "manifest.json"), "utf8")) as Manifest;
    app = path.join(release, "app");
    venv = path.join(release, "venv");

    pg = await PgCluster.create();
    await pg.start();
    await pg.psql(`CREATE ROLE app LOGIN PASSWORD '${DB_PASSWORD}'`);
    await pg.psql("CREATE DATABASE app OWNER app");
    const databaseUrl =
      `postgres://app:${DB_PASSWORD}@127.0.0.1:${pg.port}/app` +
      "?sslmode=require&application_name=greenlight-site&connect_timeout=10";

    // The host layout: .env and media are shared, linked into each release.
    shared = path.join(work, "shared");
    fs.mkdirSync(path.join(shared, "media"), { recursive: true });
    fs.writeFileSync(
      path.join(shared, ".env"),
      envFile({
        SECRET_KEY,
        DATABASE_URL: databaseUrl,
        ALLOWED_HOSTS: `${PUBLIC_HOST},.example.org`,
        HTTPS: "off",
        ADMIN_PATH: "admin-x7",
        DB_HOST: "127.0.0.1",
        DB_PASSWORD,
      }),
      { mode: 0o600 },
    );
    fs.symlinkSync(path.join(shared, ".env"), path.join(app, ".env"));
    fs.symlinkSync(path.join(shared, "media"), path.join(app, "media"));
    fs.writeFileSync(path.join(app, "REVISION"), `${RELEASE_ID}\n`);
  });

  after(async () => {
    await pg?.destroy();
  });

  it("installs offline from the artifact's wheelhouse in hash-checking mode", async () => {
    await ok(SYSTEM_PYTHON, ["-m", "venv", venv]);
    await ok(path.join(venv, "bin", "pip"), ["install", ...PIP_OFFLINE, "-r", "requirements.lock"], { cwd: release });
    const gunicorn = await ok(path.join(venv, "bin", "gunicorn"), ["--version"]);
    assert.match(gunicorn.stdout + gunicorn.stderr, /gunicorn \(version 23\.\d+\.\d+\)/);
    const versions = await ok(python(), [
      "-c",
      "import django, psycopg, psycopg.pq; print(django.get_version(), psycopg.__version__, psycopg.pq.__impl__)",
    ]);
    // Django 5.2 LTS on psycopg 3 with its binary (libpq bundled) implementation, all from PyPI.
    assert.match(versions.stdout, /^5\.2\.\d+ 3\.\d+\.\d+ binary$/m);
    // From the venv, not from Debian's dist-packages.
    const where = await ok(python(), ["-c", "import django; print(django.__file__)"]);
    assert.ok(where.stdout.startsWith(venv), where.stdout);
  });

  it("makes pip refuse a tampered wheel and a lock missing a transitive dependency", async () => {
    const dir = tmpDir("tamper");
    fs.cpSync(path.join(release, "wheelhouse"), path.join(dir, "wheelhouse"), { recursive: true });
    const lock = fs.readFileSync(path.join(release, "requirements.lock"), "utf8");
    const pip = (lockFile: string) =>
      run(
        path.join(venv, "bin", "pip"),
        ["install", ...PIP_OFFLINE, "--dry-run", "--ignore-installed", "-r", lockFile],
        { cwd: dir },
      );

    fs.writeFileSync(path.join(dir, "full.lock"), lock);
    const clean = await pip("full.lock");
    assert.strictEqual(clean.code, 0, clean.stderr);

    fs.writeFileSync(path.join(dir, "partial.lock"), lock.replace(/^asgiref==.*\n/m, ""));
    const partial = await pip("partial.lock");
    assert.notStrictEqual(partial.code, 0);
    assert.match(partial.stderr, /must have their versions pinned|missing from some requirements/);

    const whl = fs.readdirSync(path.join(dir, "wheelhouse")).find((f) => f.startsWith("sqlparse-"))!;
    fs.appendFileSync(path.join(dir, "wheelhouse", whl), "tampered");
    const tampered = await pip("full.lock");
    assert.notStrictEqual(tampered.code, 0);
    assert.match(tampered.stderr, /DO NOT MATCH THE HASHES/);
  });

  describe("settings, read from .env only", () => {
    let probeDir: string;

    const probe = async (env: string | null, files: Record<string, string> = {}) => {
      fs.rmSync(probeDir, { recursive: true, force: true });
      fs.cpSync(app, probeDir, {
        recursive: true,
        dereference: false,
        filter: (src) => ![".env", "media", "REVISION", "static"].includes(path.relative(app, src)),
      });
      if (env !== null) fs.writeFileSync(path.join(probeDir, ".env"), env, { mode: 0o600 });
      for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(probeDir, name), text);
      return run(python(), ["-c", PROBE], { cwd: probeDir, env: DECOY_ENV });
    };

    before(() => {
      probeDir = path.join(tmpDir("probe"), "app");
    });

    it("with MEDIA_BUCKET, uploads go to the bucket (held to the hosts' role) and the site serves them", async () => {
      const aws = await startAwsStandIn({
        policies: {
          AKIASITEHOST: hostPolicy({
            partition: "aws",
            account: "123456789012",
            region: "eu-west-1",
            parameterPath: "/greenlight/qa/",
            kmsKeyArn: "arn:aws:kms:eu-west-1:123456789012:key/qa",
            artifactBucketArn: "arn:aws:s3:::qa-artifacts",
            backupBucketArn: "arn:aws:s3:::qa-backups",
            mediaBucketArn: "arn:aws:s3:::qa-media",
          }),
        },
      });
      try {
        aws.createBucket("qa-media", { versioned: true });
        const env = envFile({
          SECRET_KEY: "s",
          DATABASE_URL: "postgres://u:p@db.invalid/d",
          ALLOWED_HOSTS: PUBLIC_HOST,
          MEDIA_BUCKET: "qa-media",
          MEDIA_REGION: "eu-west-1",
          MEDIA_ENDPOINT_URL: aws.endpoint,
          MEDIA_ACCESS_KEY_ID: "AKIASITEHOST",
          MEDIA_SECRET_ACCESS_KEY: "not-a-secret",
        });
        const code = `
import json, os
os.environ["DJANGO_SETTINGS_MODULE"] = "greenlight_site.settings"
import django
django.setup()
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
c = Client(HTTP_HOST="${PUBLIC_HOST}")
up = [c.post("/api/uploads", {"file": SimpleUploadedFile("hello.txt", body)}) for body in (b"one", b"two")]
got = [c.get(u.json()["url"]) for u in up]
print(json.dumps(dict(
    up=[[u.status_code, u.json()] for u in up],
    got=[[g.status_code, b"".join(g.streaming_content).decode(), g["Content-Type"], g["Content-Security-Policy"]] for g in got],
    missing=c.get("/media/uploads/none.txt").status_code,
    empty=c.post("/api/uploads", {}).status_code,
)))
`;
        const r = await probe(env, { "media_probe.py": code });
        assert.strictEqual(r.code, 0, r.stderr);
        const run2 = await run(python(), ["media_probe.py"], { cwd: probeDir, env: DECOY_ENV });
        assert.strictEqual(run2.code, 0, run2.stderr);
        const out = JSON.parse(run2.stdout.trim().split("\n").at(-1)!);
        assert.deepStrictEqual(out.up, [
          [201, { name: "uploads/hello.txt", size: 3, url: "/media/uploads/hello.txt" }],
          [201, { name: out.up[1][1].name, size: 3, url: `/media/${out.up[1][1].name}` }],
        ]);
        assert.match(out.up[1][1].name, /^uploads\/hello_\w+\.txt$/, "an upload never overwrites another");
        assert.deepStrictEqual(out.got, [
          [200, "one", "text/plain", "sandbox"],
          [200, "two", "text/plain", "sandbox"],
        ]);
        assert.strictEqual(out.missing, 404);
        assert.strictEqual(out.empty, 400);
        assert.deepStrictEqual(aws.listKeys("qa-media"), ["uploads/hello.txt", out.up[1][1].name]);
        assert.ok(!fs.existsSync(path.join(probeDir, "media", "uploads")), "nothing on the host's disk");
        const denied = aws.requests().filter((q) => q.status === 403);
        assert.deepStrictEqual(denied, [], "every call the site makes is in the hosts' role");
      } finally {
        await aws.close();
      }
    });

    it("parses every key the way the hosts render them", async () => {
      const r = await probe(
        envFile({
          SECRET_KEY,
          DATABASE_URL: `postgres://app:${DB_PASSWORD}@db.internal:6543/site?sslmode=require&connect_timeout=5`,
          ALLOWED_HOSTS: "site.test, .example.org",
          HTTPS: "on",
          ADMIN_PATH: "adm-9q",
          HEALTH_PATH: "/_health",
          UNKNOWN_KEY: "ignored",
        }) + "   # indented comment\n",
        { REVISION: "rel-7\n" },
      );
      assert.strictEqual(r.code, 0, r.stderr);
      const s = JSON.parse(r.stdout);
      assert.strictEqual(s.secret, SECRET_KEY, "no quoting, no $ expansion, '=' kept");
      assert.strictEqual(s.debug, false);
      assert.deepStrictEqual(s.hosts, ["site.test", ".example.org"]);
      assert.strictEqual(s.admin, "/adm-9q/");
      assert.deepStrictEqual(s.db, {
        ENGINE: "django.db.backends.postgresql",
        NAME: "site",
        USER: "app",
        PASSWORD: DB_PASSWORD,
        HOST: "db.internal",
        PORT: "6543",
        OPTIONS: { sslmode: "require", connect_timeout: "5" },
      });
      assert.deepStrictEqual(s.secure, [true, true]);
      assert.deepStrictEqual(s.proxy, ["HTTP_X_FORWARDED_PROTO", "https"]);
      assert.deepStrictEqual(s.health, [200, "text/plain", "rel-7"]);
      assert.strictEqual(s.first_middleware, "greenlight_site.health.HealthCheckMiddleware");
      assert.strictEqual(s.media, path.join(probeDir, "media"));
      assert.strictEqual(s.static, path.join(probeDir, "staticfiles"));
    });

    it("defaults: no admin, /healthz, insecure cookies, release 'unknown'; DEBUG=on works", async () => {
      const r = await probe(envFile({ SECRET_KEY: "s", DATABASE_URL: "postgres://u:p@h/d", DEBUG: "on" }));
      assert.strictEqual(r.code, 0, r.stderr);
      const s = JSON.parse(r.stdout);
      assert.strictEqual(s.admin, null);
      assert.strictEqual(s.debug, true);
      assert.deepStrictEqual(s.hosts, []);
      assert.deepStrictEqual(s.secure, [false, false]);
      assert.deepStrictEqual(s.health, [200, "text/plain", "unknown"]);
      assert.deepStrictEqual(s.db.OPTIONS, {});
      assert.strictEqual(s.db.PORT, "");
    });

    it("refuses to start without SECRET_KEY or without the .env file, whatever the environment says", async () => {
      const noKey = await probe(envFile({ DATABASE_URL: `postgres://app:${DB_PASSWORD}@h/d` }));
      assert.notStrictEqual(noKey.code, 0);
      assert.match(noKey.stderr, /ImproperlyConfigured: SECRET_KEY is not set/);
      assert.ok(!noKey.stderr.includes(DB_PASSWORD), "no secret in the error");
      const noDb = await probe(envFile({ SECRET_KEY: "s" }));
      assert.match(noDb.stderr, /DATABASE_URL is not set/);
      const noFile = await probe(null);
      assert.match(noFile.stderr, /\.env is missing/);
      const badLine = await probe(`SECRET_KEY=s\n${DB_PASSWORD}\n`);
      assert.match(badLine.stderr, /\.env:2: expected KEY=VALUE/);
      assert.ok(!badLine.stderr.includes(DB_PASSWORD), "no secret in the error");
    });
  });

  it("passes Django's checks, has migrations matching its models, and collects static files", async () => {
    await inApp(["manage.py", "check"]);
    const mm = await inApp(["manage.py", "makemigrations", "--check", "--dry-run"]);
    assert.match(mm.stdout, /No changes detected/);
    await manifestCommand(manifest.collectstatic);
    const base = path.join(app, "staticfiles", "admin", "css", "base.css");
    assert.ok(fs.statSync(base).size > 0, "admin CSS collected");
    // Debian ships Django's jQuery as a symlink; the wheel must carry the file itself.
    assert.ok(fs.statSync(path.join(app, "staticfiles", "admin", "js", "vendor", "jquery", "jquery.js")).size > 0);
  });

  it("collects a root static/ named in STATICFILES_DIRS into staticfiles/, beside the apps' files", async () => {
    // The common startproject layout: project-wide assets in <BASE_DIR>/static.
    fs.mkdirSync(path.join(app, "static", "css"), { recursive: true });
    fs.writeFileSync(path.join(app, "static", "css", "site-wide.css"), "body { margin: 0 }\n");
    fs.writeFileSync(
      path.join(app, "greenlight_site", "settings_dirs.py"),
      'from .settings import *  # noqa: F403\n\nSTATICFILES_DIRS = [BASE_DIR / "static"]  # noqa: F405\n',
    );
    try {
      await inApp(["manage.py", "check", "--settings=greenlight_site.settings_dirs"]);
      await manifestCommand([...manifest.collectstatic, "--settings=greenlight_site.settings_dirs"]);
      const collected = path.join(app, "staticfiles");
      assert.strictEqual(fs.readFileSync(path.join(collected, "css", "site-wide.css"), "utf8"), "body { margin: 0 }\n");
      assert.ok(fs.statSync(path.join(collected, "admin", "css", "base.css")).size > 0);
      assert.deepStrictEqual(fs.readdirSync(path.join(app, "static")), ["css"], "the source static/ is left as it was");
    } finally {
      fs.rmSync(path.join(app, "static"), { recursive: true, force: true });
      fs.rmSync(path.join(app, "greenlight_site", "settings_dirs.py"));
    }
  });

  it("applies both migrations to PostgreSQL over TLS, with the URL's options passed to libpq", async () => {
    const migrate = await manifestCommand(manifest.migrate);
    assert.match(migrate.stdout, /Applying notes\.0001_initial\.\.\. OK/);
    assert.match(migrate.stdout, /Applying notes\.0002_note_attachment\.\.\. OK/);
    const shown = await inApp(["manage.py", "showmigrations", "notes"]);
    assert.match(shown.stdout, /\[X\] 0001_initial\n\s*\[X\] 0002_note_attachment/);
    const columns = await pg!.psql(
      "SELECT string_agg(column_name, ',' ORDER BY column_name) FROM information_schema.columns " +
        "WHERE table_name = 'notes_note'",
      "app",
    );
    assert.strictEqual(columns, "attachment,body,created_at,id,title");
    const conn = await inApp([
      "manage.py",
      "shell",
      "--verbosity",
      "0",
      "-c",
      "from django.db import connection as c\n" +
        "cur = c.cursor()\n" +
        "cur.execute(\"SELECT ssl, current_setting('application_name') FROM pg_stat_ssl WHERE pid = pg_backend_pid()\")\n" +
        "print(cur.fetchone())",
    ]);
    assert.strictEqual(conn.stdout.trim(), "(True, 'greenlight-site')");
  });

  describe("under gunicorn", () => {
    let server: Gunicorn | undefined;
    let socket: string;

    before(async () => {
      socket = path.join(tmpDir("sock"), "gunicorn.sock");
      server = new Gunicorn(venv, app, manifest.wsgi, socket);
      await server.ready();
    });

    after(async () => {
      await server?.stop();
    });

    it("answers the health path with the release id for any Host, without the database", async () => {
      const r = await request(socket, "GET", "/healthz", { Host: "10.0.3.17" });
      assert.strictEqual(r.status, 200);
      assert.strictEqual(r.headers["content-type"], "text/plain");
      assert.strictEqual(r.body.toString(), RELEASE_ID);
      const head = await request(socket, "HEAD", "/healthz", { Host: "10.0.3.17:8001" });
      assert.strictEqual(head.status, 200);
      assert.strictEqual(head.body.length, 0);
      // Only the health path skips host validation.
      const post = await request(socket, "POST", "/healthz", { Host: "10.0.3.17", "Content-Length": "0" });
      assert.strictEqual(post.status, 400);
    });

    it("rejects a Host outside ALLOWED_HOSTS, accepts a subdomain wildcard", async () => {
      const bad = await request(socket, "GET", "/api/notes", { Host: "10.0.3.17" });
      assert.strictEqual(bad.status, 400);
      const wild = await request(socket, "GET", "/api/notes", { Host: "www.example.org" });
      assert.strictEqual(wild.status, 200);
    });

    it("stores an upload under MEDIA_ROOT, which is the shared dir, and lists it", async () => {
      const content = Buffer.from(`attachment for ${RELEASE_ID}\n`);
      const form = multipart(
        { title: "first", body: "hello" },
        { field: "attachment", filename: "a.txt", data: content },
      );
      const created = await request(
        socket,
        "POST",
        "/api/notes",
        { Host: PUBLIC_HOST, "Content-Type": form.contentType, "Content-Length": String(form.body.length) },
        form.body,
      );
      assert.strictEqual(created.status, 201, created.body.toString());
      const note = JSON.parse(created.body.toString());
      assert.strictEqual(note.title, "first");
      assert.match(note.attachment, /^\/media\/notes\/a[^/]*\.txt$/);
      const stored = path.join(shared, "media", note.attachment.replace(/^\/media\//, ""));
      assert.deepStrictEqual(fs.readFileSync(stored), content, "the file lands in shared/media, outside the release");

      const list = await request(socket, "GET", "/api/notes", { Host: PUBLIC_HOST });
      assert.strictEqual(list.status, 200);
      assert.deepStrictEqual(JSON.parse(list.body.toString()), {
        release: RELEASE_ID,
        notes: [{ id: note.id, title: "first", attachment: note.attachment }],
      });

      // The write path's update, and a capped list (the newest N, oldest first).
      const edit = multipart({ title: "first, edited", body: "again" });
      const updated = await request(
        socket,
        "POST",
        `/api/notes/${note.id}`,
        { Host: PUBLIC_HOST, "Content-Type": edit.contentType, "Content-Length": String(edit.body.length) },
        edit.body,
      );
      assert.strictEqual(updated.status, 200, updated.body.toString());
      assert.strictEqual(JSON.parse(updated.body.toString()).title, "first, edited");
      const second = multipart({ title: "second" });
      const made = await request(
        socket,
        "POST",
        "/api/notes",
        { Host: PUBLIC_HOST, "Content-Type": second.contentType, "Content-Length": String(second.body.length) },
        second.body,
      );
      assert.strictEqual(made.status, 201, made.body.toString());
      const capped = await request(socket, "GET", "/api/notes?limit=1", { Host: PUBLIC_HOST });
      assert.deepStrictEqual(
        JSON.parse(capped.body.toString()).notes.map((n: { title: string }) => n.title),
        ["second"],
      );
      const all = await request(socket, "GET", "/api/notes", { Host: PUBLIC_HOST });
      assert.deepStrictEqual(
        JSON.parse(all.body.toString()).notes.map((n: { title: string }) => n.title),
        ["first, edited", "second"],
      );
      const missing = await request(
        socket,
        "POST",
        "/api/notes/999999",
        { Host: PUBLIC_HOST, "Content-Type": edit.contentType, "Content-Length": String(edit.body.length) },
        edit.body,
      );
      assert.strictEqual(missing.status, 404);

      const invalid = multipart({ body: "no title" });
      const rejected = await request(
        socket,
        "POST",
        "/api/notes",
        { Host: PUBLIC_HOST, "Content-Type": invalid.contentType, "Content-Length": String(invalid.body.length) },
        invalid.body,
      );
      assert.strictEqual(rejected.status, 400);
      assert.ok(JSON.parse(rejected.body.toString()).errors.title);
    });

    it("without MEDIA_BUCKET, POST /api/uploads stores a file in shared/media and the site serves its URL", async () => {
      const form = multipart({}, { field: "file", filename: "up load.txt", data: Buffer.from("uploaded\n") });
      const r = await request(
        socket,
        "POST",
        "/api/uploads",
        { Host: PUBLIC_HOST, "Content-Type": form.contentType, "Content-Length": String(form.body.length) },
        form.body,
      );
      assert.strictEqual(r.status, 201, r.body.toString());
      const up = JSON.parse(r.body.toString());
      // The name as given (Django's storage keeps the space), its URL quoted.
      assert.deepStrictEqual(up, { name: "uploads/up load.txt", size: 9, url: "/media/uploads/up%20load.txt" });
      assert.strictEqual(fs.readFileSync(path.join(shared, "media", "uploads", "up load.txt"), "utf8"), "uploaded\n");
      const served = await request(socket, "GET", up.url, { Host: PUBLIC_HOST });
      assert.strictEqual(served.status, 200);
      assert.strictEqual(served.body.toString(), "uploaded\n");
      assert.strictEqual(served.headers["content-security-policy"], "sandbox");
      const outside = await request(socket, "GET", "/media/..%2f.env", { Host: PUBLIC_HOST });
      assert.strictEqual(outside.status, 404);
    });

    it("serves a home page with the release id and the note count", async () => {
      const r = await request(socket, "GET", "/", { Host: PUBLIC_HOST });
      assert.strictEqual(r.status, 200);
      // The two notes the upload test left.
      assert.match(r.body.toString(), new RegExp(`Release <code>${RELEASE_ID}</code>, 2 notes`));
      const admin = await request(socket, "GET", "/admin-x7/login/", { Host: PUBLIC_HOST });
      assert.strictEqual(admin.status, 200);
      const noAdmin = await request(socket, "GET", "/admin/", { Host: PUBLIC_HOST });
      assert.strictEqual(noAdmin.status, 404);
    });
  });

  describe("background work: greenlight.json's worker and beat on Redis", () => {
    let server: Gunicorn | undefined;
    let socket: string;
    let redis: RigRedis | undefined;
    const children: ChildProcess[] = [];
    const form = (fields: Record<string, string>) => Buffer.from(new URLSearchParams(fields).toString());
    const post = (p: string, fields: Record<string, string> = {}) =>
      request(
        socket,
        "POST",
        p,
        { Host: PUBLIC_HOST, "Content-Type": "application/x-www-form-urlencoded" },
        form(fields),
      );
    const getJson = async (p: string) => {
      const r = await request(socket, "GET", p, { Host: PUBLIC_HOST });
      assert.strictEqual(r.status, 200, r.body.toString());
      return JSON.parse(r.body.toString());
    };
    /** A manifest's background argv, as the hosts' runner starts it: the venv's console script, from the app dir. */
    const background = (argv: string[], extra: string[] = []) => {
      const child = spawn(path.join(venv, "bin", argv[0]), [...argv.slice(1), ...extra], {
        cwd: app,
        env: DECOY_ENV,
        stdio: ["ignore", "pipe", "pipe"],
      });
      child.stdout?.resume();
      child.stderr?.resume();
      children.push(child);
      return child;
    };
    const exited = (c: ChildProcess) =>
      c.exitCode !== null || c.signalCode !== null
        ? Promise.resolve()
        : new Promise<void>((resolve) => c.once("exit", () => resolve()));

    after(async () => {
      for (const c of children) {
        c.kill("SIGKILL");
        await exited(c);
      }
      await server?.stop();
      await redis?.stop();
    });

    it("declares a worker and a beat in its manifest", () => {
      assert.deepStrictEqual(manifest.worker?.slice(0, 4), ["celery", "-A", "greenlight_site", "worker"]);
      assert.deepStrictEqual(manifest.beat?.slice(0, 4), ["celery", "-A", "greenlight_site", "beat"]);
    });

    it("without REDIS_URL (Redis off) the site runs and its task endpoints answer 503", async () => {
      socket = path.join(tmpDir("sock"), "gunicorn.sock");
      server = new Gunicorn(venv, app, manifest.wsgi, socket);
      await server.ready();
      assert.strictEqual((await post("/api/tasks")).status, 503);
      assert.strictEqual((await request(socket, "GET", "/api/beat", { Host: PUBLIC_HOST })).status, 503);
      await server.stop();
      server = undefined;
    });

    it("with REDIS_URL (TLS, a password): a POSTed task runs once on the worker; beat ticks every interval", async () => {
      redis = await startRedis({ listen: "127.0.0.1", port: await freePort(), password: DB_PASSWORD.repeat(4) });
      fs.appendFileSync(path.join(shared, ".env"), `REDIS_URL=${redis.url}\nBEAT_INTERVAL_SECONDS=1\n`);
      server = new Gunicorn(venv, app, manifest.wsgi, socket);
      await server.ready();
      const worker = background(manifest.worker!);
      background(manifest.beat!, [`--schedule=${path.join(tmpDir("beat"), "celerybeat-schedule")}`]);
      const r = await post("/api/tasks");
      assert.strictEqual(r.status, 202, r.body.toString());
      const id = JSON.parse(r.body.toString()).id as string;
      const done = await waitFor("the task to run", 60_000, async () => {
        const t = await getJson(`/api/tasks/${id}`);
        return t.runs >= 1 ? t : undefined;
      });
      assert.deepStrictEqual(
        [done.starts, done.runs, done.enqueuedBy, done.ranBy],
        [1, 1, RELEASE_ID, RELEASE_ID],
        JSON.stringify(done),
      );
      const ticks = await waitFor("three ticks", 60_000, async () => {
        const b = await getJson("/api/beat");
        return b.ticks.length >= 3 ? (b.ticks as { sent: number; release: string }[]) : undefined;
      });
      // In the order beat sent them: the worker's pool may run two ticks out of order.
      const sent = ticks.map((t) => t.sent).sort((a, b) => a - b);
      const gaps = sent.slice(1).map((t, i) => t - sent[i]);
      // About a second apart (the first send after a start may lag by the TLS handshake).
      assert.ok(Math.min(...gaps) >= 0.6, `a tick a second: ${JSON.stringify(gaps)}`);
      assert.ok(ticks.every((t) => t.release === RELEASE_ID));

      // TERM (what supervisor sends) is a warm shutdown: the running task finishes first.
      const long = JSON.parse((await post("/api/tasks", { seconds: "3" })).body.toString()).id as string;
      await waitFor("the long task to start", 30_000, async () =>
        (await getJson(`/api/tasks/${long}`)).starts === 1 ? true : undefined,
      );
      worker.kill("SIGTERM");
      await exited(worker);
      const l = await getJson(`/api/tasks/${long}`);
      assert.deepStrictEqual([l.starts, l.runs], [1, 1], "it ran to the end before the worker exited");
    });
  });
});
