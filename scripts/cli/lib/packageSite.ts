// Builds a release artifact from a site dir: pip builds the wheelhouse, artifact.ts decides
// every byte of the archive. Used by `npm run package-site`, the rehearsal and the benchmarks.
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  ArtifactError,
  artifactEntries,
  buildLock,
  buildManifest,
  buildTarGz,
  collectSource,
  parseSiteConfig,
  parseWheelFilename,
  sha256Hex,
} from "./artifact";

export const DEFAULT_PYTHON = "/usr/bin/python3";

export interface PackageOptions {
  /** Output file; default dist/<basename of dir>-<12 hex of the archive's sha256>.tar.gz under cwd. */
  out?: string;
  /** Build offline from this wheel dir (pip --no-index --find-links); default env GREENLIGHT_FIND_LINKS. */
  findLinks?: string;
  /** Interpreter that runs pip; its MAJOR.MINOR becomes the manifest's "python". */
  python?: string;
  /** Base for relative paths and the default output; default process.cwd(). */
  cwd?: string;
}

export interface PackageResult {
  file: string;
  sha256: string;
  size: number;
  lockHash: string;
}

interface RunResult {
  code: number | null;
  output: string;
}

function run(cmd: string, args: string[], cwd: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
    const chunks: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => chunks.push(c));
    child.stderr.on("data", (c: Buffer) => chunks.push(c));
    child.on("error", (e) => reject(new ArtifactError(`cannot run ${cmd}: ${e.message}`)));
    child.on("close", (code) => resolve({ code, output: Buffer.concat(chunks).toString("utf8") }));
  });
}

function lastLines(text: string, n: number): string {
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  return lines
    .slice(-n)
    .map((l) => `  ${l}`)
    .join("\n");
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
  const siteDir = path.resolve(cwd, dir);
  if (!fs.existsSync(siteDir) || !fs.statSync(siteDir).isDirectory()) {
    throw new ArtifactError(`site directory not found: ${siteDir}`);
  }
  const config = parseSiteConfig(readRequired(path.join(siteDir, "greenlight.json"), "greenlight.json"));
  const requirements = path.join(siteDir, "requirements.txt");
  readRequired(requirements, "requirements.txt");

  const python = opts.python ?? DEFAULT_PYTHON;
  const findLinksOpt = opts.findLinks ?? process.env.GREENLIGHT_FIND_LINKS;
  const findLinks = findLinksOpt ? path.resolve(cwd, findLinksOpt) : undefined;
  if (findLinks !== undefined && !fs.existsSync(findLinks)) {
    throw new ArtifactError(`--find-links directory not found: ${findLinks}`);
  }

  const version = await run(python, ["-c", "import sys; print('%d.%d' % sys.version_info[:2])"], siteDir);
  if (version.code !== 0) throw new ArtifactError(`${python} failed to start:\n${lastLines(version.output, 5)}`);

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "greenlight-package-"));
  try {
    const wheelhouse = path.join(tmp, "wheelhouse");
    const pipArgs = ["-m", "pip", "wheel", "--disable-pip-version-check", "--no-input", "--wheel-dir", wheelhouse];
    if (findLinks !== undefined) pipArgs.push("--no-index", "--find-links", findLinks);
    pipArgs.push("-r", requirements);
    // cwd = the site dir, so relative paths inside requirements.txt mean what they say there.
    const pip = await run(python, pipArgs, siteDir);
    if (pip.code !== 0) {
      throw new ArtifactError(`pip wheel failed (exit ${pip.code}); its last lines:\n${lastLines(pip.output, 12)}`);
    }

    const filenames = fs
      .readdirSync(wheelhouse)
      .filter((f) => f.endsWith(".whl"))
      .sort();
    const wheels = filenames.map((filename) => {
      const data = fs.readFileSync(path.join(wheelhouse, filename));
      return { filename, data, sha256: sha256Hex(data) };
    });
    const lock = buildLock(wheels);
    if (!wheels.some((w) => parseWheelFilename(w.filename).name === "gunicorn")) {
      // Caught here rather than when a host's supervisor fails to start the slot.
      throw new ArtifactError("requirements.txt must include gunicorn: the hosts run the site with it");
    }
    const lockHash = sha256Hex(lock);
    const manifest = buildManifest(config, lockHash, version.output.trim());

    const outGiven = opts.out !== undefined ? path.resolve(cwd, opts.out) : undefined;
    // A previous artifact written into the site dir must not end up inside the next one.
    const skip = new Set<string>(outGiven ? [outGiven] : []);
    const source = collectSource(siteDir, skip).map((s) => ({
      ...s,
      data: s.kind === "file" ? fs.readFileSync(s.abs) : undefined,
    }));

    const archive = buildTarGz(artifactEntries({ manifest, lock, wheels, source }));
    const sha256 = sha256Hex(archive);
    const file = outGiven ?? path.resolve(cwd, "dist", `${path.basename(siteDir)}-${sha256.slice(0, 12)}.tar.gz`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    // Write then rename: a reader never sees half an artifact under the final name.
    const partial = `${file}.partial-${process.pid}`;
    try {
      fs.writeFileSync(partial, archive, { mode: 0o644 });
      fs.renameSync(partial, file);
    } catch (e) {
      fs.rmSync(partial, { force: true });
      throw new ArtifactError(`cannot write ${file}: ${(e as Error).message}`);
    }
    return { file, sha256, size: archive.length, lockHash };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
