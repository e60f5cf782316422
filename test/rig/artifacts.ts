// Release artifacts of the example site for the host tests, the rehearsal and the
// benchmarks: the site as it is, and variants that add a migration, break a migration,
// break the app's start, or lose a wheel. Built with the real `npm run package-site` code,
// wheels from PyPI (cached in ~/.cache/greenlight/wheels by the lock's hash, so a machine
// downloads them once).
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { packageSite } from "../../scripts/cli/lib/packageSite";
import { sha256File } from "../../scripts/cli/lib/upload";
import { ROOT } from "./stackConfig";

export const SITE_DIR = path.join(ROOT, "examples", "site");

export type Variant =
  | "base"
  /**
   * Adds notes.0003_note_pinned (a NOT NULL field with a database default, db_default=False):
   * a release with a new migration that is safe while the previous release serves.
   */
  | "pinned"
  /**
   * "pinned" plus notes.0004_note_priority, a field with default=0: Django adds the column
   * DEFAULT 0 NOT NULL and drops the default again, so every INSERT of the serving release
   * would fail. The migration check refuses it before the backup.
   */
  | "unsafe-migration"
  /** "pinned" plus a migration that raises: the migrate step fails. */
  | "bad-migration"
  /** "pinned" plus a migration that never ends: the migrate step must be stopped at its limit. */
  | "hung-migration"
  /** "pinned" plus a working 0004 migration: the fix of "bad-migration". */
  | "fixed-migration"
  /** The WSGI module raises on import: the slot never becomes healthy. */
  | "broken-app"
  /** A new lock (so a new venv is built) whose wheelhouse lacks a wheel: the venv build fails. */
  | "missing-wheel"
  /** The same new lock with every wheel: a cold venv build that succeeds. */
  | "new-lock"
  /**
   * "fixed-migration" plus notes.0005_note_rank, a NOT NULL column without a database default
   * (Django's default=0 alone): the serving release's INSERTs fail once it is applied. A release
   * that breaks compatibility on purpose, to go out under maintenance mode.
   */
  | "unsafe-column"
  /** The base site with an extra static file: same lock (warm venv), different artifact. */
  | "restyled"
  /**
   * The base site whose manifest says it was built for Python 3.12 (manifest.json still first in
   * the archive): what fetch must refuse before it unpacks anything.
   */
  | "other-python";

export interface Artifact {
  file: string;
  sha256: string;
  size: number;
  lockHash: string;
}

const PINNED_MIGRATION = `from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("notes", "0002_note_attachment")]

    operations = [
        migrations.AddField(model_name="note", name="pinned", field=models.BooleanField(db_default=False)),
    ]
`;

const UNSAFE_MIGRATION = `from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("notes", "0003_note_pinned")]

    operations = [
        migrations.AddField(model_name="note", name="priority", field=models.IntegerField(default=0)),
    ]
`;

const UNSAFE_COLUMN_MIGRATION = `from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("notes", "0004_untitled_notes")]

    operations = [
        migrations.AddField(model_name="note", name="rank", field=models.IntegerField(default=0)),
    ]
`;

const BAD_MIGRATION = `import sys

from django.db import migrations


def fail(apps, schema_editor):
    # What app code may print when it fails: here the database password. It must stay in the
    # log on the host, never reach pulumi's error message.
    from django.conf import settings
    print("app-output-marker", settings.DATABASES["default"]["PASSWORD"], file=sys.stderr)
    raise RuntimeError("greenlight test: this migration always fails")


class Migration(migrations.Migration):
    dependencies = [("notes", "0003_note_pinned")]

    operations = [migrations.RunPython(fail, migrations.RunPython.noop)]
`;

const HUNG_MIGRATION = `import time

from django.db import migrations


def hang(apps, schema_editor):
    time.sleep(3600)


class Migration(migrations.Migration):
    dependencies = [("notes", "0003_note_pinned")]

    operations = [migrations.RunPython(hang, migrations.RunPython.noop)]
`;

const FIXED_MIGRATION = `from django.db import migrations


def mark(apps, schema_editor):
    apps.get_model("notes", "Note").objects.filter(title="").update(title="untitled")


class Migration(migrations.Migration):
    dependencies = [("notes", "0003_note_pinned")]

    operations = [migrations.RunPython(mark, migrations.RunPython.noop)]
`;

function mutate(dir: string, variant: Variant): void {
  const models = path.join(dir, "notes", "models.py");
  const migrations = path.join(dir, "notes", "migrations");
  if (
    ["pinned", "unsafe-migration", "bad-migration", "hung-migration", "fixed-migration", "unsafe-column"].includes(
      variant,
    )
  ) {
    const text = fs.readFileSync(models, "utf8");
    const anchor = /(\n {4}attachment = [^\n]*\n)/;
    if (!anchor.test(text)) throw new Error("examples/site/notes/models.py changed: cannot add the pinned field");
    const fields =
      variant === "unsafe-migration"
        ? "pinned = models.BooleanField(db_default=False)\n    priority = models.IntegerField(default=0)"
        : "pinned = models.BooleanField(db_default=False)";
    fs.writeFileSync(models, text.replace(anchor, `$1    ${fields}\n`));
    fs.writeFileSync(path.join(migrations, "0003_note_pinned.py"), PINNED_MIGRATION);
  }
  switch (variant) {
    case "pinned":
      break;
    case "unsafe-migration":
      fs.writeFileSync(path.join(migrations, "0004_note_priority.py"), UNSAFE_MIGRATION);
      break;
    case "bad-migration":
      fs.writeFileSync(path.join(migrations, "0004_always_fails.py"), BAD_MIGRATION);
      break;
    case "hung-migration":
      fs.writeFileSync(path.join(migrations, "0004_never_ends.py"), HUNG_MIGRATION);
      break;
    case "fixed-migration":
      fs.writeFileSync(path.join(migrations, "0004_untitled_notes.py"), FIXED_MIGRATION);
      break;
    case "unsafe-column":
      fs.writeFileSync(path.join(migrations, "0004_untitled_notes.py"), FIXED_MIGRATION);
      fs.writeFileSync(path.join(migrations, "0005_note_rank.py"), UNSAFE_COLUMN_MIGRATION);
      fs.writeFileSync(
        models,
        fs
          .readFileSync(models, "utf8")
          .replace(/(\n {4}pinned = [^\n]*\n)/, "$1    rank = models.IntegerField(default=0)\n"),
      );
      break;
    case "broken-app":
      fs.appendFileSync(
        path.join(dir, "greenlight_site", "wsgi.py"),
        '\nraise RuntimeError("greenlight test: broken release")\n',
      );
      break;
    case "restyled":
      fs.mkdirSync(path.join(dir, "notes", "static", "notes"), { recursive: true });
      fs.writeFileSync(path.join(dir, "notes", "static", "notes", "site.css"), "body { color: #135; }\n");
      break;
    default:
      break;
  }
}

const built = new Map<string, Promise<Artifact>>();

/** The artifact of a site variant (cached per process). */
export function siteArtifact(variant: Variant, outDir: string): Promise<Artifact> {
  // Per directory too: a rehearsal removes its directory when it stops, and the next one of the
  // same process (the bench runs qa, then prod) needs its own copy.
  const key = `${variant}\0${outDir}`;
  if (!built.has(key)) built.set(key, build(variant, outDir));
  return built.get(key)!;
}

async function build(variant: Variant, outDir: string): Promise<Artifact> {
  fs.mkdirSync(outDir, { recursive: true });
  const work = fs.mkdtempSync(path.join(os.tmpdir(), `gl-site-${variant}-`));
  try {
    const site = path.join(work, "site");
    fs.cpSync(SITE_DIR, site, { recursive: true, filter: (src) => !src.includes("__pycache__") });
    mutate(site, variant);
    const out = path.join(outDir, `site-${variant}.tar.gz`);
    const r = await packageSite(site, { out, cwd: work, note: () => undefined });
    if (variant === "other-python") {
      const unpacked = path.join(work, "unpacked");
      fs.mkdirSync(unpacked);
      execFileSync("tar", ["-xzf", out, "-C", unpacked]);
      const manifestFile = path.join(unpacked, "manifest.json");
      const manifest = JSON.parse(fs.readFileSync(manifestFile, "utf8")) as Record<string, unknown>;
      fs.writeFileSync(manifestFile, JSON.stringify({ ...manifest, python: "3.12" }, null, 2) + "\n");
      execFileSync("tar", ["-czf", out, "-C", unpacked, "manifest.json", "requirements.lock", "wheelhouse", "app"]);
      return { file: out, sha256: await sha256File(out), size: fs.statSync(out).size, lockHash: r.lockHash };
    }
    if (variant !== "missing-wheel" && variant !== "new-lock") return { ...r, file: out };
    // A different lock (so hosts build a new venv); for missing-wheel, without one of its wheels.
    const unpacked = path.join(work, "unpacked");
    fs.mkdirSync(unpacked);
    execFileSync("tar", ["-xzf", out, "-C", unpacked]);
    const lockFile = path.join(unpacked, "requirements.lock");
    fs.appendFileSync(lockFile, "# greenlight test: a lock of its own\n");
    const lockHash = await sha256File(lockFile);
    const manifestFile = path.join(unpacked, "manifest.json");
    fs.writeFileSync(manifestFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(manifestFile, "utf8")), lockHash }));
    if (variant === "missing-wheel") {
      const victim = fs.readdirSync(path.join(unpacked, "wheelhouse")).find((f) => f.startsWith("sqlparse"));
      if (!victim) throw new Error("no sqlparse wheel to remove");
      fs.rmSync(path.join(unpacked, "wheelhouse", victim));
    }
    execFileSync("tar", ["-czf", out, "-C", unpacked, "manifest.json", "requirements.lock", "wheelhouse", "app"]);
    return { file: out, sha256: await sha256File(out), size: fs.statSync(out).size, lockHash };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
