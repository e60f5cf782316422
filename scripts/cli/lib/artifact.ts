// The release artifact: a reproducible .tar.gz holding manifest.json, requirements.lock,
// wheelhouse/*.whl and app/. The host scripts (fetch, migrate, activate) rely on exactly this
// layout, so everything that decides its bytes lives here, free of I/O where possible, and
// is unit-tested.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as zlib from "zlib";

/** A problem the user can fix; the CLI prints its message alone, without a stack. */
export class ArtifactError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ArtifactError";
  }
}

export const ARTIFACT_FORMAT = 1;
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
}

const SITE_CONFIG_KEYS = ["wsgi", "migrate", "collectstatic"];
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
  return {
    wsgi: obj.wsgi,
    migrate: obj.migrate === undefined ? [...DEFAULT_MIGRATE] : argv(obj.migrate, "migrate"),
    collectstatic:
      obj.collectstatic === undefined ? [...DEFAULT_COLLECTSTATIC] : argv(obj.collectstatic, "collectstatic"),
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
}

export function buildManifest(config: SiteConfig, lockHash: string, python: string): Manifest {
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
// Which files of the site dir are source

const EXCLUDED_ANYWHERE = new Set(["__pycache__", ".git", ".env"]);
// Host state that deploys put into a release dir (shared dirs, generated files): shipping
// them would overwrite or shadow what the host links in. Only at the top: an app's own
// `static/` directory is source that collectstatic must see.
const EXCLUDED_AT_ROOT = new Set(["media", "static", "REVISION"]);

/** rel: a path relative to the site dir, with "/" separators. */
export function isExcluded(rel: string): boolean {
  const parts = rel.split("/").filter((p) => p !== "");
  if (parts.length === 0) return false;
  if (EXCLUDED_AT_ROOT.has(parts[0])) return true;
  if (parts.some((p) => EXCLUDED_ANYWHERE.has(p))) return true;
  return /\.py[co]$/.test(parts[parts.length - 1]);
}

export interface SourceFile {
  /** relative to the site dir, "/" separators; directories end with "/" */
  rel: string;
  abs: string;
  kind: "file" | "dir";
  mode: number;
}

/**
 * Walks the site dir, sorted, applying isExcluded. Symlinks are refused rather than followed:
 * following could pull in anything on the build machine, and a link kept as a link would
 * point somewhere else on the hosts.
 */
export function collectSource(dir: string, skip: ReadonlySet<string> = new Set()): SourceFile[] {
  const out: SourceFile[] = [];
  const walk = (absDir: string, relDir: string): void => {
    const names = fs.readdirSync(absDir).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (const name of names) {
      const rel = relDir + name;
      const abs = path.join(absDir, name);
      if (isExcluded(rel) || skip.has(abs)) continue;
      const st = fs.lstatSync(abs);
      if (st.isSymbolicLink()) throw new ArtifactError(`symlinks cannot be packaged: ${path.join(dir, rel)}`);
      if (st.isDirectory()) {
        out.push({ rel: rel + "/", abs, kind: "dir", mode: 0o755 });
        walk(abs, rel + "/");
      } else if (st.isFile()) {
        // Only the executable bit carries over (git tracks nothing else), so a checkout's umask
        // cannot change the archive.
        out.push({ rel, abs, kind: "file", mode: st.mode & 0o111 ? 0o755 : 0o644 });
      } else {
        throw new ArtifactError(`not a regular file or directory: ${path.join(dir, rel)}`);
      }
    }
  };
  walk(dir, "");
  return out;
}

// ---------------------------------------------------------------------------------------------
// tar + gzip
//
// Hand-written rather than the `tar` package: that one is only a transitive dependency here
// (not in package.json, so not ours to rely on), it archives from the filesystem in readdir
// order with on-disk metadata, and the archive's bytes are its identity (hosts check the
// sha256, releases are content-addressed). POSIX ustar with PAX headers for long paths is
// ~100 lines and fully under our control.

export interface TarEntry {
  /** relative, "/" separators; a directory's path ends with "/" */
  path: string;
  type: "file" | "dir";
  mode: number;
  data?: Buffer;
}

const BLOCK = 512;
const RECORD = 20 * BLOCK; // tar's default blocking factor; some readers expect whole records

function octal(value: number, width: number): string {
  // width includes the terminating NUL
  const digits = value.toString(8);
  if (digits.length > width - 1) throw new ArtifactError(`value ${value} does not fit a ${width}-byte tar field`);
  return digits.padStart(width - 1, "0") + "\0";
}

function header(name: Buffer, prefix: Buffer, size: number, mode: number, typeflag: string): Buffer {
  const h = Buffer.alloc(BLOCK, 0);
  name.copy(h, 0);
  h.write(octal(mode, 8), 100, "ascii");
  h.write(octal(0, 8), 108, "ascii"); // uid
  h.write(octal(0, 8), 116, "ascii"); // gid
  h.write(octal(size, 12), 124, "ascii");
  h.write(octal(0, 12), 136, "ascii"); // mtime
  h.write("        ", 148, "ascii"); // checksum counts as spaces while summing
  h.write(typeflag, 156, "ascii");
  h.write("ustar\0", 257, "ascii");
  h.write("00", 263, "ascii");
  // uname/gname stay empty so extraction maps to numeric ids, never to a build machine's user.
  prefix.copy(h, 345);
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(octal(sum, 7) + " ", 148, "ascii");
  return h;
}

/** ustar's name (100 bytes) + prefix (155 bytes) split at a "/", or null if impossible. */
export function splitUstarPath(p: string): { name: Buffer; prefix: Buffer } | null {
  const full = Buffer.from(p, "utf8");
  if (full.length <= 100) return { name: full, prefix: Buffer.alloc(0) };
  // A directory's trailing "/" must stay in the name part.
  const searchEnd = p.endsWith("/") ? p.length - 1 : p.length;
  for (let i = p.lastIndexOf("/", searchEnd - 1); i > 0; i = p.lastIndexOf("/", i - 1)) {
    const prefix = Buffer.from(p.slice(0, i), "utf8");
    const name = Buffer.from(p.slice(i + 1), "utf8");
    if (name.length > 100) return null;
    if (prefix.length <= 155) return { name, prefix };
  }
  return null;
}

function paxRecord(key: string, value: string): Buffer {
  // "<len> key=value\n" where <len> counts its own digits too.
  const body = ` ${key}=${value}\n`;
  const n = Buffer.byteLength(body);
  let len = n + String(n).length;
  if (String(len).length !== String(n).length) len = n + String(len).length;
  return Buffer.from(`${len}${body}`, "utf8");
}

function pad(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK, 0);
}

function checkPath(p: string): void {
  const parts = p.replace(/\/$/, "").split("/");
  if (p.startsWith("/") || parts.some((x) => x === "" || x === "." || x === "..") || p.includes("\0")) {
    throw new ArtifactError(`unsafe path in archive: ${JSON.stringify(p)}`);
  }
}

/** An uncompressed tar of the entries, sorted by path bytes (parents before children). */
export function buildTar(entries: TarEntry[]): Buffer {
  const sorted = [...entries].sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
  const chunks: Buffer[] = [];
  let previous: string | undefined;
  for (const e of sorted) {
    checkPath(e.path);
    if (e.path === previous) throw new ArtifactError(`duplicate path in archive: ${e.path}`);
    previous = e.path;
    if ((e.type === "dir") !== e.path.endsWith("/")) {
      throw new ArtifactError(`directory paths (and only they) end with "/": ${e.path}`);
    }
    const data = e.type === "file" ? (e.data ?? Buffer.alloc(0)) : Buffer.alloc(0);
    let split = splitUstarPath(e.path);
    if (split === null) {
      const pax = paxRecord("path", e.path);
      const paxName = Buffer.from(`PaxHeader/${path.posix.basename(e.path)}`.slice(0, 100), "utf8").subarray(0, 100);
      chunks.push(header(paxName, Buffer.alloc(0), pax.length, 0o644, "x"), pax, pad(pax.length));
      // The ustar name still gets something readable for tools that ignore PAX.
      split = { name: Buffer.from(e.path, "utf8").subarray(0, 100), prefix: Buffer.alloc(0) };
    }
    chunks.push(header(split.name, split.prefix, data.length, e.mode, e.type === "dir" ? "5" : "0"));
    if (data.length > 0) chunks.push(data, pad(data.length));
  }
  chunks.push(Buffer.alloc(2 * BLOCK, 0));
  const total = chunks.reduce((n, c) => n + c.length, 0);
  chunks.push(Buffer.alloc((RECORD - (total % RECORD)) % RECORD, 0));
  return Buffer.concat(chunks);
}

/**
 * gzip without a file name and with mtime 0 (node's zlib writes neither), so equal tars give
 * equal archives with the same node/zlib build.
 */
export function buildTarGz(entries: TarEntry[]): Buffer {
  return zlib.gzipSync(buildTar(entries), { level: 9 });
}

/** Every entry of an artifact, in the layout the hosts expect. */
export function artifactEntries(parts: {
  manifest: Manifest;
  lock: string;
  wheels: { filename: string; data: Buffer }[];
  source: { rel: string; kind: "file" | "dir"; mode: number; data?: Buffer }[];
}): TarEntry[] {
  const entries: TarEntry[] = [
    { path: "manifest.json", type: "file", mode: 0o644, data: Buffer.from(manifestJson(parts.manifest)) },
    { path: "requirements.lock", type: "file", mode: 0o644, data: Buffer.from(parts.lock) },
    { path: "wheelhouse/", type: "dir", mode: 0o755 },
    { path: "app/", type: "dir", mode: 0o755 },
  ];
  for (const w of parts.wheels) {
    entries.push({ path: `wheelhouse/${w.filename}`, type: "file", mode: 0o644, data: w.data });
  }
  for (const s of parts.source) {
    entries.push({ path: `app/${s.rel}`, type: s.kind, mode: s.mode, data: s.data });
  }
  return entries;
}
