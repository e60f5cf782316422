// A throwaway Django project for the migration check's tests: a venv with Django 5.2 and
// psycopg 3 from PyPI (wheels cached outside the repo, so later runs are offline), one app
// whose models a test rewrites, migrations made by Django's own `makemigrations`, applied
// with `migrate` against a local PostgreSQL, and scripts/remote/migration_check.py run as the
// hosts run it: the release's venv python, `--project DIR`, settings from the project's .env.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ok, run, RunResult, SYSTEM_PYTHON, tmpDir } from "../site/helpers";

export const ROOT = path.resolve(__dirname, "..", "..");
export const CHECK_SCRIPT = path.join(ROOT, "scripts", "remote", "migration_check.py");
export const WHEEL_CACHE = path.join(os.homedir(), ".cache", "greenlight", "wheels");
const REQUIREMENTS = ["Django>=5.2,<5.3", "psycopg[binary]>=3.2,<3.4"];
const PIP = ["-m", "pip", "--disable-pip-version-check", "--no-input"];

let venvPromise: Promise<string> | undefined;

/** One venv per mocha run; pip reaches PyPI only when the cache lacks a wheel. */
export function djangoVenv(): Promise<string> {
  venvPromise ??= (async () => {
    const venv = path.join(tmpDir("mig-venv"), "venv");
    await ok(SYSTEM_PYTHON, ["-m", "venv", venv], { timeoutMs: 120_000 });
    const python = path.join(venv, "bin", "python");
    fs.mkdirSync(WHEEL_CACHE, { recursive: true });
    const offline = [...PIP, "install", "--no-index", "--find-links", WHEEL_CACHE, ...REQUIREMENTS];
    if ((await run(python, offline, { timeoutMs: 300_000 })).code !== 0) {
      await ok(python, [...PIP, "download", "--only-binary=:all:", "-d", WHEEL_CACHE, ...REQUIREMENTS], {
        timeoutMs: 300_000,
      });
      await ok(python, offline, { timeoutMs: 300_000 });
    }
    return python;
  })();
  return venvPromise;
}

const MANAGE = `#!/usr/bin/env python
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
`;

// Settings from BASE_DIR/.env only, as on the hosts (the example site does the same).
const SETTINGS = `from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
ENV = dict(line.split("=", 1) for line in (BASE_DIR / ".env").read_text().splitlines() if "=" in line)
url = urlsplit(ENV["DATABASE_URL"])
SECRET_KEY = ENV["SECRET_KEY"]
INSTALLED_APPS = ["shop"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": url.path.lstrip("/"),
        "USER": unquote(url.username),
        "PASSWORD": unquote(url.password),
        "HOST": url.hostname,
        "PORT": str(url.port),
        "OPTIONS": dict(parse_qsl(url.query)),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
`;

export interface Finding {
  kind: string;
  reason: string;
  safe_way: string;
  statement?: string;
}
export interface OperationReport {
  index: number;
  operation: string;
  description: string;
  sql: string[];
  verdict: "safe" | "unsafe";
  findings: Finding[];
  notes?: string[];
}
export interface Report {
  release: string;
  django: string;
  serving: string;
  /** No serving release and an empty database: every finding became a note. */
  firstRelease?: boolean;
  pending: string[];
  verdict: "safe" | "unsafe";
  allowed: boolean;
  message?: string;
  plan: { migration: string; verdict: "safe" | "unsafe"; operations: OperationReport[] }[];
}
export interface CheckResult {
  code: number | null;
  stderr: string;
  report: Report;
}

export class DjangoProject {
  readonly dir: string;

  constructor(
    readonly python: string,
    readonly databaseUrl: string,
  ) {
    this.dir = tmpDir("mig-project");
    fs.mkdirSync(path.join(this.dir, "proj"));
    fs.mkdirSync(path.join(this.dir, "shop", "migrations"), { recursive: true });
    fs.writeFileSync(path.join(this.dir, "manage.py"), MANAGE);
    fs.writeFileSync(path.join(this.dir, "proj", "__init__.py"), "");
    fs.writeFileSync(path.join(this.dir, "proj", "settings.py"), SETTINGS);
    fs.writeFileSync(path.join(this.dir, "shop", "__init__.py"), "");
    fs.writeFileSync(path.join(this.dir, "shop", "migrations", "__init__.py"), "");
    fs.writeFileSync(path.join(this.dir, ".env"), `SECRET_KEY=test-only\nDATABASE_URL=${databaseUrl}\n`, {
      mode: 0o600,
    });
  }

  /** Another release of the same site on the same database: a copy of this one's app. */
  clone(): DjangoProject {
    const next = new DjangoProject(this.python, this.databaseUrl);
    fs.rmSync(path.join(next.dir, "shop"), { recursive: true });
    fs.cpSync(path.join(this.dir, "shop"), path.join(next.dir, "shop"), { recursive: true });
    return next;
  }

  /** The app's models.py body (after `from django.db import models`). */
  models(body: string): void {
    fs.writeFileSync(path.join(this.dir, "shop", "models.py"), `from django.db import models\n\n\n${body}`);
    // Python trusts a .pyc whose source has the same size and modification second: a rename of
    // the same length written within the second would be read as the old models.
    fs.rmSync(path.join(this.dir, "shop", "__pycache__"), { recursive: true, force: true });
  }

  private manage(args: string[], input?: string): Promise<RunResult> {
    return ok(this.python, ["manage.py", ...args], {
      cwd: this.dir,
      input,
      env: { ...cleanEnv(), PYTHONDONTWRITEBYTECODE: "1" },
      timeoutMs: 120_000,
    });
  }

  /**
   * makemigrations; `answers` go to its questions (e.g. "Was the field renamed?") one per line.
   * Returns the names of the migration files it wrote.
   */
  async makemigrations(answers?: string[]): Promise<string[]> {
    const before = new Set(this.migrationFiles());
    const args = answers ? ["makemigrations", "shop"] : ["makemigrations", "shop", "--noinput"];
    await this.manage(args, answers ? answers.map((a) => `${a}\n`).join("") : undefined);
    const made = this.migrationFiles().filter((f) => !before.has(f));
    assert.ok(made.length > 0, "makemigrations wrote no migration");
    return made.map((f) => f.replace(/\.py$/, ""));
  }

  /** A migration written by hand (what makemigrations cannot generate), after `after`. */
  migration(name: string, after: string, operations: string, opts: { atomic?: boolean; imports?: string } = {}): void {
    fs.writeFileSync(
      path.join(this.dir, "shop", "migrations", `${name}.py`),
      "from django.db import migrations, models\n" +
        (opts.imports ?? "") +
        "\n\nclass Migration(migrations.Migration):\n" +
        (opts.atomic === false ? "    atomic = False\n" : "") +
        `    dependencies = [("shop", "${after}")]\n` +
        `    operations = [\n        ${operations}\n    ]\n`,
    );
  }

  migrationFiles(): string[] {
    return fs
      .readdirSync(path.join(this.dir, "shop", "migrations"))
      .filter((f) => /^\d{4}_.*\.py$/.test(f))
      .sort();
  }

  async migrate(): Promise<void> {
    await this.manage(["migrate", "--noinput"]);
  }

  /** What `manage.py migrate --plan` lists, as app.name. */
  async migratePlan(): Promise<string[]> {
    const out = (await this.manage(["migrate", "--plan"])).stdout;
    return out
      .split("\n")
      .map((l) => /^\s*(\w+)\.(\w+)$/.exec(l))
      .filter((m): m is RegExpExecArray => !!m)
      .map((m) => `${m[1]}.${m[2]}`);
  }

  /**
   * scripts/remote/migration_check.py as the hosts run it, as a file or (stdin) sent through
   * `python -`; never throws on its exit code.
   */
  async check(extra: string[] = [], opts: { stdin?: boolean } = {}): Promise<CheckResult> {
    const args = opts.stdin ? ["-", "--project", this.dir, ...extra] : [CHECK_SCRIPT, "--project", this.dir, ...extra];
    const r = await run(this.python, args, {
      cwd: "/",
      env: cleanEnv(),
      timeoutMs: 120_000,
      input: opts.stdin ? fs.readFileSync(CHECK_SCRIPT, "utf8") : undefined,
    });
    let report: Report;
    try {
      report = JSON.parse(r.stdout) as Report;
    } catch {
      throw new Error(`migration_check.py printed no JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
    }
    return { code: r.code, stderr: r.stderr, report };
  }
}

/** No DJANGO_SETTINGS_MODULE or database settings from the test's own environment. */
function cleanEnv(): NodeJS.ProcessEnv {
  return { PATH: "/usr/bin:/bin", LANG: "C.UTF-8", HOME: os.tmpdir() };
}

/** The operations of one migration of a report, by migration name (without the app). */
export function operationsOf(report: Report, migration: string): OperationReport[] {
  const entry = report.plan.find((m) => m.migration === `shop.${migration}`);
  assert.ok(entry, `${migration} is not in the plan: ${report.pending.join(", ")}`);
  return entry.operations;
}
