// The release artifact: a reproducible .tar.gz holding manifest.json, requirements.lock,
// wheelhouse/*.whl and app/. The host scripts (fetch, migrate, activate) rely on exactly this
// layout, so everything that decides its bytes lives here, free of I/O where possible, and
// is unit-tested.
import * as crypto from "crypto";
import * as fs from "fs";
import { Writable } from "stream";
import { pipeline } from "stream/promises";
import * as tar from "tar-stream";
import * as zlib from "zlib";
import { isMigrationName } from "../../../components/constants";

/** A problem the user can fix; the CLI prints its message alone, without a stack. */
export class ArtifactError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ArtifactError";
  }
}

export const ARTIFACT_FORMAT = 1;
/**
 * What the hosts run (Debian 12's /usr/bin/python3): the wheelhouse is built for it whatever
 * machine packages the site, and the manifest's "python" says so for the hosts to check.
 */
export const HOST_PYTHON = "3.11";
/** glibc of Debian 12: manylinux wheels up to manylinux_2_36 run there. */
export const HOST_GLIBC_MINOR = 36;
export const DEFAULT_REQUIREMENTS = "requirements.txt";
export const DEFAULT_MIGRATE: readonly string[] = ["python", "manage.py", "migrate", "--noinput"];
export const DEFAULT_COLLECTSTATIC: readonly string[] = ["python", "manage.py", "collectstatic", "--noinput"];

export function sha256Hex(data: Buffer | string): string {
  return crypto.createHash("sha256").update(data).digest("hex");
}

// ---------------------------------------------------------------------------------------------
// greenlight.json

export interface SiteConfig {
  /** gunicorn's APP_MODULE, e.g. "greenlight_site.wsgi:application". */
  wsgi: string;
  /** argv run from the release dir; "python" means the release venv's python. */
  migrate: string[];
  collectstatic: string[];
  /** The requirements file, relative to the site dir (default requirements.txt). */
  requirements: string;
  /**
   * Background processes the hosts run under supervisor with the live release's code, when
   * the stack has Redis: the queue's worker (every host) and its scheduler (host 0 only).
   */
  worker?: string[];
  beat?: string[];
}

const SITE_CONFIG_KEYS = ["wsgi", "migrate", "collectstatic", "requirements", "worker", "beat"];
/** A background command's program: the release venv's python, or a console script of its venv (celery). */
const BACKGROUND_PROGRAM = /^(python|[A-Za-z0-9][A-Za-z0-9._-]{0,63})$/;

/**
 * "worker" and "beat": argv run in the foreground by supervisor from the release dir, the
 * program being "python" or a console script of the release's venv ("celery"). They must not
 * daemonise (supervisor would lose them) and beat must not choose its own schedule file (the
 * hosts keep it in shared/, so a release keeps the schedule's state).
 */
function background(value: unknown, key: "worker" | "beat"): string[] {
  const a = argv(value, key);
  if (!BACKGROUND_PROGRAM.test(a[0])) {
    throw new ArtifactError(
      `greenlight.json: "${key}" must start with "python" or the name of a console script in the site's venv ` +
        `(e.g. "celery"), not ${JSON.stringify(a[0])}`,
    );
  }
  const detach = a.find((x) => x === "--detach" || x === "-D" || x.startsWith("--pidfile"));
  if (detach) {
    throw new ArtifactError(
      `greenlight.json: "${key}" must run in the foreground (supervisor runs and stops it); remove ${JSON.stringify(detach)}`,
    );
  }
  if (key === "beat") {
    const own = a.find((x) => x === "-s" || x === "--schedule" || x.startsWith("--schedule="));
    if (own) {
      throw new ArtifactError(
        `greenlight.json: "beat" must not set ${JSON.stringify(own)}: the hosts pass --schedule in shared/ ` +
          "(one schedule per environment, kept across releases)",
      );
    }
  }
  return a;
}
const WSGI_PATTERN = /^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$/;

function argv(value: unknown, key: string): string[] {
  if (
    !Array.isArray(value) ||
    value.length === 0 ||
    !value.every((a): a is string => typeof a === "string" && a !== "" && !a.includes("\0"))
  ) {
    throw new ArtifactError(`greenlight.json: "${key}" must be a non-empty array of non-empty strings`);
  }
  return [...value];
}

export function parseSiteConfig(text: string): SiteConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ArtifactError(`greenlight.json is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new ArtifactError("greenlight.json must be a JSON object");
  }
  const obj = raw as Record<string, unknown>;
  // Unknown keys are refused: a misspelt "migrations" silently falling back to the default
  // command would run the wrong thing on the production database.
  for (const key of Object.keys(obj)) {
    if (!SITE_CONFIG_KEYS.includes(key)) {
      throw new ArtifactError(`greenlight.json: unknown key "${key}" (allowed: ${SITE_CONFIG_KEYS.join(", ")})`);
    }
  }
  if (typeof obj.wsgi !== "string" || !WSGI_PATTERN.test(obj.wsgi)) {
    throw new ArtifactError('greenlight.json: "wsgi" must look like "package.module:callable"');
  }
  if (obj.beat !== undefined && obj.worker === undefined) {
    throw new ArtifactError(
      'greenlight.json: "beat" is set without "worker": its scheduled tasks would queue up with nobody to run them; ' +
        'declare the worker too, e.g. "worker": ["celery", "-A", "mysite", "worker"]',
    );
  }
  let requirements = DEFAULT_REQUIREMENTS;
  if (obj.requirements !== undefined) {
    const r = obj.requirements;
    if (
      typeof r !== "string" ||
      r === "" ||
      r.startsWith("/") ||
      r.split("/").some((p) => p === ".." || p === "") ||
      r.includes("\0")
    ) {
      throw new ArtifactError(
        'greenlight.json: "requirements" must be a relative path inside the site, e.g. "requirements/production.txt"',
      );
    }
    requirements = r;
  }
  return {
    wsgi: obj.wsgi,
    requirements,
    migrate: obj.migrate === undefined ? [...DEFAULT_MIGRATE] : argv(obj.migrate, "migrate"),
    collectstatic:
      obj.collectstatic === undefined ? [...DEFAULT_COLLECTSTATIC] : argv(obj.collectstatic, "collectstatic"),
    ...(obj.worker === undefined ? {} : { worker: background(obj.worker, "worker") }),
    ...(obj.beat === undefined ? {} : { beat: background(obj.beat, "beat") }),
  };
}

// ---------------------------------------------------------------------------------------------
// manifest.json and requirements.lock

export interface Manifest {
  format: number;
  lockHash: string;
  wsgi: string;
  migrate: string[];
  collectstatic: string[];
  python: string;
  /**
   * The site's own migrations, `<app label>.<name>`, from the migration files its source
   * carries (siteMigrations): what `npm run release` writes into the stack file for the
   * preview to show. Which of them are pending, and whether they are safe, only the hosts'
   * check can tell (against the database, with the release's Django).
   */
  migrations: string[];
  /** greenlight.json's worker and beat, only when the site declares them. */
  worker?: string[];
  beat?: string[];
}

/**
 * The migrations among a site's source files: `<app>/migrations/<name>.py` (not `__init__`),
 * named as Django names them, `<app>.<name>` (an app's label is its package's name unless its
 * AppConfig says otherwise). Sorted by app, then name.
 */
export function siteMigrations(rels: readonly string[]): string[] {
  const found = new Set<string>();
  for (const rel of rels) {
    const m = /(?:^|\/)([A-Za-z_][A-Za-z0-9_]*)\/migrations\/([A-Za-z0-9][A-Za-z0-9_]*)\.py$/.exec(rel);
    if (m && isMigrationName(`${m[1]}.${m[2]}`)) found.add(`${m[1]}.${m[2]}`);
  }
  return [...found].sort((a, b) => (Buffer.from(a) < Buffer.from(b) ? -1 : Buffer.from(a) > Buffer.from(b) ? 1 : 0));
}

export function buildManifest(
  config: SiteConfig,
  lockHash: string,
  python: string,
  migrations: readonly string[] = [],
): Manifest {
  if (!/^[0-9a-f]{64}$/.test(lockHash)) throw new ArtifactError(`not a sha256 hex digest: ${lockHash}`);
  if (!/^\d+\.\d+$/.test(python)) throw new ArtifactError(`python version must be MAJOR.MINOR, got ${python}`);
  // Literal key order: the manifest's bytes are part of the archive's checksum.
  return {
    format: ARTIFACT_FORMAT,
    lockHash,
    wsgi: config.wsgi,
    migrate: [...config.migrate],
    collectstatic: [...config.collectstatic],
    python,
    migrations: [...migrations],
    // Only when declared: the manifest of a site without them stays byte for byte as it was.
    ...(config.worker ? { worker: [...config.worker] } : {}),
    ...(config.beat ? { beat: [...config.beat] } : {}),
  };
}

export function manifestJson(manifest: Manifest): string {
  return JSON.stringify(manifest, null, 2) + "\n";
}

/** PEP 503 normalised project name: what pip compares. */
export function canonicalName(name: string): string {
  return name.replace(/[-_.]+/g, "-").toLowerCase();
}

export interface WheelName {
  name: string;
  version: string;
  tags: string;
}

// {distribution}-{version}(-{build tag})?-{python tag}-{abi tag}-{platform tag}.whl
const WHEEL_PATTERN = /^([^-]+)-([^-]+)(?:-\d[^-]*)?-([^-]+-[^-]+-[^-]+)\.whl$/;

export function parseWheelFilename(filename: string): WheelName {
  const m = WHEEL_PATTERN.exec(filename);
  if (!m) throw new ArtifactError(`not a wheel file name: ${filename}`);
  return { name: canonicalName(m[1]), version: m[2], tags: m[3] };
}

export interface HashedWheel {
  filename: string;
  sha256: string;
}

/**
 * requirements.lock for `pip install --no-index --find-links wheelhouse --require-hashes`.
 * Hash-checking mode wants every requirement, transitive ones included, pinned with `==` and
 * hashed, so the lock lists every wheel in the wheelhouse. Wheels of one release built for
 * several platforms share a line with one --hash each.
 */
export function buildLock(wheels: HashedWheel[]): string {
  if (wheels.length === 0)
    throw new ArtifactError("the wheelhouse is empty: requirements.txt must list the site's packages");
  const byName = new Map<string, { version: string; hashes: Set<string> }>();
  for (const wheel of wheels) {
    const { name, version } = parseWheelFilename(wheel.filename);
    if (!/^[0-9a-f]{64}$/.test(wheel.sha256)) throw new ArtifactError(`bad sha256 for ${wheel.filename}`);
    const seen = byName.get(name);
    if (seen && seen.version !== version) {
      throw new ArtifactError(`the wheelhouse holds two versions of ${name}: ${seen.version} and ${version}`);
    }
    const entry = seen ?? { version, hashes: new Set<string>() };
    entry.hashes.add(wheel.sha256);
    byName.set(name, entry);
  }
  return [...byName.keys()]
    .sort()
    .map((name) => {
      const { version, hashes } = byName.get(name)!;
      const hashArgs = [...hashes].sort().map((h) => ` --hash=sha256:${h}`);
      return `${name}==${version}${hashArgs.join("")}\n`;
    })
    .join("");
}

// ---------------------------------------------------------------------------------------------
// Files that are never source, whatever git or .gitignore say

const EXCLUDED_ANYWHERE = new Set(["__pycache__", ".git", ".env"]);
// Host state that deploys put into a release dir: shipping it would overwrite or shadow what
// the host links in. Only at the top: an app's `media.py` or `docs/REVISION` is source. A
// root `static/` is source too (STATICFILES_DIRS = [BASE_DIR / "static"]).
const EXCLUDED_AT_ROOT = new Set(["media", "REVISION"]);

/** rel: a path relative to the site dir, with "/" separators. */
export function isExcluded(rel: string): boolean {
  const parts = rel.split("/").filter((p) => p !== "");
  if (parts.length === 0) return false;
  if (EXCLUDED_AT_ROOT.has(parts[0])) return true;
  if (parts.some((p) => EXCLUDED_ANYWHERE.has(p))) return true;
  return /\.py[co]$/.test(parts[parts.length - 1]);
}

// ---------------------------------------------------------------------------------------------
// tar + gzip, through tar-stream
//
// The archive's bytes are its identity (hosts check the sha256, releases are content-
// addressed), so every header field is ours: mtime 0, uid/gid 0, no user or group names, and
// modes normalised by the caller. manifest.json and requirements.lock come first, so a reader
// of the stream (the hosts' fetch) meets the manifest before any other byte; everything else
// follows sorted by path bytes (parents before children). tar-stream writes PAX headers for
// paths that ustar cannot hold.

export interface TarEntry {
  /** relative, "/" separators; a directory's path ends with "/" */
  path: string;
  type: "file" | "dir";
  mode: number;
  /** A file's bytes, given or read from `file` when its turn comes (wheels can be large). */
  data?: Buffer;
  file?: string;
}

const FIRST = ["manifest.json", "requirements.lock"];

function checkPath(p: string): void {
  const parts = p.replace(/\/$/, "").split("/");
  if (p.startsWith("/") || parts.some((x) => x === "" || x === "." || x === "..") || p.includes("\0")) {
    throw new ArtifactError(`unsafe path in archive: ${JSON.stringify(p)}`);
  }
}

/** The entries in archive order, checked: unsafe, duplicate and mistyped paths are refused. */
export function orderEntries(entries: TarEntry[]): TarEntry[] {
  const rank = (p: string): number => (FIRST.includes(p) ? FIRST.indexOf(p) : FIRST.length);
  const sorted = [...entries].sort(
    (a, b) => rank(a.path) - rank(b.path) || Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)),
  );
  let previous: string | undefined;
  for (const e of sorted) {
    checkPath(e.path);
    if (e.path === previous) throw new ArtifactError(`duplicate path in archive: ${e.path}`);
    previous = e.path;
    if ((e.type === "dir") !== e.path.endsWith("/")) {
      throw new ArtifactError(`directory paths (and only they) end with "/": ${e.path}`);
    }
  }
  return sorted;
}

/**
 * Writes the entries as a .tar.gz to `out`. gzip carries no file name and mtime 0 (node's
 * zlib writes neither), so equal entries give equal bytes with the same node/zlib build.
 */
export async function writeTarGz(entries: TarEntry[], out: NodeJS.WritableStream): Promise<void> {
  const ordered = orderEntries(entries);
  const pack = tar.pack();
  const done = pipeline(pack, zlib.createGzip({ level: 9 }), out);
  const add = (e: TarEntry, data: Buffer): Promise<void> =>
    new Promise((resolve, reject) => {
      const header = { name: e.path, mode: e.mode, mtime: new Date(0), uid: 0, gid: 0, uname: "", gname: "" };
      if (e.type === "dir") pack.entry({ ...header, type: "directory" }, (err) => (err ? reject(err) : resolve()));
      else pack.entry({ ...header, type: "file", size: data.length }, data, (err) => (err ? reject(err) : resolve()));
    });
  try {
    for (const e of ordered) {
      const data =
        e.type === "file" ? (e.data ?? (e.file ? await fs.promises.readFile(e.file) : Buffer.alloc(0))) : EMPTY;
      await add(e, data);
    }
    pack.finalize();
  } catch (err) {
    pack.destroy(err as Error);
  }
  await done;
}
const EMPTY = Buffer.alloc(0);

/** The .tar.gz of the entries in memory (tests, small archives). */
export async function buildTarGz(entries: TarEntry[]): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk);
      cb();
    },
  });
  await writeTarGz(entries, sink);
  return Buffer.concat(chunks);
}

/** Every entry of an artifact, in the layout the hosts expect. */
export function artifactEntries(parts: {
  manifest: Manifest;
  lock: string;
  wheels: { filename: string; file: string }[];
  source: { rel: string; kind: "file" | "dir"; mode: number; abs: string }[];
  /** Tools for the hosts (the uv wheel, see installer.ts), after everything else in tools/. */
  tools?: { filename: string; file: string }[];
}): TarEntry[] {
  const entries: TarEntry[] = [
    { path: "manifest.json", type: "file", mode: 0o644, data: Buffer.from(manifestJson(parts.manifest)) },
    { path: "requirements.lock", type: "file", mode: 0o644, data: Buffer.from(parts.lock) },
    { path: "wheelhouse/", type: "dir", mode: 0o755 },
    { path: "app/", type: "dir", mode: 0o755 },
  ];
  for (const w of parts.wheels) {
    entries.push({ path: `wheelhouse/${w.filename}`, type: "file", mode: 0o644, file: w.file });
  }
  for (const s of parts.source) {
    entries.push({ path: `app/${s.rel}`, type: s.kind, mode: s.mode, file: s.kind === "file" ? s.abs : undefined });
  }
  if (parts.tools?.length) {
    entries.push({ path: "tools/", type: "dir", mode: 0o755 });
    for (const t of parts.tools) entries.push({ path: `tools/${t.filename}`, type: "file", mode: 0o644, file: t.file });
  }
  return entries;
}

/**
 * The manifest of an artifact file: its first entry (package-site writes it first), read
 * without unpacking anything else.
 */
export async function readManifest(file: string): Promise<Partial<Manifest>> {
  const extract = tar.extract();
  let found: Partial<Manifest> | undefined;
  let problem: string | undefined;
  extract.on("entry", (header, stream, next) => {
    if (found !== undefined || problem !== undefined) {
      stream.resume();
      stream.on("end", next);
      return;
    }
    if (header.name !== "manifest.json") {
      problem = `${file} does not start with manifest.json: build it again with npm run package-site`;
      extract.destroy();
      return;
    }
    const chunks: Buffer[] = [];
    stream.on("data", (c: unknown) => chunks.push(c as Buffer));
    stream.on("end", () => {
      try {
        found = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Partial<Manifest>;
      } catch {
        problem = `the manifest.json of ${file} is not JSON`;
      }
      // Nothing after the manifest is needed.
      extract.destroy();
    });
  });
  try {
    await pipeline(fs.createReadStream(file), zlib.createGunzip(), extract);
  } catch (e) {
    if (found === undefined && problem === undefined) {
      problem = `cannot read ${file} as an artifact: ${(e as Error).message}`;
    }
  }
  if (found !== undefined) return found;
  throw new ArtifactError(problem ?? `${file} is an empty archive`);
}

/**
 * The manifest of an artifact a user hands to a command (`npm run rehearse -- --artifact F`),
 * checked as far as it can be without unpacking: the file exists, is an archive that starts
 * with a manifest package-site writes, for the hosts' Python. Each refusal is one line that
 * says what to do; the hosts' fetch checks the rest (hashes, wheels) before it unpacks.
 */
export async function checkArtifactFile(file: string): Promise<Manifest> {
  const rebuild = "build one with npm run package-site -- DIR";
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch {
    throw new ArtifactError(`artifact ${file} does not exist (${rebuild})`);
  }
  if (!stat.isFile()) throw new ArtifactError(`artifact ${file} is not a file (${rebuild})`);
  if (stat.size === 0) throw new ArtifactError(`artifact ${file} is empty (${rebuild})`);
  let m: Partial<Manifest>;
  try {
    m = await readManifest(file);
  } catch (e) {
    throw new ArtifactError(`${(e as Error).message.split("\n")[0]} (${rebuild})`);
  }
  const bad = (what: string) =>
    new ArtifactError(`the manifest.json of ${file} ${what}: build it again with npm run package-site`);
  if (m.format !== ARTIFACT_FORMAT) throw bad(`has format ${JSON.stringify(m.format)}, not ${ARTIFACT_FORMAT}`);
  if (typeof m.lockHash !== "string" || !/^[0-9a-f]{64}$/.test(m.lockHash)) throw bad("has no lockHash");
  if (typeof m.wsgi !== "string" || !m.wsgi) throw bad("names no wsgi callable");
  for (const k of ["migrate", "collectstatic"] as const) {
    const v = m[k];
    if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === "string")) throw bad(`has no ${k} argv`);
  }
  if (m.python !== HOST_PYTHON) {
    throw new ArtifactError(
      `artifact ${file} was built for Python ${String(m.python)}, the hosts run ${HOST_PYTHON}: ` +
        "build it again with this version's npm run package-site",
    );
  }
  return { ...(m as Manifest), migrations: Array.isArray(m.migrations) ? m.migrations.map(String) : [] };
}
