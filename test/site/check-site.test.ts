// check-site: the site contract checked on the example, on a fresh `startproject` layout before
// and after the adaptation docs/site.md describes, and on the cookiecutter-django shape.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { checkSite, Finding } from "../../scripts/cli/lib/checkSite";
import { ROOT, run, SITE_DIR, tmpDir } from "./helpers";

const CLI = path.join(ROOT, "scripts", "cli", "check-site.ts");
const TS_NODE = path.join(ROOT, "node_modules", "ts-node", "register", "transpile-only");

function cli(args: string[]) {
  return run(process.execPath, ["-r", TS_NODE, CLI, ...args], {
    cwd: tmpDir("cwd"),
    env: { ...process.env, TS_NODE_PROJECT: path.join(ROOT, "tsconfig.json") },
  });
}

function write(dir: string, files: Record<string, string>): string {
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), text);
  }
  return dir;
}

const problems = (f: Finding[]) => f.filter((x) => x.level === "problem").map((x) => x.id);
const warnings = (f: Finding[]) => f.filter((x) => x.level === "warning").map((x) => x.id);

// What `django-admin startproject mysite .` writes with Django 5.2 (docstrings shortened).
const MANAGE = `#!/usr/bin/env python
import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
    from django.core.management import execute_from_command_line
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
`;
const WSGI = `import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

application = get_wsgi_application()
`;
const STARTPROJECT_SETTINGS = `from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# SECURITY WARNING: keep the secret key used in production secret!
SECRET_KEY = "django-insecure-0123456789"
DEBUG = True
ALLOWED_HOSTS = []

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
]

ROOT_URLCONF = "mysite.urls"
WSGI_APPLICATION = "mysite.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": BASE_DIR / "db.sqlite3",
    }
}

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
`;

function startproject(): string {
  return write(path.join(tmpDir("startproject"), "mysite"), {
    "manage.py": MANAGE,
    "mysite/__init__.py": "",
    "mysite/wsgi.py": WSGI,
    "mysite/urls.py": "urlpatterns = []\n",
    "mysite/settings.py": STARTPROJECT_SETTINGS,
    "static/css/site.css": "body {}\n",
  });
}

describe("check-site", () => {
  it("passes the example site, from the CLI, with exit 0", async () => {
    assert.deepStrictEqual(checkSite(SITE_DIR), []);
    const r = await cli([SITE_DIR]);
    assert.strictEqual(r.code, 0, r.stdout + r.stderr);
    assert.strictEqual(r.stdout, `check-site: ${SITE_DIR} meets the site contract\n`);
  });

  it("names each problem of a fresh startproject layout with its fix, and exits 1", async () => {
    const dir = startproject();
    const found = checkSite(dir);
    assert.deepStrictEqual(problems(found), [
      "greenlight-json",
      "requirements",
      "dotenv",
      "env-key",
      "env-key",
      "static-root",
      "health",
    ]);
    assert.deepStrictEqual(warnings(found), ["allowed-hosts", "proxy-ssl"]);
    const byId = (id: string) => found.find((f) => f.id === id)!;
    assert.strictEqual(byId("greenlight-json").fix, 'create it: { "wsgi": "mysite.wsgi:application" }');
    assert.strictEqual(byId("static-root").file, "mysite/settings.py");
    assert.match(byId("static-root").fix, /STATIC_ROOT = BASE_DIR \/ "staticfiles"/);
    assert.match(byId("health").fix, /health\.py .* first in MIDDLEWARE/);
    const r = await cli([dir]);
    assert.strictEqual(r.code, 1);
    assert.match(
      r.stdout,
      /^problem: mysite\/settings\.py: STATIC_ROOT is not set; collectstatic has nowhere to go\n {2}fix: /m,
    );
    assert.match(r.stdout, /^check-site: 7 problems, 2 warnings \(docs\/site\.md\)$/m);
  });

  it("passes that layout once adapted as docs/site.md says, its root static/ (STATICFILES_DIRS) kept", () => {
    const dir = startproject();
    for (const f of ["envfile.py", "health.py"]) {
      fs.copyFileSync(path.join(SITE_DIR, "greenlight_site", f), path.join(dir, "mysite", f));
    }
    const settings = STARTPROJECT_SETTINGS.replace(
      'SECRET_KEY = "django-insecure-0123456789"\nDEBUG = True\nALLOWED_HOSTS = []\n',
      [
        "from .envfile import database_from_url, flag, host_list, read_env",
        "",
        'ENV = read_env(BASE_DIR / ".env")',
        'SECRET_KEY = ENV["SECRET_KEY"]',
        'DEBUG = flag(ENV, "DEBUG")',
        'ALLOWED_HOSTS = host_list(ENV.get("ALLOWED_HOSTS"))',
        'DATABASES = {"default": database_from_url(ENV["DATABASE_URL"])}',
        'RELEASE_ID = (BASE_DIR / "REVISION").read_text().strip() if (BASE_DIR / "REVISION").exists() else "unknown"',
        'HEALTH_PATH = ENV.get("HEALTH_PATH") or "/healthz"',
        "",
      ].join("\n"),
    )
      .replace(/DATABASES = \{\n(.*\n){4}\}\n/, "")
      .replace("MIDDLEWARE = [\n", 'MIDDLEWARE = [\n    "mysite.health.HealthCheckMiddleware",\n')
      .concat(
        'STATIC_ROOT = BASE_DIR / "staticfiles"\nMEDIA_ROOT = BASE_DIR / "media"\n',
        'SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")\n',
      );
    write(dir, {
      "mysite/settings.py": settings,
      "greenlight.json": '{ "wsgi": "mysite.wsgi:application" }\n',
      "requirements.txt": fs.readFileSync(path.join(SITE_DIR, "requirements.txt"), "utf8"),
    });
    assert.deepStrictEqual(checkSite(dir), []);
    assert.ok(fs.existsSync(path.join(dir, "static", "css", "site.css")), "the root static/ is kept");
    // The earlier contract (STATIC_ROOT = BASE_DIR / "static") collides with that static/.
    const earlier = settings.replace('STATIC_ROOT = BASE_DIR / "staticfiles"', 'STATIC_ROOT = BASE_DIR / "static"');
    write(dir, { "mysite/settings.py": earlier });
    const collision = checkSite(dir);
    assert.deepStrictEqual(problems(collision), ["static-root"]);
    assert.match(
      collision[0].message,
      /is the root static\/ that STATICFILES_DIRS .* Django refuses the two being one/,
    );
    assert.match(collision[0].fix, /STATIC_ROOT = BASE_DIR \/ "staticfiles"/);
    // Without a root static/ it still works (the hosts link staticfiles to it): a warning.
    fs.rmSync(path.join(dir, "static"), { recursive: true });
    write(dir, { "mysite/settings.py": earlier.replace('STATICFILES_DIRS = [BASE_DIR / "static"]\n', "") });
    const old = checkSite(dir);
    assert.deepStrictEqual(problems(old), []);
    assert.deepStrictEqual(warnings(old), ["static-root"]);
  });

  it("catches the cookiecutter-django shape: manage.py's settings are not wsgi's, a uv lock, layered settings", () => {
    const dir = write(path.join(tmpDir("cookiecutter"), "acme"), {
      "manage.py": MANAGE.replace("mysite.settings", "config.settings.local"),
      "config/__init__.py": "",
      "config/wsgi.py": WSGI.replace("mysite.settings", "config.settings.production"),
      "config/settings/__init__.py": "",
      "config/settings/base.py":
        "import environ\nfrom pathlib import Path\nBASE_DIR = Path(__file__).resolve(strict=True).parent.parent.parent\n" +
        'env = environ.Env()\nif env.bool("DJANGO_READ_DOT_ENV_FILE", default=False):\n    env.read_env(str(BASE_DIR / ".env"))\n' +
        'DATABASES = {"default": env.db("DATABASE_URL")}\nSTATIC_ROOT = str(BASE_DIR / "staticfiles")\n' +
        'STATICFILES_DIRS = [str(BASE_DIR / "acme" / "static")]\nMIDDLEWARE = [\n    "django.middleware.security.SecurityMiddleware",\n]\n',
      "config/settings/production.py":
        'from .base import *  # noqa\nfrom .base import env\n\nSECRET_KEY = env("DJANGO_SECRET_KEY")\n' +
        'ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["example.com"])\n',
      "config/settings/local.py": 'from .base import *  # noqa\nSECRET_KEY = "local"\n',
      "pyproject.toml": '[project]\nname = "acme"\nrequires-python = "==3.13.*"\n',
      "uv.lock": "version = 1\n",
    });
    const found = checkSite(dir);
    assert.deepStrictEqual(problems(found), [
      "greenlight-json",
      "settings-mismatch",
      "requirements",
      "env-key",
      "health",
    ]);
    const byId = (id: string) => found.find((f) => f.id === id)!;
    assert.match(
      byId("settings-mismatch").message,
      /manage\.py defaults to config\.settings\.local but the site runs with config\.settings\.production/,
    );
    assert.match(byId("settings-mismatch").fix, /--settings=config\.settings\.production/);
    assert.match(byId("requirements").fix, /uv export --no-dev --no-emit-project --format requirements-txt/);
    assert.match(byId("env-key").message, /SECRET_KEY/, "DJANGO_SECRET_KEY is not the key the hosts write");
    assert.ok(!warnings(found).includes("static-root"), "its STATIC_ROOT (staticfiles) is the contract's");
  });

  it("warns when collectstatic goes to a bucket (cookiecutter-django with cloud_provider=AWS), not once the settings the hosts run override it", () => {
    const site = write(path.join(tmpDir("bucket-static"), "acme"), {
      "manage.py": MANAGE.replace("mysite.settings", "config.settings.production"),
      "greenlight.json": '{ "wsgi": "config.wsgi:application" }\n',
      "config/__init__.py": "",
      "config/wsgi.py": WSGI.replace("mysite.settings", "config.settings.production"),
      "config/settings/__init__.py": "",
      "config/settings/production.py":
        'STATIC_ROOT = "staticfiles"\nSTORAGES = {\n    "default": {\n        "BACKEND": "storages.backends.s3.S3Storage",\n' +
        '        "OPTIONS": {"location": "media"},\n    },\n    "staticfiles": {\n' +
        '        "BACKEND": "storages.backends.s3.S3Storage",\n        "OPTIONS": {"location": "static"},\n    },\n}\n',
    });
    const found = checkSite(site);
    const storage = found.find((f) => f.id === "static-storage");
    assert.ok(storage, JSON.stringify(found));
    assert.equal(storage.level, "warning");
    assert.equal(storage.file, path.join("config", "settings", "production.py"));
    assert.match(storage.message, /collectstatic stores the static files with storages\.backends\.s3\.S3Storage/);
    assert.match(storage.fix, /ManifestStaticFilesStorage.*cloud_provider=None/);
    // The greenlight settings module of docs/site.md, star-importing production, overrides it.
    write(site, {
      "config/wsgi.py": WSGI.replace("mysite.settings", "config.settings.greenlight"),
      "config/settings/greenlight.py":
        "from .production import *  # noqa\n" +
        'STORAGES = {"staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"}}\n',
    });
    assert.ok(!checkSite(site).some((f) => f.id === "static-storage"));
    // bakerydemo's way of saying it (whitenoise) is no bucket either.
    write(site, {
      "config/settings/greenlight.py":
        'from .production import *  # noqa\nSTORAGES["staticfiles"][\n    "BACKEND"\n] = "whitenoise.storage.CompressedManifestStaticFilesStorage"\n',
    });
    assert.ok(!checkSite(site).some((f) => f.id === "static-storage"));
  });

  it("names requirements the hosts cannot use: psycopg2, uwsgi, Django 6, no gunicorn, a worker without celery", () => {
    const dir = write(path.join(tmpDir("reqs"), "site"), {
      "manage.py": MANAGE,
      "mysite/__init__.py": "",
      "mysite/wsgi.py": WSGI,
      "mysite/settings.py": fs.readFileSync(path.join(SITE_DIR, "greenlight_site", "settings.py"), "utf8"),
      "mysite/health.py": "RELEASE_ID = None\n",
      "greenlight.json": JSON.stringify({
        wsgi: "mysite.wsgi:application",
        requirements: "requirements/production.txt",
        worker: ["celery", "-A", "mysite", "worker"],
      }),
      "requirements/base.txt": "Django==6.0.1\npsycopg2==2.9.10\npsycopg[c]==3.3.3\n",
      "requirements/production.txt": "-r base.txt\nuwsgi==2.0.28\n",
    });
    fs.writeFileSync(
      path.join(dir, "mysite", "settings.py"),
      fs
        .readFileSync(path.join(dir, "mysite", "settings.py"), "utf8")
        .replace("greenlight_site.health", "mysite.health"),
    );
    const found = checkSite(dir);
    assert.deepStrictEqual(problems(found), ["gunicorn", "worker", "psycopg2", "psycopg-c", "uwsgi", "django-python"]);
    assert.match(found.find((f) => f.id === "worker")!.fix, /add celery\[redis\] to requirements\/production.txt/);
    assert.deepStrictEqual(warnings(found), ["lock"]);
    const byId = (id: string) => found.find((f) => f.id === id)!;
    assert.match(byId("psycopg2").fix, /psycopg\[binary\]/);
    assert.match(byId("django-python").message, /Django 6\.0\.1 needs Python >= 3\.12; the hosts run Python 3\.11/);
    assert.strictEqual(byId("uwsgi").file, "requirements/production.txt");
  });

  it("accepts a .env read by the wsgi module and manage.py (django-dotenv, as Wagtail's bakerydemo does)", () => {
    const dir = startproject();
    const dotenv =
      'import dotenv\ndotenv.read_dotenv(os.path.join(os.path.dirname(os.path.dirname(__file__)), ".env"))\n';
    write(dir, { "mysite/wsgi.py": WSGI.replace("import os\n", `import os\n${dotenv}`) });
    assert.ok(
      problems(checkSite(dir)).includes("dotenv"),
      "the wsgi module alone is not enough: manage.py runs migrate",
    );
    write(dir, {
      "manage.py": MANAGE.replace("import sys\n", "import sys\n\nimport dotenv\n").replace(
        "def main():\n",
        "def main():\n    dotenv.read_dotenv()\n",
      ),
    });
    assert.ok(!problems(checkSite(dir)).includes("dotenv"));
  });

  it("reports a link that leads outside the site, and refuses bad arguments", async () => {
    const dir = path.join(tmpDir("ex"), "site");
    fs.cpSync(SITE_DIR, dir, { recursive: true });
    fs.symlinkSync("/etc", path.join(dir, "etc"));
    assert.deepStrictEqual(problems(checkSite(dir)), ["source"]);
    const r = await cli(["--bogus"]);
    assert.strictEqual(r.code, 2);
    assert.match(r.stderr, /^check-site: unknown option --bogus; usage: /);
    assert.match((await cli(["/nonexistent"])).stderr, /^check-site: site directory not found: \/nonexistent$/m);
  });
});
