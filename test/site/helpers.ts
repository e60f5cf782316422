// Real processes for the site tests: commands with bounded run time, a throwaway PostgreSQL
// cluster, gunicorn on a unix socket, HTTP over that socket. Every child is tracked so the
// root hook (hooks.ts) can stop what a failing test left behind.
import * as assert from "assert";
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as net from "net";
import * as os from "os";
import * as path from "path";

export const ROOT = path.resolve(__dirname, "..", "..");
export const SITE_DIR = path.join(ROOT, "examples", "site");
export const SYSTEM_PYTHON = "/usr/bin/python3";
const PG_BIN = "/usr/lib/postgresql/15/bin";

const live = new Set<ChildProcess>();
const clusters = new Set<PgCluster>();
const tmpDirs: string[] = [];

export function tmpDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `greenlight-${prefix}-`));
  tmpDirs.push(dir);
  return dir;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  uid?: number;
  gid?: number;
  input?: string;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs to completion (killed after timeoutMs); never throws on a non-zero exit. */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      uid: opts.uid,
      gid: opts.gid,
      stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    live.add(child);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on("data", (c: Buffer) => out.push(c));
    child.stderr?.on("data", (c: Buffer) => err.push(c));
    if (child.stdin) {
      // A child may exit before reading its input; that is its business, not a test failure.
      child.stdin.on("error", () => undefined);
      child.stdin.end(opts.input);
    }
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 120_000);
    child.on("error", (e) => {
      clearTimeout(timer);
      live.delete(child);
      reject(e);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      live.delete(child);
      const stderr = Buffer.concat(err).toString() + (signal ? `\n[killed by ${signal}]` : "");
      resolve({ code, stdout: Buffer.concat(out).toString(), stderr });
    });
  });
}

/** Like run, but a non-zero exit fails the test with the command's output. */
export async function ok(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  assert.strictEqual(r.code, 0, `${cmd} ${args.join(" ")} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** Polls check() until it returns a value, at most timeoutMs; the wait between tries is short. */
export async function waitFor<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}: ${last ?? ""}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// HTTP over a unix socket

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export function request(
  socketPath: string,
  method: string,
  urlPath: string,
  headers: Record<string, string>,
  body?: Buffer,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method, path: urlPath, headers, timeout: 15_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`${method} ${urlPath} timed out`)));
    req.on("error", reject);
    req.end(body);
  });
}

export function multipart(
  fields: Record<string, string>,
  file?: { field: string; filename: string; data: Buffer },
): { body: Buffer; contentType: string } {
  const boundary = "----greenlight-test-boundary";
  const parts: Buffer[] = [];
  for (const [name, value] of Object.entries(fields)) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`));
  }
  if (file) {
    parts.push(
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="${file.field}"; filename="${file.filename}"\r\n` +
          "Content-Type: application/octet-stream\r\n\r\n",
      ),
      file.data,
      Buffer.from("\r\n"),
    );
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(parts), contentType: `multipart/form-data; boundary=${boundary}` };
}

// ---------------------------------------------------------------------------------------------
// gunicorn

export class Gunicorn {
  private output: Buffer[] = [];
  private exited: { code: number | null; signal: string | null } | undefined;
  private child: ChildProcess;

  constructor(
    readonly venv: string,
    readonly appDir: string,
    readonly wsgi: string,
    readonly socket: string,
  ) {
    this.child = spawn(
      path.join(venv, "bin", "gunicorn"),
      ["--bind", `unix:${socket}`, "--workers", "2", "--access-logfile", "-", "--graceful-timeout", "5", wsgi],
      { cwd: appDir, stdio: ["ignore", "pipe", "pipe"] },
    );
    live.add(this.child);
    this.child.stdout?.on("data", (c: Buffer) => this.output.push(c));
    this.child.stderr?.on("data", (c: Buffer) => this.output.push(c));
    this.child.on("exit", (code, signal) => {
      this.exited = { code, signal };
      live.delete(this.child);
    });
  }

  log(): string {
    return Buffer.concat(this.output).toString();
  }

  /** Until a worker answers the health path, failing at once if gunicorn dies. */
  async ready(healthPath = "/healthz"): Promise<void> {
    await waitFor("gunicorn to answer", 30_000, async () => {
      if (this.exited) throw new Error(`gunicorn exited (${JSON.stringify(this.exited)}):\n${this.log()}`);
      const r = await request(this.socket, "GET", healthPath, { Host: "127.0.0.1" });
      return r.status === 200 ? true : undefined;
    }).catch((e: Error) => {
      throw new Error(`${e.message}\n--- gunicorn output ---\n${this.log()}`);
    });
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((resolve) => this.child.once("exit", () => resolve()));
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 10_000);
    await gone;
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------
// A throwaway PostgreSQL 15 cluster on 127.0.0.1, TLS-only for TCP like RDS with sslmode=require.

export class PgCluster {
  private started = false;
  private constructor(
    readonly root: string,
    readonly port: number,
    private readonly ids: { uid?: number; gid?: number },
  ) {}

  get data(): string {
    return path.join(this.root, "data");
  }
  get socketDir(): string {
    return path.join(this.root, "sock");
  }

  static async create(): Promise<PgCluster> {
    // initdb refuses to run as root: as root, the cluster belongs to the postgres user.
    let ids: { uid?: number; gid?: number } = {};
    if (process.getuid?.() === 0) {
      const uid = Number((await ok("id", ["-u", "postgres"])).stdout.trim());
      const gid = Number((await ok("id", ["-g", "postgres"])).stdout.trim());
      ids = { uid, gid };
    }
    // Not under tmpDir(): that one is 0700 root, which the postgres user cannot traverse.
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "greenlight-pg-"));
    tmpDirs.push(root);
    if (ids.uid !== undefined) fs.chownSync(root, ids.uid, ids.gid!);
    return new PgCluster(root, await freePort(), ids);
  }

  private as(cmd: string, args: string[], timeoutMs = 60_000): Promise<RunResult> {
    return ok(cmd, args, { cwd: this.root, ...this.ids, timeoutMs, env: { ...process.env, LC_ALL: "C.UTF-8" } });
  }

  async start(): Promise<void> {
    await this.as("mkdir", ["-m", "0700", this.socketDir]);
    await this.as(`${PG_BIN}/initdb`, ["-D", this.data, "-U", "postgres", "-E", "UTF8", "--no-sync", "-A", "trust"]);
    await this.as("openssl", [
      "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
      "-keyout", path.join(this.root, "server.key"), "-out", path.join(this.root, "server.crt"),
    ]); // prettier-ignore
    await this.as("chmod", ["0600", path.join(this.root, "server.key")]);
    // Superuser over the private socket only; the app over TCP with TLS and a password only.
    fs.writeFileSync(
      path.join(this.data, "pg_hba.conf"),
      "local all postgres trust\nhostssl all app 127.0.0.1/32 scram-sha-256\n",
    );
    fs.appendFileSync(
      path.join(this.data, "postgresql.conf"),
      [
        "listen_addresses = '127.0.0.1'",
        `port = ${this.port}`,
        `unix_socket_directories = '${this.socketDir}'`,
        "ssl = on",
        `ssl_cert_file = '${path.join(this.root, "server.crt")}'`,
        `ssl_key_file = '${path.join(this.root, "server.key")}'`,
        "fsync = off",
        "",
      ].join("\n"),
    );
    this.started = true;
    clusters.add(this);
    // -w: pg_ctl itself polls until the server accepts connections (bounded by -t).
    await this.as(`${PG_BIN}/pg_ctl`, ["-D", this.data, "-l", path.join(this.root, "log"), "-w", "-t", "60", "start"]);
  }

  async psql(sql: string, db = "postgres"): Promise<string> {
    const r = await this.as(`${PG_BIN}/psql`, [
      "-h", this.socketDir, "-p", String(this.port), "-U", "postgres", "-d", db,
      "-v", "ON_ERROR_STOP=1", "-At", "-c", sql,
    ]); // prettier-ignore
    return r.stdout.trim();
  }

  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    clusters.delete(this);
    await this.as(`${PG_BIN}/pg_ctl`, ["-D", this.data, "-m", "immediate", "-w", "-t", "60", "stop"]);
  }

  /** Stops the server and deletes the cluster. */
  async destroy(): Promise<void> {
    await this.stop();
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Cleanup used by the root hook.

export async function cleanup(): Promise<void> {
  // A postmaster is a daemon (not our child): stop it before its data dir goes.
  for (const cluster of [...clusters]) await cluster.stop().catch(() => undefined);
  for (const child of live) child.kill("SIGKILL");
  live.clear();
  for (const dir of tmpDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}
