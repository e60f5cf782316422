// The installer the hosts build venvs with: uv, from its PyPI wheel (a static binary in the
// wheel's scripts), pinned by version and sha256 here. package-site puts the wheel in the
// artifact (tools/); fetch extracts the binary once per host into shared/tools/uv-<sha256>/
// and builds each new venv with `uv venv` + `uv pip install` from the wheelhouse, offline and
// hash-checked, in a fraction of pip's time. An artifact without it (GREENLIGHT_INSTALLER=pip, or
// no way to download the wheel) still works: fetch falls back to python3 -m venv and pip.
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { sha256Hex } from "./artifact";
import { lastLines, targetArgs } from "./wheels";

export const UV = {
  version: "0.13.9",
  filename: "uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
  sha256: "d7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19",
} as const;

export interface InstallerOptions {
  python: string;
  /** "" for no cache (the wheel is downloaded into `scratch`); else the tools' cache is used. */
  cacheDir: string;
  findLinks?: string;
  noIndex?: boolean;
  /** Scratch directory (used when there is no cache). */
  scratch: string;
  note: (m: string) => void;
}

/** ~/.cache/greenlight/tools (GREENLIGHT_TOOLS_CACHE overrides): one download per machine. */
export function toolsCacheDir(): string {
  const env = process.env.GREENLIGHT_TOOLS_CACHE;
  if (env) return env;
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache");
  return path.join(base, "greenlight", "tools");
}

function run(cmd: string, args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    const chunks: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => chunks.push(c));
    child.stderr.on("data", (c: Buffer) => chunks.push(c));
    child.on("error", (e) => resolve({ code: null, output: e.message }));
    child.on("close", (code) => resolve({ code, output: Buffer.concat(chunks).toString("utf8") }));
  });
}

/**
 * The uv wheel for the artifact's tools/, from the cache or PyPI (pip download, hash-checked),
 * or undefined (with a note saying why) when it cannot be had or GREENLIGHT_INSTALLER=pip.
 */
export async function installerWheel(opts: InstallerOptions): Promise<{ filename: string; file: string } | undefined> {
  if (process.env.GREENLIGHT_INSTALLER === "pip") {
    opts.note("GREENLIGHT_INSTALLER=pip: no uv in the artifact, the hosts build venvs with pip");
    return undefined;
  }
  const dir = opts.cacheDir === "" ? opts.scratch : toolsCacheDir();
  const file = path.join(dir, UV.filename);
  const good = (f: string) => fs.existsSync(f) && sha256Hex(fs.readFileSync(f)) === UV.sha256;
  if (good(file)) return { filename: UV.filename, file };
  fs.mkdirSync(dir, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "greenlight-uv-"));
  try {
    const req = path.join(tmp, "requirements.txt");
    fs.writeFileSync(req, `uv==${UV.version} --hash=sha256:${UV.sha256}\n`);
    const args = ["-m", "pip", "download", "--disable-pip-version-check", "--no-input", "--no-deps"];
    args.push("--require-hashes", "--dest", tmp, ...targetArgs());
    if (opts.noIndex) args.push("--no-index");
    if (opts.findLinks) args.push("--find-links", opts.findLinks);
    args.push("-r", req);
    const pip = await run(opts.python, args);
    const got = path.join(tmp, UV.filename);
    if (pip.code !== 0 || !good(got)) {
      opts.note(
        `no uv ${UV.version} wheel (pip download: ${lastLines(pip.output, 1).trim() || `exit ${pip.code}`}): ` +
          "the hosts build venvs with pip",
      );
      return undefined;
    }
    // Copied, then renamed: the cache may be on another filesystem than the temp dir.
    fs.copyFileSync(got, `${file}.partial-${process.pid}`);
    fs.renameSync(`${file}.partial-${process.pid}`, file);
    return { filename: UV.filename, file };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
