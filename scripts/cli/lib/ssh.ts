// SSH for the day-to-day commands (manage, logs, status), with ssh2: the host key of every
// machine pinned to the one the stack generated (a mismatch is refused before anything runs,
// never retried or "accepted"), private hosts reached through the bastion (a direct-tcpip
// channel, as ProxyJump and the release steps do), one session per command. Interactive
// sessions get a pseudo-terminal sized like the user's and the terminal in raw mode.
import { createHash } from "crypto";
import { Client, ClientChannel, ConnectConfig, utils } from "ssh2";
import { Duplex } from "stream";
import type { OpsConnection } from "../../../components/ops";
import { CliError } from "./stack";

function keyBlob(publicKey: string): Buffer {
  const parsed = utils.parseKey(publicKey.trim());
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key || key instanceof Error) throw new CliError(`the pinned host key is not an SSH public key: ${publicKey}`);
  return key.getPublicSSH();
}

const fingerprint = (blob: Buffer) => `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;

function connectOnce(conn: Omit<OpsConnection, "proxy">, what: string, sock?: Duplex): Promise<Client> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    const expected = keyBlob(conn.hostKey);
    let mismatch: CliError | undefined;
    const cfg: ConnectConfig = {
      host: conn.host,
      port: conn.port,
      username: conn.user,
      privateKey: conn.privateKey,
      readyTimeout: 20_000,
      keepaliveInterval: 15_000,
      sock,
      hostVerifier: (key: Buffer): boolean => {
        if (key.equals(expected)) return true;
        mismatch = new CliError(
          `host key mismatch for ${what} (${conn.host}): the stack pins ${fingerprint(expected)}, the server offered ` +
            `${fingerprint(key)}; refusing to connect (a replaced machine whose new key the stack does not know yet, or ` +
            `someone in between: check pulumi stack output knownHosts)`,
        );
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
      reject(mismatch ?? new CliError(`cannot reach ${what} (${conn.user}@${conn.host}): ${err.message}`));
    });
    client.once("close", () => {
      if (settled) return;
      settled = true;
      reject(mismatch ?? new CliError(`${what} (${conn.host}) closed the connection during the handshake`));
    });
    client.connect(cfg);
  });
}

/** A connection to the target (through the proxy when there is one); close() ends both. */
export async function connect(conn: OpsConnection, what: string): Promise<{ client: Client; close(): void }> {
  if (!conn.proxy) {
    const client = await connectOnce(conn, what);
    return { client, close: () => client.end() };
  }
  const proxy = await connectOnce(conn.proxy, "the bastion");
  try {
    const stream = await new Promise<ClientChannel>((resolve, reject) =>
      proxy.forwardOut("127.0.0.1", 0, conn.host, conn.port, (err, s) =>
        err
          ? reject(new CliError(`the bastion cannot reach ${what} (${conn.host}:${conn.port}): ${err.message}`))
          : resolve(s),
      ),
    );
    const client = await connectOnce(conn, what, stream);
    return {
      client,
      close: () => {
        client.end();
        proxy.end();
      },
    };
  } catch (e) {
    proxy.end();
    throw e;
  }
}

export interface Session {
  /** Resolves with the remote exit status (128 + n for a signal). */
  done: Promise<number>;
  /** Ends the session (and so the remote command's stdin), then the connections. */
  stop(): void;
}

/**
 * Runs `command` on an open connection. `interactive` allocates a pseudo-terminal and passes
 * the user's terminal through raw; otherwise `stdin` (if given) is piped in and closed at its
 * end, and `keepStdinOpen` leaves the remote stdin open until stop() (logs --follow).
 */
export function exec(
  client: Client,
  command: string,
  io: {
    stdout: (chunk: Buffer) => void;
    stderr: (chunk: Buffer) => void;
    stdin?: NodeJS.ReadableStream;
    interactive?: boolean;
    keepStdinOpen?: boolean;
  },
): Promise<Session> {
  return new Promise((resolve, reject) => {
    const tty = io.interactive ? process.stdout : undefined;
    const opts = tty
      ? { pty: { term: process.env.TERM || "xterm-256color", rows: tty.rows || 24, cols: tty.columns || 80 } }
      : {};
    client.exec(command, opts, (err, stream) => {
      if (err) {
        reject(new CliError(`the host refused the command: ${err.message}`));
        return;
      }
      let code: number | undefined;
      const cleanups: (() => void)[] = [];
      stream.on("data", io.stdout);
      stream.stderr.on("data", io.stderr);
      stream.on("exit", (c: number | null, signal?: string) => {
        code = typeof c === "number" ? c : signal ? 128 + 15 : 255;
      });
      const done = new Promise<number>((res) => {
        stream.on("close", () => {
          for (const c of cleanups.splice(0)) c();
          res(code ?? 255);
        });
      });
      if (tty && process.stdin.isTTY) {
        process.stdin.setRawMode(true);
        process.stdin.resume();
        const onData = (d: Buffer) => stream.write(d);
        const onResize = () => stream.setWindow(tty.rows, tty.columns, 0, 0);
        process.stdin.on("data", onData);
        process.stdout.on("resize", onResize);
        cleanups.push(() => {
          process.stdin.off("data", onData);
          process.stdout.off("resize", onResize);
          process.stdin.setRawMode(false);
          process.stdin.pause();
        });
      } else if (io.stdin) {
        const input = io.stdin;
        const onData = (d: Buffer) => stream.write(d);
        const onEnd = () => stream.end();
        input.on("data", onData);
        input.once("end", onEnd);
        cleanups.push(() => {
          input.off("data", onData);
          input.off("end", onEnd);
          (input as NodeJS.ReadStream).pause?.();
        });
      } else if (!io.keepStdinOpen) {
        stream.end();
      }
      resolve({ done, stop: () => stream.close() });
    });
  });
}
