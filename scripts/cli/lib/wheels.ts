// The wheelhouse: wheels for the hosts (CPython 3.11, manylinux x86_64, Debian 12's glibc)
// from PyPI, whatever machine runs package-site, through `pip download --platform ...
// --only-binary=:all:`. A hash-locked requirements file is enforced (pip's hash-checking mode)
// and its download is cached under ~/.cache/greenlight/wheels/<key of the lock>, so repeated
// builds (CI, tests) reuse the wheels; an unlocked file is resolved afresh every time.
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ArtifactError, HOST_GLIBC_MINOR, HOST_PYTHON, sha256Hex } from "./artifact";

/** pip's target options for the hosts. pip does not widen manylinux_2_X tags: name each. */
export function targetArgs(): string[] {
  const platforms: string[] = [];
  for (let minor = HOST_GLIBC_MINOR; minor >= 17; minor--) platforms.push(`manylinux_2_${minor}_x86_64`);
  // manylinux2014 = manylinux_2_17; pip adds manylinux2010 and manylinux1 for it.
  platforms.push("manylinux2014_x86_64");
  const [major, minor] = HOST_PYTHON.split(".");
  return [
    "--only-binary=:all:",
    "--python-version",
    HOST_PYTHON,
    "--implementation",
    "cp",
    "--abi",
    `cp${major}${minor}`,
    ...platforms.flatMap((p) => ["--platform", p]),
  ];
}

export const TARGET_DESCRIPTION = `CPython ${HOST_PYTHON} on manylinux x86_64 (Debian 12, glibc 2.${HOST_GLIBC_MINOR})`;

// ---------------------------------------------------------------------------------------------
// Reading requirements files (enough to key the cache and to check them; pip does the rest)

export interface Requirement {
  /** the line as written, continuation lines joined */
  line: string;
  /** PEP 503 name, or undefined for a path, URL or VCS requirement */
  name?: string;
  pinned: boolean;
  hashes: string[];
  file: string;
}

export interface RequirementsTree {
  /** every file read, the top one first, with its text */
  files: { file: string; text: string }[];
  requirements: Requirement[];
}

function logicalLines(text: string): string[] {
  const out: string[] = [];
  let current = "";
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/(^|\s)#.*$/, "");
    if (line.endsWith("\\")) {
      current += line.slice(0, -1) + " ";
      continue;
    }
    current += line;
    if (current.trim() !== "") out.push(current.trim());
    current = "";
  }
  if (current.trim() !== "") out.push(current.trim());
  return out;
}

/** Reads a requirements file and the files it includes with -r / -c. */
export function readRequirements(file: string): RequirementsTree {
  const tree: RequirementsTree = { files: [], requirements: [] };
  const seen = new Set<string>();
  const read = (f: string): void => {
    const abs = path.resolve(f);
    if (seen.has(abs)) return;
    seen.add(abs);
    let text: string;
    try {
      text = fs.readFileSync(abs, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT")
        throw new ArtifactError(`requirements file not found: ${abs}`);
      throw new ArtifactError(`cannot read ${abs}: ${(e as Error).message}`);
    }
    tree.files.push({ file: abs, text });
    for (const line of logicalLines(text)) {
      const include = /^(?:-r|--requirement|-c|--constraint)(?:\s*=\s*|\s+)(\S+)$/.exec(line);
      if (include) {
        read(path.resolve(path.dirname(abs), include[1]));
        continue;
      }
      if (line.startsWith("-")) continue; // --index-url, --hash-only lines and the like: pip's business
      const hashes = [...line.matchAll(/--hash[=\s]+sha256:([0-9a-fA-F]{64})/g)].map((m) => m[1].toLowerCase());
      const spec = line.split(/\s+--/)[0].trim();
      const m = /^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$/.exec(spec);
      const isPath = /^(\.|\/|-e\b|git\+|https?:)/.test(spec) || spec.includes("://") || spec.includes(" @ ");
      tree.requirements.push({
        line,
        name: m && !isPath ? m[1].replace(/[-_.]+/g, "-").toLowerCase() : undefined,
        pinned: m !== null && !isPath && /^===?\s*[^,;*\s]+\s*(;.*)?$/.test(m[3]),
        hashes,
        file: abs,
      });
    }
  };
  read(file);
  return tree;
}

/** Whether pip will run in hash-checking mode and every requirement is pinned and hashed. */
export function isHashLocked(tree: RequirementsTree): boolean {
  return tree.requirements.length > 0 && tree.requirements.every((r) => r.pinned && r.hashes.length > 0);
}

// ---------------------------------------------------------------------------------------------
// pip's failures, said as what to do

const LOCK_COMMAND =
  `uv pip compile --generate-hashes --python-version ${HOST_PYTHON} --python-platform x86_64-manylinux_2_17 ` +
  "requirements.in -o requirements.txt";

/** A message naming the problem and the way out, from pip download's output. */
export function explainPipFailure(output: string, requirementsFile: string): string | undefined {
  const missing = [...output.matchAll(/No matching distribution found for ([^\s]+)/g)].map((m) => m[1]);
  if (missing.length > 0) {
    const names = [...new Set(missing)];
    return (
      `no wheel for the hosts (${TARGET_DESCRIPTION}) on the index for: ${names.join(", ")}. ` +
      "Ways out: pin a version that publishes such a wheel (see the project's files on PyPI); use its binary " +
      "variant (psycopg2 -> psycopg[binary], or psycopg2-binary); or build the wheel on a Debian 12 x86_64 " +
      "machine with Python 3.11 (pip wheel --no-deps NAME==VERSION -w wheels/) and pass --find-links wheels/"
    );
  }
  if (
    /Hashes are required in --require-hashes mode|In --require-hashes mode, all requirements must have their versions pinned/.test(
      output,
    )
  ) {
    return (
      `${requirementsFile} pins hashes for some requirements but not all (pip then wants every requirement, ` +
      `dependencies included, pinned with == and hashed): regenerate it, e.g. ${LOCK_COMMAND}`
    );
  }
  if (/DO NOT MATCH THE HASHES/.test(output)) {
    const pkgs = [...output.matchAll(/^\s+([A-Za-z0-9._-]+)==\S+ from \S+/gm)].map((m) => m[1]);
    return (
      `a downloaded file does not match its hash in ${requirementsFile}${pkgs.length ? ` (${pkgs.join(", ")})` : ""}: ` +
      `the lock was made for other files, usually because it was resolved for another Python (a lock for ` +
      `Python 3.13 hashes only cp313 wheels; uv.lock follows requires-python, which must admit ${HOST_PYTHON}) ` +
      `or it is stale; regenerate it for the hosts, e.g. ${LOCK_COMMAND}`
    );
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Downloading, with the cache

export interface WheelOptions {
  /** Interpreter whose pip downloads (any Python with pip >= 20.3; not the hosts' Python). */
  python: string;
  /** Extra wheel directory (pip --find-links), e.g. wheels built for the hosts by hand. */
  findLinks?: string;
  /** Use findLinks only, no index (offline builds). */
  noIndex?: boolean;
  /** Cache root; "" disables the cache. */
  cacheDir: string;
  /** Directory relative paths inside the requirements file are relative to. */
  cwd: string;
}

export interface Wheelhouse {
  dir: string;
  /** wheel file names, sorted */
  wheels: string[];
  cached: boolean;
}

export function defaultCacheDir(): string {
  const env = process.env.GREENLIGHT_WHEEL_CACHE;
  if (env !== undefined) return env;
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache");
  return path.join(base, "greenlight", "wheels");
}

function run(cmd: string, args: string[], cwd: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
    const chunks: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => chunks.push(c));
    child.stderr.on("data", (c: Buffer) => chunks.push(c));
    child.on("error", (e) => reject(new ArtifactError(`cannot run ${cmd}: ${e.message}`)));
    child.on("close", (code) => resolve({ code, output: Buffer.concat(chunks).toString("utf8") }));
  });
}

export function lastLines(text: string, n: number): string {
  return text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .slice(-n)
    .map((l) => `  ${l}`)
    .join("\n");
}

function listWheels(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".whl"))
    .sort();
}

/**
 * Downloads the wheels of `requirementsFile` for the hosts into a directory (the cache's, or
 * `scratch`), or reuses a complete cached download of the same lock. Throws ArtifactError
 * saying what to do when pip fails.
 */
export async function hostWheels(requirementsFile: string, scratch: string, opts: WheelOptions): Promise<Wheelhouse> {
  const tree = readRequirements(requirementsFile);
  const locked = isHashLocked(tree);
  const findLinks = opts.findLinks ? path.resolve(opts.cwd, opts.findLinks) : undefined;
  if (findLinks !== undefined && !fs.existsSync(findLinks)) {
    throw new ArtifactError(`--find-links directory not found: ${findLinks}`);
  }
  // Keyed by everything that decides the download: the lock's text (and what it includes), the
  // target, and any local wheel dir's listing. Only locked files: an unlocked one may resolve
  // to newer versions tomorrow.
  const key = sha256Hex(
    JSON.stringify({
      v: 1,
      target: targetArgs(),
      files: tree.files.map((f) => f.text),
      findLinks: findLinks ? listWheels(findLinks) : null,
      noIndex: !!opts.noIndex,
    }),
  );
  const useCache = locked && opts.cacheDir !== "";
  const cached = path.join(opts.cacheDir, key);
  const hashes = new Set(tree.requirements.flatMap((r) => r.hashes));
  if (useCache && fs.existsSync(path.join(cached, ".complete"))) {
    const wheels = listWheels(cached);
    // A cache is not a trust anchor: every wheel must still match a hash of the lock.
    const bad = wheels.filter((w) => !hashes.has(sha256Hex(fs.readFileSync(path.join(cached, w)))));
    if (bad.length === 0 && wheels.length > 0) return { dir: cached, wheels, cached: true };
    fs.rmSync(cached, { recursive: true, force: true });
  }

  const dest = useCache ? `${cached}.partial-${process.pid}` : path.join(scratch, "wheelhouse");
  fs.rmSync(dest, { recursive: true, force: true });
  fs.mkdirSync(dest, { recursive: true });
  const args = ["-m", "pip", "download", "--disable-pip-version-check", "--no-input", "--dest", dest, ...targetArgs()];
  if (opts.noIndex) args.push("--no-index");
  if (findLinks !== undefined) args.push("--find-links", findLinks);
  if (locked) args.push("--require-hashes");
  args.push("-r", requirementsFile);
  const pip = await run(opts.python, args, opts.cwd);
  if (pip.code !== 0) {
    if (useCache) fs.rmSync(dest, { recursive: true, force: true });
    const explained = explainPipFailure(pip.output, path.relative(opts.cwd, requirementsFile) || requirementsFile);
    if (explained) throw new ArtifactError(explained);
    if (/No module named pip/.test(pip.output)) {
      throw new ArtifactError(
        `${opts.python} has no pip: install it (Debian: apt-get install python3-pip) or pass --python`,
      );
    }
    throw new ArtifactError(`pip download failed (exit ${pip.code}); its last lines:\n${lastLines(pip.output, 12)}`);
  }
  const strays = fs.readdirSync(dest).filter((f) => !f.endsWith(".whl"));
  if (strays.length > 0) throw new ArtifactError(`pip download left files that are not wheels: ${strays.join(", ")}`);
  const wheels = listWheels(dest);
  if (!useCache) return { dir: dest, wheels, cached: false };
  fs.writeFileSync(path.join(dest, ".complete"), `${requirementsFile}\n`);
  try {
    fs.renameSync(dest, cached);
  } catch {
    // Another build of the same lock finished first: use its copy, drop ours.
    fs.rmSync(dest, { recursive: true, force: true });
  }
  return { dir: cached, wheels: listWheels(cached), cached: false };
}
