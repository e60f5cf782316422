// Builds a release artifact from a site dir: source.ts decides which files are source,
// wheels.ts brings the hosts' wheels from PyPI, artifact.ts decides every byte of the archive.
// Used by `npm run package-site`, the site and host tests, the rehearsal and the benchmarks.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  ArtifactError,
  HOST_PYTHON,
  artifactEntries,
  buildLock,
  buildManifest,
  parseSiteConfig,
  parseWheelFilename,
  sha256Hex,
  siteMigrations,
  writeTarGz,
} from "./artifact";
import { collectSource } from "./source";
import { sha256File } from "./upload";
import { installerWheel } from "./installer";
import { defaultCacheDir, hostWheels } from "./wheels";

/** Debian's python3 when there is one (the tests' machine), else whatever python3 is on PATH. */
export const DEFAULT_PYTHON = fs.existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";

export interface PackageOptions {
  /** Output file; default dist/<basename of dir>-<12 hex of the archive's sha256>.tar.gz under cwd. */
  out?: string;
  /** An extra wheel dir (pip --find-links); default env GREENLIGHT_FIND_LINKS. */
  findLinks?: string;
  /** Only findLinks, no index. */
  noIndex?: boolean;
  /** Interpreter whose pip downloads the wheels. It need not be 3.11: the target is fixed. */
  python?: string;
  /** Wheel cache root; default ~/.cache/greenlight/wheels (env GREENLIGHT_WHEEL_CACHE; "" = off). */
  wheelCache?: string;
  /** Base for relative paths and the default output; default process.cwd(). */
  cwd?: string;
  /** Where notes go (skipped virtualenvs, resolved symlinks); default stderr. */
  note?: (message: string) => void;
}

export interface PackageResult {
  file: string;
  sha256: string;
  size: number;
  lockHash: string;
}

function readRequired(file: string, what: string): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") throw new ArtifactError(`${what} not found: ${file}`);
    throw new ArtifactError(`cannot read ${file}: ${(e as Error).message}`);
  }
}

export async function packageSite(dir: string, opts: PackageOptions = {}): Promise<PackageResult> {
  const cwd = opts.cwd ?? process.cwd();
  const note = opts.note ?? ((m: string) => process.stderr.write(`package-site: ${m}\n`));
  const siteDir = path.resolve(cwd, dir);
  if (!fs.existsSync(siteDir) || !fs.statSync(siteDir).isDirectory()) {
    throw new ArtifactError(`site directory not found: ${siteDir}`);
  }
  const config = parseSiteConfig(readRequired(path.join(siteDir, "greenlight.json"), "greenlight.json"));
  const requirements = path.join(siteDir, config.requirements);
  readRequired(requirements, config.requirements);

  const outGiven = opts.out !== undefined ? path.resolve(cwd, opts.out) : undefined;
  const distDir = path.resolve(cwd, "dist");
  const earlier = new RegExp(`^${path.basename(siteDir).replace(/[^\w]/g, "\\$&")}-[0-9a-f]{12}\\.tar\\.gz$`);
  // Artifacts written into the site dir (this one, earlier default ones) are not source.
  const skip = (abs: string): boolean =>
    abs === outGiven ||
    (path.dirname(abs) === distDir && earlier.test(path.basename(abs))) ||
    /\.partial-\d+$/.test(abs);
  const source = collectSource(siteDir, skip);
  for (const n of source.notes) note(n);

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "greenlight-package-"));
  try {
    const house = await hostWheels(requirements, tmp, {
      python: opts.python ?? DEFAULT_PYTHON,
      findLinks: opts.findLinks ?? (process.env.GREENLIGHT_FIND_LINKS || undefined),
      noIndex: opts.noIndex,
      cacheDir: opts.wheelCache ?? defaultCacheDir(),
      cwd: siteDir, // relative paths inside the requirements file mean what they say there
    });
    const wheels = house.wheels.map((filename) => {
      const file = path.join(house.dir, filename);
      return { filename, file, sha256: sha256Hex(fs.readFileSync(file)) };
    });
    const lock = buildLock(wheels);
    if (!wheels.some((w) => parseWheelFilename(w.filename).name === "gunicorn")) {
      // Caught here rather than when a host's supervisor fails to start the slot.
      throw new ArtifactError(`${config.requirements} must include gunicorn: the hosts run the site with it`);
    }
    const lockHash = sha256Hex(lock);
    const migrations = siteMigrations(source.files.filter((f) => f.kind === "file").map((f) => f.rel));
    const manifest = buildManifest(config, lockHash, HOST_PYTHON, migrations);
    const uv = await installerWheel({
      python: opts.python ?? DEFAULT_PYTHON,
      cacheDir: opts.wheelCache ?? defaultCacheDir(),
      findLinks: opts.findLinks ?? (process.env.GREENLIGHT_FIND_LINKS || undefined),
      noIndex: opts.noIndex,
      scratch: tmp,
      note,
    });

    const file = outGiven ?? path.join(tmp, "unnamed.tar.gz");
    fs.mkdirSync(path.dirname(file), { recursive: true });
    // Write then rename: a reader never sees half an artifact under the final name.
    const partial = `${file}.partial-${process.pid}`;
    try {
      await writeTarGz(
        artifactEntries({ manifest, lock, wheels, source: source.files, tools: uv ? [uv] : [] }),
        fs.createWriteStream(partial, { mode: 0o644 }),
      );
    } catch (e) {
      fs.rmSync(partial, { force: true });
      if (e instanceof ArtifactError) throw e;
      throw new ArtifactError(`cannot write ${file}: ${(e as Error).message}`);
    }
    const sha256 = await sha256File(partial);
    const size = fs.statSync(partial).size;
    const final = outGiven ?? path.join(distDir, `${path.basename(siteDir)}-${sha256.slice(0, 12)}.tar.gz`);
    fs.mkdirSync(path.dirname(final), { recursive: true });
    try {
      fs.renameSync(partial, final);
    } catch {
      // dist/ may be on another filesystem than the temp dir
      fs.copyFileSync(partial, final);
      fs.rmSync(partial, { force: true });
    }
    return { file: final, sha256, size, lockHash };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
