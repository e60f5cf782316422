// Artifacts for the release benchmark, derived from the base site artifact (built once with the
// real package-site code) by unpacking and repacking it, which takes a fraction of a second:
//   cold(tag)  a lock of its own (a comment line, as test/rig/artifacts.ts's "new-lock" does),
//              so a host builds a new venv, exactly what new dependencies cost;
//   warm(tag)  the base lock with a new static file: another artifact and release, same venv.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { sha256File } from "../scripts/cli/lib/upload";
import { Artifact } from "../test/rig/artifacts";

async function repack(base: Artifact, outDir: string, name: string, change: (dir: string) => void): Promise<Artifact> {
  const dir = fs.mkdtempSync(path.join(outDir, `${name}-`));
  try {
    execFileSync("tar", ["-xzf", base.file, "-C", dir]);
    change(dir);
    const lockHash = await sha256File(path.join(dir, "requirements.lock"));
    const manifestFile = path.join(dir, "manifest.json");
    const manifest = JSON.parse(fs.readFileSync(manifestFile, "utf8")) as Record<string, unknown>;
    if (manifest.lockHash !== lockHash) fs.writeFileSync(manifestFile, JSON.stringify({ ...manifest, lockHash }));
    // The manifest first, as package-site writes it; then everything else the base had.
    const entries = ["manifest.json", ...fs.readdirSync(dir).filter((e) => e !== "manifest.json")];
    const file = path.join(outDir, `${name}.tar.gz`);
    execFileSync("tar", ["-czf", file, "--owner=0", "--group=0", "-C", dir, ...entries]);
    return { file, sha256: await sha256File(file), size: fs.statSync(file).size, lockHash };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** New dependencies: a lock of its own, so the venv is built. */
export function coldVariant(base: Artifact, outDir: string, tag: string): Promise<Artifact> {
  return repack(base, outDir, `cold-${tag}`, (dir) =>
    fs.appendFileSync(path.join(dir, "requirements.lock"), `# greenlight bench: a lock of its own (${tag})\n`),
  );
}

/**
 * The same artifact without the uv wheel (tools/): fetch builds venvs with python3 -m venv and
 * pip, as it did before uv (the before/after of that change, in the same run).
 */
export function pipVariant(base: Artifact, outDir: string, tag: string): Promise<Artifact> {
  return repack(base, outDir, `pip-${tag}`, (dir) =>
    fs.rmSync(path.join(dir, "tools"), { recursive: true, force: true }),
  );
}

/** New code, same dependencies: the venv of the base lock is reused. */
export function warmVariant(base: Artifact, outDir: string, tag: string): Promise<Artifact> {
  return repack(base, outDir, `warm-${tag}`, (dir) => {
    const css = path.join(dir, "app", "notes", "static", "notes");
    fs.mkdirSync(css, { recursive: true });
    fs.writeFileSync(path.join(css, `bench-${tag}.css`), `/* greenlight bench ${tag} */\nbody { color: #135; }\n`);
  });
}
