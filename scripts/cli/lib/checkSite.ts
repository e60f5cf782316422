// `npm run check-site -- DIR`: the site contract (docs/site.md) checked before packaging, by
// reading the project's files: nothing of the site is imported or run, so it works on a laptop
// without the project's dependencies. Each finding names the file, what is wrong and the fix.
// "problem"s fail the check (the release would fail on the hosts, or lose data); "warning"s
// are advice.
import * as fs from "fs";
import * as path from "path";
import { ArtifactError, DEFAULT_MIGRATE, HOST_PYTHON, SiteConfig, parseSiteConfig } from "./artifact";
import { collectSource } from "./source";
import { isHashLocked, readRequirements, RequirementsTree } from "./wheels";

export interface Finding {
  level: "problem" | "warning";
  /** a stable id, for tests and for docs/site.md */
  id: string;
  /** the file concerned, relative to the site dir */
  file: string;
  message: string;
  fix: string;
}

const DOCS = "docs/site.md";

function read(file: string): string | undefined {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
}

/** Python source without comments and docstring-ish lines, so advice in comments never passes a check. */
function code(text: string): string {
  return text
    .split("\n")
    .map((l) => l.replace(/(^|\s)#.*$/, ""))
    .join("\n");
}

/** The file of a dotted module inside the site, if it is there. */
function moduleFile(siteDir: string, dotted: string): string | undefined {
  const base = path.join(siteDir, ...dotted.split("."));
  for (const f of [`${base}.py`, path.join(base, "__init__.py")]) if (fs.existsSync(f)) return f;
  return undefined;
}

/** DJANGO_SETTINGS_MODULE as a file sets its default (manage.py, wsgi.py). */
function settingsDefault(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const m = /DJANGO_SETTINGS_MODULE["']\s*,\s*["']([\w.]+)["']/.exec(text);
  return m?.[1];
}

/**
 * The settings module's code and what it star-imports from the project (`from .base import *`),
 * the way cookiecutter-django layers base.py under production.py.
 */
function settingsText(siteDir: string, dotted: string, seen = new Set<string>()): { files: string[]; text: string } {
  const file = moduleFile(siteDir, dotted);
  if (file === undefined || seen.has(file)) return { files: [], text: "" };
  seen.add(file);
  const text = code(read(file) ?? "");
  const files = [file];
  let all = text;
  const pkg = dotted.split(".").slice(0, path.basename(file) === "__init__.py" ? undefined : -1);
  for (const m of text.matchAll(/^from\s+(\.*)([\w.]*)\s+import\s+\*/gm)) {
    const dots = m[1].length;
    const target = dots === 0 ? m[2] : [...pkg.slice(0, pkg.length - (dots - 1)), ...(m[2] ? [m[2]] : [])].join(".");
    const sub = settingsText(siteDir, target, seen);
    files.push(...sub.files);
    all = sub.text + "\n" + all;
  }
  return { files, text: all };
}

/** The right-hand side of `NAME = ...` (the last assignment wins), up to the end of its line or list. */
function assignment(text: string, name: string): string | undefined {
  const re = new RegExp(`^${name}\\s*=\\s*(.*)$`, "gm");
  let last: RegExpExecArray | null = null;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) last = m;
  if (last === null) return undefined;
  let value = last[1];
  if (/^[[(]/.test(value.trim())) {
    // a list or tuple: up to its closing bracket
    const start = last.index + last[0].length - last[1].length;
    let depth = 0;
    for (let i = start; i < text.length; i++) {
      const ch = text[i];
      if (ch === "[" || ch === "(") depth++;
      if (ch === "]" || ch === ")") depth--;
      if (depth === 0) {
        value = text.slice(start, i + 1);
        break;
      }
    }
  }
  return value;
}

/**
 * The storage backend collectstatic uses, as the settings text leaves it (the last of
 * `STORAGES = {..."staticfiles": {"BACKEND": X}...}`, `STORAGES["staticfiles"]["BACKEND"] = X`
 * and the older `STATICFILES_STORAGE = X`), with the setting's name.
 */
function staticfilesBackend(text: string): { backend: string; name: string } | undefined {
  let best: { at: number; backend: string; name: string } | undefined;
  const consider = (re: RegExp, name: string) => {
    for (const m of text.matchAll(re)) if (!best || m.index >= best.at) best = { at: m.index, backend: m[1], name };
  };
  consider(
    /^STORAGES\s*=\s*\{(?:(?!^\S)[\s\S])*?["']staticfiles["']\s*:\s*\{[^}]*?["']BACKEND["']\s*:\s*["']([\w.]+)["']/gm,
    "STORAGES",
  );
  consider(/^STORAGES\[\s*["']staticfiles["']\s*\]\s*\[\s*["']BACKEND["']\s*\]\s*=\s*["']([\w.]+)["']/gm, "STORAGES");
  consider(/^STATICFILES_STORAGE\s*=\s*["']([\w.]+)["']/gm, "STATICFILES_STORAGE");
  return best ? { backend: best.backend, name: best.name } : undefined;
}

/** The file whose assignment of NAME wins: the settings module itself, else what it star-imports. */
function definedIn(files: string[], name: string): string | undefined {
  const re = new RegExp(`^${name}\\s*=`, "m");
  return files.find((f) => re.test(code(read(f) ?? "")));
}

function findFiles(dir: string, name: string, depth = 3): string[] {
  const out: string[] = [];
  const walk = (d: string, level: number): void => {
    let names: fs.Dirent[];
    try {
      names = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of names) {
      if (e.name.startsWith(".") || e.name === "node_modules" || e.name === "__pycache__") continue;
      const p = path.join(d, e.name);
      if (e.isFile() && e.name === name) out.push(p);
      else if (e.isDirectory() && level < depth && !fs.existsSync(path.join(p, "pyvenv.cfg"))) walk(p, level + 1);
    }
  };
  walk(dir, 0);
  return out.sort();
}

function requirementVersion(tree: RequirementsTree, name: string): string | undefined {
  const r = tree.requirements.find((x) => x.name === name);
  if (!r) return undefined;
  const m = /==\s*([\w.]+)/.exec(r.line);
  return m?.[1] ?? "";
}

export function checkSite(dir: string): Finding[] {
  const siteDir = path.resolve(dir);
  if (!fs.existsSync(siteDir) || !fs.statSync(siteDir).isDirectory()) {
    throw new ArtifactError(`site directory not found: ${siteDir}`);
  }
  const findings: Finding[] = [];
  const rel = (f: string): string => path.relative(siteDir, f) || ".";
  const problem = (id: string, file: string, message: string, fix: string) =>
    findings.push({ level: "problem", id, file, message, fix });
  const warning = (id: string, file: string, message: string, fix: string) =>
    findings.push({ level: "warning", id, file, message, fix });

  // --- greenlight.json
  const wsgiFiles = findFiles(siteDir, "wsgi.py").map(rel);
  const guess = wsgiFiles[0]?.replace(/\.py$/, "").split(path.sep).join(".");
  const guessText = guess ? `{ "wsgi": "${guess}:application" }` : '{ "wsgi": "<project>.wsgi:application" }';
  let config: SiteConfig | undefined;
  const gjText = read(path.join(siteDir, "greenlight.json"));
  if (gjText === undefined) {
    problem("greenlight-json", "greenlight.json", "there is no greenlight.json", `create it: ${guessText}`);
  } else {
    try {
      config = parseSiteConfig(gjText);
    } catch (e) {
      problem("greenlight-json", "greenlight.json", (e as Error).message, `make it valid, e.g. ${guessText}`);
    }
  }

  // --- the WSGI module and the settings it runs with
  let wsgiSettings: string | undefined;
  if (!config && guess) wsgiSettings = settingsDefault(read(path.join(siteDir, ...guess.split(".")) + ".py"));
  if (config) {
    const module = config.wsgi.split(":")[0];
    const file = moduleFile(siteDir, module);
    if (file === undefined) {
      problem(
        "wsgi-module",
        "greenlight.json",
        `"wsgi" names ${module}, which is not a module in the site dir (gunicorn imports it from there)`,
        guess ? `set "wsgi": "${guess}:application"` : "point it at your project's wsgi.py",
      );
    } else {
      wsgiSettings = settingsDefault(read(file));
      const callable = config.wsgi.split(":")[1];
      if (!new RegExp(`^${callable}\\s*=|^def ${callable}\\b`, "m").test(read(file) ?? "")) {
        problem(
          "wsgi-callable",
          rel(file),
          `${rel(file)} defines no "${callable}"`,
          `use the name it defines (Django's is "application")`,
        );
      }
    }
  }

  // --- manage.py and the commands the hosts run
  const manage = read(path.join(siteDir, "manage.py"));
  const usesManage = (argv: string[] | undefined) => argv !== undefined && argv.includes("manage.py");
  if (manage === undefined && (!config || usesManage(config.migrate) || usesManage(config.collectstatic))) {
    problem(
      "manage-py",
      ".",
      "there is no manage.py in the site dir; the hosts run `python manage.py migrate` and `collectstatic` from it",
      'package the directory that holds manage.py, or set "migrate" and "collectstatic" in greenlight.json',
    );
  }
  const manageSettings = settingsDefault(manage);
  const settingsModule = wsgiSettings ?? manageSettings;
  if (manageSettings && wsgiSettings && manageSettings !== wsgiSettings) {
    const passes = (argv: string[]) => argv.some((a) => a.startsWith("--settings"));
    if (!config || !passes(config.migrate) || !passes(config.collectstatic)) {
      const argv = JSON.stringify([...DEFAULT_MIGRATE, `--settings=${wsgiSettings}`]);
      problem(
        "settings-mismatch",
        "manage.py",
        `manage.py defaults to ${manageSettings} but the site runs with ${wsgiSettings} (wsgi); migrate and ` +
          "collectstatic would run with the wrong settings (and their development-only apps)",
        `in greenlight.json set "migrate": ${argv} and "collectstatic" likewise with --settings=${wsgiSettings}`,
      );
    }
  }

  // --- requirements
  const reqName = config?.requirements ?? "requirements.txt";
  const reqFile = path.join(siteDir, reqName);
  let tree: RequirementsTree | undefined;
  if (!fs.existsSync(reqFile)) {
    const candidates = ["requirements/production.txt", "requirements/prod.txt", "requirements/base.txt"].filter((c) =>
      fs.existsSync(path.join(siteDir, c)),
    );
    problem(
      "requirements",
      reqName,
      `${reqName} not found`,
      fs.existsSync(path.join(siteDir, "uv.lock"))
        ? `export the uv lock for the hosts: uv export --no-dev --no-emit-project --format requirements-txt -o ${reqName} ` +
            `(pyproject.toml's requires-python must admit ${HOST_PYTHON}); see ${DOCS}#requirements`
        : candidates.length
          ? `lock ${candidates[0]} (see ${DOCS}#requirements) and set "requirements" in greenlight.json`
          : `write one (pinned, with hashes), see ${DOCS}#requirements`,
    );
  } else {
    try {
      tree = readRequirements(reqFile);
    } catch (e) {
      problem("requirements", reqName, (e as Error).message, "fix the -r / -c include it names");
    }
  }
  if (tree) {
    if (!tree.requirements.some((r) => r.name === "gunicorn")) {
      problem(
        "gunicorn",
        reqName,
        "gunicorn is not among the requirements; the hosts run the site with it",
        `add gunicorn==23.0.0 to ${reqName}`,
      );
    }
    // A declared worker or beat whose console script the release's venv would not have.
    for (const key of ["worker", "beat"] as const) {
      const program = config?.[key]?.[0];
      if (program && program !== "python" && !tree.requirements.some((r) => r.name === program.toLowerCase())) {
        problem(
          key,
          reqName,
          `greenlight.json's "${key}" runs ${program}, which is not among the requirements; the hosts run it from the release's venv`,
          `add ${program === "celery" ? "celery[redis]" : program} to ${reqName}`,
        );
      }
    }
    if (tree.requirements.some((r) => r.name === "psycopg2")) {
      problem(
        "psycopg2",
        reqName,
        "psycopg2 has no wheel on PyPI for the hosts (source only), so it cannot be packaged",
        "use psycopg[binary] (psycopg 3, supported by Django >= 4.2) or psycopg2-binary",
      );
    }
    const cDriver = tree.requirements.find((r) => r.name === "psycopg-c" || /^psycopg\s*\[[^\]]*\bc\b/.test(r.line));
    if (cDriver) {
      problem(
        "psycopg-c",
        reqName,
        `${cDriver.line.split(/\s+--/)[0]}: psycopg's C implementation has no wheel on PyPI (it is built on install)`,
        "use psycopg[binary] (the same C speed-up, prebuilt, with libpq bundled)",
      );
    }
    if (tree.requirements.some((r) => r.name === "uwsgi")) {
      problem(
        "uwsgi",
        reqName,
        "uwsgi has no wheel on PyPI (source only), and the hosts run gunicorn",
        "remove uwsgi from the requirements greenlight packages (keep it in a file of its own if another deploy needs it)",
      );
    }
    if (
      !tree.requirements.some(
        (r) => r.name && ["psycopg", "psycopg-binary", "psycopg2-binary", "psycopg2"].includes(r.name),
      )
    ) {
      problem("postgres-driver", reqName, "no PostgreSQL driver among the requirements", "add psycopg[binary]");
    }
    const django = requirementVersion(tree, "django");
    if (django && /^([6-9]|\d{2,})\./.test(django)) {
      problem(
        "django-python",
        reqName,
        `Django ${django} needs Python >= 3.12; the hosts run Python ${HOST_PYTHON} (Debian 12)`,
        "pin Django 5.2 (LTS, the newest for Python 3.11)",
      );
    }
    const unpinned = tree.requirements.filter((r) => !r.pinned || r.hashes.length === 0);
    if (!isHashLocked(tree)) {
      warning(
        "lock",
        reqName,
        `${reqName} is not hash-locked (${unpinned.length} of ${tree.requirements.length} requirements without ` +
          "== and --hash): each package-site resolves afresh and nothing pins what the hosts get",
        `generate it with hashes: uv pip compile --generate-hashes --python-version ${HOST_PYTHON} ` +
          `--python-platform x86_64-manylinux_2_17 requirements.in -o ${reqName}`,
      );
    }
  }

  // --- settings
  if (settingsModule === undefined) {
    problem(
      "settings-module",
      "manage.py",
      "cannot tell the settings module: neither manage.py nor the wsgi module sets DJANGO_SETTINGS_MODULE",
      'add os.environ.setdefault("DJANGO_SETTINGS_MODULE", "<project>.settings") to the wsgi module',
    );
  } else {
    const s = settingsText(siteDir, settingsModule);
    if (s.files.length === 0) {
      problem(
        "settings-module",
        "manage.py",
        `the settings module ${settingsModule} is not in the site dir`,
        "package the directory that holds your project package",
      );
    } else {
      const where = rel(s.files[0]);
      const whereOf = (name: string): string => {
        const f = definedIn(s.files, name);
        return f ? rel(f) : where;
      };
      const t = s.text;
      // The .env may also be read before the settings load: by the wsgi module (which serves) and
      // by manage.py (which runs migrate and collectstatic), as django-dotenv projects do.
      const readsEnv = (text: string | undefined) =>
        /\.env\b|read_env|read_dotenv|load_dotenv|dotenv_values/.test(code(text ?? ""));
      const wsgiModule = config ? config.wsgi.split(":")[0] : guess;
      const wsgiText = wsgiModule ? read(moduleFile(siteDir, wsgiModule) ?? "") : undefined;
      if (!readsEnv(t) && !(readsEnv(wsgiText) && readsEnv(manage))) {
        problem(
          "dotenv",
          where,
          "the settings never read the release's .env (the hosts pass every setting and secret there, not in " +
            "the process environment)",
          'read BASE_DIR / ".env" first thing, e.g. with django-environ: environ.Env.read_env(BASE_DIR / ".env") ' +
            `(or the example's envfile.py); see ${DOCS}#settings-from-env`,
        );
      }
      for (const [key, hint] of [
        ["SECRET_KEY", 'SECRET_KEY = env("SECRET_KEY")'],
        ["DATABASE_URL", 'DATABASES = {"default": env.db("DATABASE_URL")}'],
      ] as const) {
        if (!t.includes(`"${key}"`) && !t.includes(`'${key}'`)) {
          problem("env-key", where, `the settings never read ${key} from .env`, `${hint}; see ${DOCS}#the-env-keys`);
        }
      }
      if (!/["']ALLOWED_HOSTS["']/.test(t)) {
        warning(
          "allowed-hosts",
          where,
          "ALLOWED_HOSTS is not read from .env: the hosts set it to the site's domain (or the load balancer's name)",
          'ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")',
        );
      }
      // collectstatic goes to <release>/staticfiles, which nginx serves as /static/; a root
      // static/ is the site's own source (STATICFILES_DIRS), shipped like any other file.
      const staticRoot = assignment(t, "STATIC_ROOT");
      const dirs = assignment(t, "STATICFILES_DIRS");
      const rootStatic =
        fs.existsSync(path.join(siteDir, "static")) ||
        (dirs !== undefined && /BASE_DIR\s*\/\s*["']static["']|BASE_DIR,\s*["']static["']/.test(dirs));
      const STATIC_FIX = 'STATIC_ROOT = BASE_DIR / "staticfiles" (BASE_DIR: the directory of manage.py)';
      if (staticRoot === undefined) {
        problem(
          "static-root",
          whereOf("STATIC_ROOT"),
          "STATIC_ROOT is not set; collectstatic has nowhere to go",
          STATIC_FIX,
        );
      } else if (/["']staticfiles["']\s*\)?\s*$/.test(staticRoot.trim())) {
        // the contract
      } else if (/["']static["']\s*\)?\s*$/.test(staticRoot.trim()) && rootStatic) {
        problem(
          "static-root",
          whereOf("STATIC_ROOT"),
          `STATIC_ROOT = ${staticRoot.trim()} is the root static/ that STATICFILES_DIRS (or the shipped static/ ` +
            "directory) holds as source: Django refuses the two being one, and the hosts collect into <release>/staticfiles",
          STATIC_FIX,
        );
      } else if (/["']static["']\s*\)?\s*$/.test(staticRoot.trim())) {
        warning(
          "static-root",
          whereOf("STATIC_ROOT"),
          `STATIC_ROOT = ${staticRoot.trim()}: the earlier contract, still served (through a link), but a root static/ ` +
            "would collide with it",
          STATIC_FIX,
        );
      } else {
        problem(
          "static-root",
          whereOf("STATIC_ROOT"),
          `STATIC_ROOT = ${staticRoot.trim()}: the hosts serve /static/ from <release>/staticfiles (and only the app ` +
            "may write there)",
          STATIC_FIX,
        );
      }
      const mediaRoot = assignment(t, "MEDIA_ROOT");
      if (mediaRoot !== undefined && !/["']media["']\s*\)?\s*$/.test(mediaRoot.trim())) {
        warning(
          "media-root",
          whereOf("MEDIA_ROOT"),
          `MEDIA_ROOT = ${mediaRoot.trim()}: on the hosts only <release>/media (a link to shared/media) outlives a release`,
          'MEDIA_ROOT = BASE_DIR / "media", or keep uploads in S3 (django-storages)',
        );
      }
      const middleware = assignment(t, "MIDDLEWARE");
      const first = middleware ? /["']([\w.]+)["']/.exec(middleware)?.[1] : undefined;
      if (first === undefined || !/health/i.test(first)) {
        problem(
          "health",
          whereOf("MIDDLEWARE"),
          `the first MIDDLEWARE is ${first ?? "(none)"}, not a health check: the load balancer and the release ` +
            "gate ask the health path with the host's IP as Host (ALLOWED_HOSTS refuses it) and expect the release id",
          "copy examples/site/greenlight_site/health.py into your project and put it first in MIDDLEWARE, with " +
            `RELEASE_ID (read from BASE_DIR / "REVISION") and HEALTH_PATH in the settings; see ${DOCS}#health`,
        );
      } else {
        const healthFile = moduleFile(siteDir, first.split(".").slice(0, -1).join("."));
        const healthText = healthFile ? (read(healthFile) ?? "") : "";
        if (healthFile && !/RELEASE_ID|REVISION/.test(healthText + t)) {
          problem(
            "health",
            rel(healthFile),
            "the health middleware does not answer the release id (from REVISION)",
            `answer settings.RELEASE_ID, read once from BASE_DIR / "REVISION"; see ${DOCS}#health`,
          );
        }
      }
      const storage = staticfilesBackend(t);
      if (storage && /^storages\.backends\./.test(storage.backend)) {
        warning(
          "static-storage",
          whereOf(storage.name),
          `collectstatic stores the static files with ${storage.backend} (a bucket, which needs its keys at import), ` +
            "but the hosts serve /static/ from <release>/staticfiles",
          'in the settings the hosts run, STORAGES["staticfiles"] = {"BACKEND": ' +
            '"django.contrib.staticfiles.storage.ManifestStaticFilesStorage"} (or whitenoise\'s); cookiecutter-django: ' +
            `generate it with cloud_provider=None; see ${DOCS}#adapting-a-cookiecutter-django-layout`,
        );
      }
      if (!/SECURE_PROXY_SSL_HEADER/.test(t)) {
        warning(
          "proxy-ssl",
          where,
          "SECURE_PROXY_SSL_HEADER is not set: behind the load balancer Django cannot tell HTTPS requests",
          'SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")',
        );
      }
    }
  }

  // --- the source: links that cannot be packaged
  try {
    collectSource(siteDir);
  } catch (e) {
    problem("source", ".", (e as Error).message, "see the message");
  }
  return findings;
}

export function formatFindings(findings: Finding[]): string {
  return findings.map((f) => `${f.level}: ${f.file}: ${f.message}\n  fix: ${f.fix}\n`).join("");
}
