// Which files of a site dir are its source. In a git work tree: what git tracks plus what it
// would add (untracked files that no ignore rule covers), i.e. `git ls-files --cached --others
// --exclude-standard`. Elsewhere: a walk that honours every .gitignore on the way (the `ignore`
// package, git's own matching rules). Either way isExcluded() (secrets, host state, bytecode)
// has the last word, and symlinks are resolved, skipped or refused, never shipped as links: the
// hosts' unpack accepts regular files and directories only.
import { spawnSync } from "child_process";
import * as fs from "fs";
import ignore, { Ignore } from "ignore";
import * as path from "path";
import { ArtifactError, isExcluded } from "./artifact";

export interface SourceFile {
  /** relative to the site dir, "/" separators; directories end with "/" */
  rel: string;
  /** where the bytes come from (a symlink's resolved target for a resolved link) */
  abs: string;
  kind: "file" | "dir";
  mode: number;
}

export interface CollectedSource {
  files: SourceFile[];
  /** what was skipped or resolved, for the user to read */
  notes: string[];
  /** "git": from git ls-files; "gitignore": from a walk with .gitignore rules */
  via: "git" | "gitignore";
}

/** Names that are virtualenvs by convention; a directory holding pyvenv.cfg is one too. */
const VENV_NAMES = new Set([".venv", "venv", ".virtualenv", "virtualenv", "env"]);

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

function isVenvDir(abs: string): boolean {
  try {
    return fs.statSync(path.join(abs, "pyvenv.cfg")).isFile();
  } catch {
    return false;
  }
}

function inside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel === "" || (!rel.startsWith("..") && !path.isAbsolute(rel));
}

// Only the executable bit carries over (git tracks nothing else), so a checkout's umask cannot
// change the archive.
function fileMode(st: fs.Stats): number {
  return st.mode & 0o111 ? 0o755 : 0o644;
}

/** git ls-files of the dir, or undefined when the dir is not in a git work tree (or no git). */
function gitFiles(dir: string): string[] | undefined {
  const probe = spawnSync("git", ["rev-parse", "--is-inside-work-tree"], { cwd: dir, encoding: "utf8" });
  if (probe.error || probe.status !== 0 || probe.stdout.trim() !== "true") return undefined;
  const r = spawnSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], {
    cwd: dir,
    maxBuffer: 256 * 1024 * 1024,
  });
  if (r.error || r.status !== 0) {
    throw new ArtifactError(`git ls-files failed in ${dir}: ${(r.stderr ?? "").toString().trim() || r.error?.message}`);
  }
  return r.stdout
    .toString("utf8")
    .split("\0")
    .filter((p) => p !== "");
}

/** .gitignore rules from the site dir down: each file's rules apply to paths below it. */
class IgnoreRules {
  private readonly byDir = new Map<string, Ignore | null>();
  constructor(private readonly root: string) {}

  private rulesOf(relDir: string): Ignore | null {
    if (!this.byDir.has(relDir)) {
      let rules: Ignore | null = null;
      try {
        rules = ignore().add(fs.readFileSync(path.join(this.root, relDir, ".gitignore"), "utf8"));
      } catch {
        rules = null;
      }
      this.byDir.set(relDir, rules);
    }
    return this.byDir.get(relDir)!;
  }

  /** rel: "/"-separated, a directory's with a trailing "/". */
  ignored(rel: string): boolean {
    const parts = rel.replace(/\/$/, "").split("/");
    for (let i = 0; i < parts.length; i++) {
      const base = parts.slice(0, i).join("/");
      const rules = this.rulesOf(base);
      if (rules === null) continue;
      const below = rel.slice(base === "" ? 0 : base.length + 1);
      if (rules.ignores(below)) return true;
    }
    return false;
  }
}

/**
 * The site's source files, sorted by path bytes, directories included (each once, parents
 * first). `skip`: absolute paths left out (the artifact being written, earlier artifacts).
 */
export function collectSource(dir: string, skip: (abs: string) => boolean = () => false): CollectedSource {
  const root = fs.realpathSync(dir);
  const notes: string[] = [];
  const out = new Map<string, SourceFile>();
  const rules = new IgnoreRules(root);
  const venvs = new Map<string, boolean>();

  const addDirs = (rel: string): void => {
    const parts = rel.split("/");
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join("/") + "/";
      if (!out.has(d)) out.set(d, { rel: d, abs: path.join(root, d), kind: "dir", mode: 0o755 });
    }
  };
  /** Whether rel lies in a directory that is a virtualenv (git mode: untracked venvs). */
  const inVenv = (rel: string): string | undefined => {
    const parts = rel.split("/");
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join("/");
      if (!venvs.has(d)) {
        const isVenv = isVenvDir(path.join(root, d));
        venvs.set(d, isVenv);
        if (isVenv) notes.push(`skipped ${d}/: a virtualenv (the hosts build theirs from the wheelhouse)`);
      }
      if (venvs.get(d)) return d;
    }
    return undefined;
  };

  // The walk of a directory (the gitignore mode, and the inside of a symlinked directory).
  // `seen` holds the real paths on the way down, so a link back up cannot loop.
  const walk = (absDir: string, relDir: string, seen: Set<string>): void => {
    for (const name of fs.readdirSync(absDir).sort(byteOrder)) {
      visit(path.join(absDir, name), relDir + name, seen, true);
    }
  };

  const visit = (abs: string, rel: string, seen: Set<string>, walking: boolean): void => {
    if (isExcluded(rel) || skip(abs)) return;
    let st: fs.Stats;
    try {
      st = fs.lstatSync(abs);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return; // tracked but deleted: git status says so
      throw e;
    }
    if (walking && rules.ignored(st.isDirectory() ? rel + "/" : rel)) return;
    if (st.isSymbolicLink()) {
      const link = fs.readlinkSync(abs);
      const base = rel.split("/").pop()!;
      let target: string;
      try {
        target = fs.realpathSync(abs);
      } catch {
        throw new ArtifactError(
          `symlink ${rel} -> ${link} points nowhere: remove it, or ignore it in .gitignore (in ${root})`,
        );
      }
      const tst = fs.statSync(target);
      if (tst.isDirectory() && (VENV_NAMES.has(base) || isVenvDir(target))) {
        notes.push(`skipped ${rel}: a symlink to a virtualenv (the hosts build theirs from the wheelhouse)`);
        return;
      }
      if (!inside(root, target)) {
        throw new ArtifactError(
          `symlink ${rel} -> ${link} leads outside the site (to ${target}): the hosts would not have it; ` +
            "copy what it points to into the site, or ignore the link in .gitignore",
        );
      }
      notes.push(`resolved symlink ${rel} -> ${link}: shipped as a copy (hosts take no links)`);
      if (tst.isDirectory()) {
        if (seen.has(target)) throw new ArtifactError(`symlink ${rel} -> ${link} makes a loop`);
        addDirs(rel + "/x");
        walk(target, rel + "/", new Set([...seen, target]));
      } else if (tst.isFile()) {
        addDirs(rel);
        out.set(rel, { rel, abs: target, kind: "file", mode: fileMode(tst) });
      } else {
        throw new ArtifactError(`symlink ${rel} -> ${link} is not a file or directory`);
      }
      return;
    }
    if (st.isDirectory()) {
      if (isVenvDir(abs)) {
        notes.push(`skipped ${rel}/: a virtualenv (the hosts build theirs from the wheelhouse)`);
        return;
      }
      if (walking) {
        addDirs(rel + "/x");
        walk(abs, rel + "/", new Set([...seen, fs.realpathSync(abs)]));
      }
      return;
    }
    if (!st.isFile()) throw new ArtifactError(`not a regular file, directory or symlink: ${path.join(root, rel)}`);
    if (!walking && inVenv(rel) !== undefined) return;
    addDirs(rel);
    out.set(rel, { rel, abs, kind: "file", mode: fileMode(st) });
  };

  const listed = gitFiles(root);
  if (listed !== undefined) {
    for (const rel of listed.sort(byteOrder)) {
      if (isExcluded(rel)) continue;
      const abs = path.join(root, rel);
      // A submodule is listed as its directory: walk it like a plain tree.
      visit(abs, rel, new Set([root]), fs.existsSync(abs) && fs.lstatSync(abs).isDirectory());
    }
  } else {
    walk(root, "", new Set([root]));
  }
  const files = [...out.values()].sort((a, b) => byteOrder(a.rel, b.rel));
  return { files, notes, via: listed !== undefined ? "git" : "gitignore" };
}
