// A throwaway Redis playing ElastiCache for the rig hosts: Debian's redis-server, reachable
// only over TLS with an AUTH password (as ElastiCache with in-transit encryption and an AUTH
// token), on the rig's bridge, everything under one temporary directory.
import { ChildProcess, execFile, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

export interface RigRedis {
  host: string;
  port: number;
  /**
   * What the hosts' REDIS_URL holds here. The certificate is self-signed (the program's URL
   * asks ElastiCache's, which Debian's CA store trusts, to be verified): like the rig's
   * PostgreSQL with sslmode=require, this one encrypts without verifying.
   */
  url: string;
  /** Its self-signed certificate (PEM): what a host adds to its CA store to verify it. */
  certificate: string;
  stop(): Promise<void>;
}

const REDIS_SERVER = "/usr/bin/redis-server";

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { timeout: 60_000 }, (err, _o, stderr) =>
      err ? reject(new Error(`${path.basename(cmd)} failed: ${stderr.trim() || err.message}`)) : resolve(),
    ),
  );
}

export async function startRedis(opts: { listen: string; port: number; password: string }): Promise<RigRedis> {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), "greenlight-redis-"));
  const key = path.join(base, "server.key");
  const crt = path.join(base, "server.crt");
  let child: ChildProcess | undefined;
  const stop = async () => {
    const c = child;
    child = undefined;
    if (c && c.exitCode === null && c.signalCode === null) {
      await new Promise<void>((resolve) => {
        c.once("exit", () => resolve());
        c.kill("SIGTERM");
      });
    }
    fs.rmSync(base, { recursive: true, force: true });
  };
  try {
    await run("openssl", [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "7",
      "-subj",
      `/CN=${opts.listen}`,
      "-keyout",
      key,
      "-out",
      crt,
    ]);
    // The password reaches redis-server in a 0600 file, never in its argv.
    const conf = path.join(base, "redis.conf");
    fs.writeFileSync(
      conf,
      [
        "# greenlight test rig: TLS and AUTH only, nothing on disk",
        `bind ${opts.listen}`,
        "port 0",
        `tls-port ${opts.port}`,
        `tls-cert-file ${crt}`,
        `tls-key-file ${key}`,
        "tls-auth-clients no",
        `requirepass ${opts.password}`,
        `dir ${base}`,
        'save ""',
        "appendonly no",
        "daemonize no",
        "loglevel notice",
        "",
      ].join("\n"),
      { mode: 0o600 },
    );
    const c = spawn(REDIS_SERVER, [conf], { stdio: ["ignore", "pipe", "pipe"], cwd: base });
    child = c;
    let output = "";
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis-server did not start in 30 s:\n${output}`)), 30_000);
      const seen = (b: Buffer) => {
        output += b.toString("utf8");
        if (output.includes("Ready to accept connections")) {
          clearTimeout(timer);
          resolve();
        }
      };
      c.stdout!.on("data", seen);
      c.stderr!.on("data", seen);
      c.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited (${code}):\n${output}`));
      });
    });
    // Keep reading, so a full pipe never stalls it.
    c.stdout!.resume();
    c.stderr!.resume();
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    host: opts.listen,
    port: opts.port,
    url: `rediss://:${opts.password}@${opts.listen}:${opts.port}/0?ssl_cert_reqs=none`,
    certificate: fs.readFileSync(crt, "utf8"),
    stop,
  };
}
