// Runs one command over SSH the way @pulumi/command 1.x's `remote.Command` does with Go's
// x/crypto/ssh: dial with retries (dialErrorLimit attempts, perDialTimeout each, a short
// growing delay between them), optionally through a bastion (a direct-tcpip channel from
// the proxy to the target, SSH over it), one session, `session.Run(command)` with stdin
// piped and closed, stdout and stderr captured, the exit status returned.
//
// Deliberate difference: a host key that does not match the pinned `hostKey` fails at
// once with HostKeyMismatchError. pulumi-command would count it as one more failed dial
// and retry until dialErrorLimit, with the same final outcome: no command runs.
import { createHash } from "crypto";
import { Client, ClientChannel, ConnectConfig, utils } from "ssh2";
import { Duplex } from "stream";
import { StringDecoder } from "string_decoder";
import { constants } from "os";

export interface Connection {
  host: string;
  port?: number;
  user?: string;
  privateKey?: string;
  hostKey?: string;
  dialErrorLimit?: number;
  perDialTimeout?: number;
  proxy?: Omit<Connection, "proxy">;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class HostKeyMismatchError extends Error {
  constructor(
    readonly host: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`ssh: host key mismatch for ${host}: expected ${expected}, server offered ${actual}`);
    this.name = "HostKeyMismatchError";
  }
}

// pulumi's retry.Until defaults: first delay 100 ms, x1.5 each time, at most 5 s.
const FIRST_DELAY_MS = 100;
const BACKOFF = 1.5;
const MAX_DELAY_MS = 5_000;

function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

/** The wire blob of an authorized_keys-style public key ("ssh-ed25519 AAAA... comment"). */
function keyBlob(publicKey: string): Buffer {
  const parsed = utils.parseKey(publicKey.trim());
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key || key instanceof Error) throw new Error(`hostKey is not an SSH public key: ${key?.message ?? "empty"}`);
  return key.getPublicSSH();
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** One handshake + authentication, over a fresh TCP connection or over `sock`. */
function connectOnce(conn: Omit<Connection, "proxy">, sock?: Duplex): Promise<Client> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    const expected = conn.hostKey ? keyBlob(conn.hostKey) : undefined;
    let mismatch: HostKeyMismatchError | undefined;
    const perDial = conn.perDialTimeout ?? 15;
    const cfg: ConnectConfig = {
      host: conn.host,
      port: conn.port ?? 22,
      username: conn.user ?? "root",
      privateKey: conn.privateKey,
      // 0 means no maximum in pulumi-command; ssh2 wants a number.
      readyTimeout: perDial > 0 ? perDial * 1000 : 2 ** 31 - 1,
      keepaliveInterval: 0,
      sock,
      hostVerifier: (key: Buffer): boolean => {
        if (!expected || key.equals(expected)) return true;
        mismatch = new HostKeyMismatchError(conn.host, fingerprint(expected), fingerprint(key));
        return false;
      },
    };
    let settled = false;
    client.once("ready", () => {
      settled = true;
      resolve(client);
    });
    client.once("error", (err) => {
      if (settled) return;
      settled = true;
      client.end();
      reject(mismatch ?? err);
    });
    client.once("close", () => {
      if (settled) return;
      settled = true;
      reject(mismatch ?? new Error(`ssh: connection to ${conn.host} closed during handshake`));
    });
    try {
      client.connect(cfg);
    } catch (e) {
      settled = true;
      reject(e);
    }
  });
}

/** Retries like pulumi-command's dialWithRetry; never retries a host key mismatch. */
async function withRetry<T>(what: string, limit: number, attempt: () => Promise<T>): Promise<T> {
  let delay = FIRST_DELAY_MS;
  for (let dials = 1; ; dials++) {
    try {
      return await attempt();
    } catch (e) {
      if (e instanceof HostKeyMismatchError) throw e;
      if (limit > -1 && dials > limit) {
        const err = e instanceof Error ? e : new Error(String(e));
        throw new Error(`${what}: after ${dials - 1} failed attempts: ${err.message}`, { cause: err });
      }
    }
    await sleep(delay);
    delay = Math.min(delay * BACKOFF, MAX_DELAY_MS);
  }
}

function forwardOut(proxy: Client, host: string, port: number): Promise<ClientChannel> {
  return new Promise((resolve, reject) => {
    // Go's client.Dial sends 0.0.0.0:0 as the originator, as does this.
    proxy.forwardOut("0.0.0.0", 0, host, port, (err, stream) => (err ? reject(err) : resolve(stream)));
  });
}

export async function dial(conn: Connection): Promise<{ client: Client; proxy?: Client }> {
  const limit = conn.dialErrorLimit ?? 10;
  if (!conn.proxy) {
    return { client: await withRetry("Dial", limit, () => connectOnce(conn)) };
  }
  const proxyConn = conn.proxy;
  const proxy = await withRetry("Dial proxy", proxyConn.dialErrorLimit ?? 10, () => connectOnce(proxyConn)).catch(
    (e: unknown) => {
      if (e instanceof HostKeyMismatchError) throw e;
      throw new Error(`proxy: ${(e as Error).message}`, { cause: e });
    },
  );
  try {
    const client = await withRetry("Dial from proxy", limit, async () => {
      const stream = await forwardOut(proxy, conn.host, conn.port ?? 22);
      return connectOnce(conn, stream);
    });
    return { client, proxy };
  } catch (e) {
    proxy.end();
    if (e instanceof HostKeyMismatchError) throw e;
    throw new Error(`proxy: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Runs `command` in one session. Resolves with the exit status whatever it is (pulumi
 * fails the resource on a non-zero one); rejects when it cannot connect or run at all.
 * pulumi-command's stdout/stderr outputs drop one trailing newline; this returns them raw.
 */
export async function runRemote(
  conn: Connection,
  command: string,
  opts: {
    stdin?: string;
    timeoutMs?: number;
    onOutput?: (chunk: string, stream: "stdout" | "stderr") => void;
    /**
     * Fault injection: when it fires, the TCP connection (and the proxy's) is destroyed at once,
     * as a network that drops it would, and the call rejects with "ssh: connection dropped".
     */
    drop?: AbortSignal;
  } = {},
): Promise<RunResult> {
  let timer: NodeJS.Timeout | undefined;
  let done = false;
  const open: Client[] = [];
  const closeAll = (): void => {
    for (const c of open) c.end();
  };
  const dropped = new Promise<never>((_, reject) => {
    const drop = () => {
      for (const c of open) c.destroy();
      reject(new Error(`ssh: ${conn.host}: connection dropped`));
    };
    if (opts.drop?.aborted) drop();
    else opts.drop?.addEventListener("abort", drop, { once: true });
  });
  dropped.catch(() => undefined);
  const work = (async (): Promise<RunResult> => {
    const { client, proxy } = await dial(conn);
    open.push(client, ...(proxy ? [proxy] : []));
    // The timeout may have fired while dialling: nothing may run after the caller gave up.
    if (done) throw new Error("ssh: cancelled");
    return await session(client, command, opts);
  })();
  const timeout = new Promise<never>((_, reject) => {
    if (opts.timeoutMs === undefined) return;
    timer = setTimeout(
      () => reject(new Error(`ssh: ${conn.host}: command did not finish in ${opts.timeoutMs} ms`)),
      opts.timeoutMs,
    );
  });
  try {
    return await Promise.race([work, timeout, ...(opts.drop ? [dropped] : [])]);
  } finally {
    done = true;
    if (timer) clearTimeout(timer);
    closeAll();
    work.then(closeAll, () => undefined);
  }
}

function session(
  client: Client,
  command: string,
  opts: { stdin?: string; onOutput?: (chunk: string, stream: "stdout" | "stderr") => void },
): Promise<RunResult> {
  return new Promise<RunResult>((resolve, reject) => {
    client.exec(command, (err, stream) => {
      if (err) {
        reject(err);
        return;
      }
      const decoders = { stdout: new StringDecoder("utf8"), stderr: new StringDecoder("utf8") };
      const buf = { stdout: "", stderr: "" };
      let code: number | undefined;
      let signal: string | undefined;
      const emit = (which: "stdout" | "stderr", chunk: string): void => {
        if (!chunk) return;
        buf[which] += chunk;
        opts.onOutput?.(chunk, which);
      };
      stream.on("data", (d: Buffer) => emit("stdout", decoders.stdout.write(d)));
      stream.stderr.on("data", (d: Buffer) => emit("stderr", decoders.stderr.write(d)));
      stream.on("exit", (c: number | null, sig?: string) => {
        if (typeof c === "number") code = c;
        else if (sig) signal = sig;
      });
      stream.on("close", () => {
        emit("stdout", decoders.stdout.end());
        emit("stderr", decoders.stderr.end());
        if (code !== undefined) {
          resolve({ code, ...buf });
        } else if (signal) {
          // Killed by a signal: the shell convention, so a caller sees a failure.
          const num = (constants.signals as Record<string, number>)[`SIG${signal}`] ?? 0;
          resolve({ code: 128 + num, ...buf });
        } else {
          reject(new Error(`ssh: remote command exited without exit status or exit signal\n${buf.stderr}`));
        }
      });
      // Go closes the session's stdin after copying Stdin (or nothing): the command sees EOF.
      stream.end(opts.stdin ?? "");
    });
  });
}

/**
 * Copies a local file or directory to `remotePath` over SFTP the way pulumi-command 1.2's
 * `remote.CopyToRemote` does with a FileAsset or a (path) FileArchive (provider/pkg/provider/
 * remote/copyController.go, sftpCopy): the item is copied as-is, never unpacked; a directory
 * `dir` (no trailing slash) lands in `remotePath/dir` whether or not remotePath exists, `dir/`
 * copies its contents into remotePath; missing parents are created; existing files are
 * overwritten; a file onto an existing directory goes into it. Same dialling as runRemote.
 */
export async function copyToRemote(conn: Connection, source: string, remotePath: string): Promise<void> {
  const fs = await import("fs");
  const path = await import("path");
  const { client, proxy } = await dial(conn);
  try {
    const sftp = await new Promise<import("ssh2").SFTPWrapper>((resolve, reject) =>
      client.sftp((err, s) => (err ? reject(err) : resolve(s))),
    );
    const stat = (p: string) =>
      new Promise<import("ssh2").Stats | undefined>((resolve, reject) =>
        sftp.stat(p, (err, st) => {
          if (!err) resolve(st);
          else if ((err as { code?: number }).code === 2)
            resolve(undefined); // SSH_FX_NO_SUCH_FILE
          else reject(new Error(`failed to stat remote path ${p}: ${err.message}`));
        }),
      );
    const mkdir = (p: string) =>
      new Promise<void>((resolve, reject) =>
        sftp.mkdir(p, (err) =>
          err ? reject(new Error(`failed to create remote directory ${p}: ${err.message}`)) : resolve(),
        ),
      );
    const mkdirAll = async (p: string): Promise<void> => {
      const st = await stat(p);
      if (st) {
        if (!st.isDirectory()) throw new Error(`remote path ${p} exists but is not a directory`);
        return;
      }
      const parent = path.posix.dirname(p);
      if (parent !== p) await mkdirAll(parent);
      await mkdir(p);
    };
    const copyFile = (local: string, dest: string) =>
      new Promise<void>((resolve, reject) => {
        const out = sftp.createWriteStream(dest);
        out.on("error", (e: Error) =>
          reject(new Error(`failed to copy file ${local} to remote path ${dest}: ${e.message}`)),
        );
        out.on("close", () => resolve());
        fs.createReadStream(local).on("error", reject).pipe(out);
      });
    const copyDir = async (local: string, dest: string): Promise<void> => {
      for (const entry of fs.readdirSync(local, { withFileTypes: true })) {
        const from = path.join(local, entry.name);
        const to = path.posix.join(dest, entry.name);
        if (entry.isDirectory()) {
          const st = await stat(to);
          if (!st) await mkdir(to);
          else if (!st.isDirectory()) throw new Error(`remote path ${to} exists but is not a directory`);
          await copyDir(from, to);
        } else {
          await copyFile(from, to);
        }
      }
    };

    const src = fs.statSync(source);
    let dest = remotePath;
    const destStat = await stat(dest);
    if (src.isDirectory()) {
      if (!destStat) await mkdirAll(dest);
      else if (!destStat.isDirectory()) throw new Error(`remote path ${dest} exists but is not a directory`);
      if (!source.endsWith("/")) {
        dest = path.posix.join(dest, path.basename(source));
        const st = await stat(dest);
        if (st && !st.isDirectory()) throw new Error(`remote path ${dest} exists but is not a directory`);
        if (!st) await mkdir(dest);
      }
      await copyDir(source, dest);
    } else {
      if (destStat?.isDirectory()) dest = path.posix.join(dest, path.basename(source));
      else if (!destStat) await mkdirAll(path.posix.dirname(dest));
      await copyFile(source, dest);
    }
    sftp.end();
  } finally {
    client.end();
    proxy?.end();
  }
}
