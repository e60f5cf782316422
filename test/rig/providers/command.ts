// Stand-in for pulumi-resource-command 1.2.1, because the Go module proxy here does not serve
// its module (scripts/dev/pulumi-toolchain.sh prints the refusal). It follows the real
// provider's source (provider/pkg/provider/remote/ at tag v1.2.1), including what surprises:
//   - `triggers` is the only replace-only input; any other change is an update.
//   - Update runs `update` if set, else `create`, and its stdout/stderr REPLACE the outputs.
//   - customTimeouts do not stop a running command (they bound dialling only): nothing here does.
//   - A failed command's error is `Process exited with status N: running "<command, Go-quoted>":
//     \n<stdout and stderr as they interleaved>`, whatever is secret.
//   - stdout and stderr lose one trailing newline; `connection` is secret.
//   - CopyToRemote copies a file or directory asset/archive over SFTP to `remotePath`
//     (a directory source without a trailing slash lands in remotePath/<its base name>).
// SSH itself is test/rig/ssh.ts, which dials like x/crypto/ssh (retries, proxy, pinned host key).
import * as fs from "fs";
import * as path from "path";
import { randomBytes } from "crypto";
import { SFTPWrapper } from "ssh2";
import { Connection, dial, runRemote } from "../ssh";
import { StandInProvider } from "./standIn";
import { Props } from "./wire";

const COMMAND = "command:remote:Command";
const COPY = "command:remote:CopyToRemote";

/** Go's %q for the strings a command is made of. */
function goQuote(s: string): string {
  return JSON.stringify(s).replace(/\\u007f/g, "\\x7f");
}

function connectionOf(i: Props): Connection {
  const c = i.connection as Props;
  const conn = (x: Props): Connection => ({
    host: String(x.host),
    port: x.port === undefined ? 22 : Number(x.port),
    user: String(x.user ?? "root"),
    privateKey: x.privateKey as string | undefined,
    hostKey: x.hostKey as string | undefined,
    dialErrorLimit: x.dialErrorLimit === undefined ? 10 : Number(x.dialErrorLimit),
    perDialTimeout: x.perDialTimeout === undefined ? 15 : Number(x.perDialTimeout),
  });
  return { ...conn(c), ...(c.proxy ? { proxy: conn(c.proxy as Props) } : {}) };
}

async function run(i: Props, command: string): Promise<{ stdout: string; stderr: string }> {
  let both = "";
  const res = await runRemote(connectionOf(i), command, {
    stdin: typeof i.stdin === "string" ? i.stdin : undefined,
    onOutput: (chunk) => (both += chunk),
  });
  if (res.code !== 0) throw new Error(`Process exited with status ${res.code}: running ${goQuote(command)}:\n${both}`);
  const trim = (s: string) => (s.endsWith("\n") ? s.slice(0, -1) : s);
  return { stdout: trim(res.stdout), stderr: trim(res.stderr) };
}

function sftpOf(client: Awaited<ReturnType<typeof dial>>["client"]): Promise<SFTPWrapper> {
  return new Promise((resolve, reject) => client.sftp((err, s) => (err ? reject(err) : resolve(s))));
}

const sftpCall = <T>(f: (cb: (err: Error | null | undefined, v?: T) => void) => void): Promise<T | undefined> =>
  new Promise((resolve, reject) => f((err, v) => (err ? reject(err) : resolve(v))));

async function isRemoteDir(s: SFTPWrapper, p: string): Promise<boolean | undefined> {
  try {
    const st = await sftpCall<import("ssh2").Stats>((cb) => s.stat(p, cb));
    return st!.isDirectory();
  } catch {
    return undefined; // does not exist
  }
}

async function mkdirAll(s: SFTPWrapper, p: string): Promise<void> {
  if ((await isRemoteDir(s, p)) !== undefined) return;
  await mkdirAll(s, path.posix.dirname(p));
  await sftpCall((cb) => s.mkdir(p, cb));
}

async function copyFile(s: SFTPWrapper, src: string, dst: string): Promise<void> {
  await sftpCall((cb) => s.fastPut(src, dst, cb));
}

async function copyDir(s: SFTPWrapper, src: string, dst: string): Promise<void> {
  if ((await isRemoteDir(s, dst)) === undefined) await sftpCall((cb) => s.mkdir(dst, cb));
  for (const e of fs.readdirSync(src, { withFileTypes: true })) {
    const from = path.join(src, e.name);
    const to = path.posix.join(dst, e.name);
    if (e.isDirectory()) await copyDir(s, from, to);
    else await copyFile(s, from, to);
  }
}

/** The local path of a FileAsset / FileArchive (a path-based source is all the real one takes). */
function sourcePath(source: Props): string {
  const p = (source.path ??
    (source as { asset?: Props }).asset?.path ??
    (source as { archive?: Props }).archive?.path) as string | undefined;
  if (!p) throw new Error("CopyToRemote: source must be a path-based file asset or archive");
  return p;
}

async function copyToRemote(i: Props): Promise<void> {
  const src = sourcePath(i.source as Props);
  const dest = String(i.remotePath);
  const { client, proxy } = await dial(connectionOf(i));
  try {
    const s = await sftpOf(client);
    const destIsDir = await isRemoteDir(s, dest);
    if (fs.statSync(src).isDirectory()) {
      if (destIsDir === undefined) await mkdirAll(s, dest);
      await copyDir(s, src, src.endsWith("/") ? dest : path.posix.join(dest, path.basename(src)));
    } else if (destIsDir) {
      await copyFile(s, src, path.posix.join(dest, path.basename(src)));
    } else {
      await mkdirAll(s, path.posix.dirname(dest));
      await copyFile(s, src, dest);
    }
    s.end();
  } finally {
    client.end();
    proxy?.end();
  }
}

export const commandStandIn: StandInProvider = {
  version: "1.2.1",
  replaces: () => ["triggers"],
  secretOutputs: () => ["connection"],
  async create(r, i) {
    const id = `${r.name}${randomBytes(4).toString("hex")}`;
    if (r.type === COPY) {
      await copyToRemote(i);
      return { id, outs: {} };
    }
    if (r.type !== COMMAND) throw new Error(`the command stand-in has no ${r.type}`);
    if (typeof i.create !== "string") return { id, outs: {} };
    return { id, outs: await run(i, i.create) };
  },
  async update(r, _id, olds, news) {
    if (r.type === COPY) {
      await copyToRemote(news);
      return { ...news };
    }
    const command = typeof news.update === "string" ? news.update : news.create;
    const base = { ...news, stdout: olds.stdout, stderr: olds.stderr };
    if (typeof command !== "string") return base;
    return { ...base, ...(await run(news, command)) };
  },
  async delete(r, _id, olds) {
    if (r.type === COMMAND && typeof olds.delete === "string") await run(olds, olds.delete);
  },
};
