// A throwaway PostgreSQL 15 cluster playing RDS for the rig hosts: reachable only over TLS
// with SCRAM passwords from the rig subnet (as RDS with rds.force_ssl), a superuser only
// through its own unix socket, everything under one temporary directory.
import { execFile, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

export interface RigPostgres {
  host: string;
  port: number;
  stop(): Promise<void>;
  createRoleAndDatabase(name: string, password: string): Promise<void>;
  /** psql -At as superuser; throws on any SQL error. */
  query(sql: string, db?: string): Promise<string>;
  dropDatabase(name: string): Promise<void>;
}

export interface StartPostgresOptions {
  listen: string;
  port?: number;
  dir?: string;
  /** Who may connect (hostssl, scram-sha-256). Default: the /24 around `listen`. */
  clientCidr?: string;
}

const PG_BIN = "/usr/lib/postgresql/15/bin";
const ENV = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C.UTF-8" };

function run(cmd: string, args: string[], input?: string, timeoutMs = 120_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { encoding: "utf8", env: ENV, timeout: timeoutMs, maxBuffer: 256 * 1024 * 1024, cwd: "/" },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${path.basename(cmd)} failed: ${stderr.trim() || err.message}`));
        else resolve(stdout);
      },
    );
    child.stdin?.on("error", () => undefined);
    child.stdin?.end(input ?? "");
  });
}

/** As OS user postgres: initdb and pg_ctl refuse root, and peer auth maps it to the superuser. */
function asPostgres(cmd: string, args: string[], input?: string): Promise<string> {
  return run("runuser", ["-u", "postgres", "--", cmd, ...args], input);
}

/** SQL identifier and string literal quoting (standard_conforming_strings is on). */
export function quoteIdent(s: string): string {
  if (s.includes("\0")) throw new Error("NUL in identifier");
  return `"${s.replace(/"/g, '""')}"`;
}
export function quoteLiteral(s: string): string {
  if (s.includes("\0")) throw new Error("NUL in literal");
  return `'${s.replace(/'/g, "''")}'`;
}

function defaultCidr(listen: string): string {
  const m = /^(\d+)\.(\d+)\.(\d+)\.\d+$/.exec(listen);
  if (!m) throw new Error(`listen must be an IPv4 address: ${listen}`);
  return `${m[1]}.${m[2]}.${m[3]}.0/24`;
}

const SHM = fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir();

/**
 * A cluster of an earlier run that died without stopping it (SIGKILL, a crash) still holds
 * its address; stop and remove every leftover cluster that listens on `listen`.
 */
function stopLeftovers(listen: string): void {
  for (const name of fs.readdirSync(SHM).filter((n) => n.startsWith("glt-pg-"))) {
    const data = path.join(SHM, name, "data");
    let conf = "";
    try {
      conf = fs.readFileSync(path.join(data, "postgresql.conf"), "utf8");
    } catch {
      continue;
    }
    if (!conf.includes(`listen_addresses = '${listen}'`)) continue;
    spawnSync("runuser", ["-u", "postgres", "--", `${PG_BIN}/pg_ctl`, "-D", data, "-m", "immediate", "-w", "stop"], {
      env: ENV,
      stdio: "ignore",
      cwd: "/",
    });
    fs.rmSync(path.join(SHM, name), { recursive: true, force: true });
  }
}

export async function startPostgres(opts: StartPostgresOptions): Promise<RigPostgres> {
  if (process.getuid?.() !== 0) throw new Error("startPostgres needs root (to run the cluster as user postgres)");
  stopLeftovers(opts.listen);
  const port = opts.port ?? 5432;
  const cidr = opts.clientCidr ?? defaultCidr(opts.listen);
  // initdb writes about a thousand files: on this machine's disk that is seconds, in RAM not.
  const base = opts.dir ?? fs.mkdtempSync(path.join(SHM, "glt-pg-"));
  fs.mkdirSync(base, { recursive: true });
  const data = path.join(base, "data");
  const sock = path.join(base, "sock");
  const log = path.join(base, "postgres.log");
  fs.mkdirSync(sock, { recursive: true });
  await run("chown", ["-R", "postgres:postgres", base]);
  fs.chmodSync(base, 0o700);

  let started = false;
  // If the test process exits without stop() (an error, Ctrl-C), the cluster goes with it.
  const onExit = () => {
    if (!started) return;
    spawnSync("runuser", ["-u", "postgres", "--", `${PG_BIN}/pg_ctl`, "-D", data, "-m", "immediate", "-w", "stop"], {
      env: ENV,
      stdio: "ignore",
      cwd: "/",
    });
    fs.rmSync(base, { recursive: true, force: true });
  };
  process.once("exit", onExit);
  const stop = async (): Promise<void> => {
    process.off("exit", onExit);
    if (started) {
      started = false;
      await asPostgres(`${PG_BIN}/pg_ctl`, ["-D", data, "-m", "fast", "-w", "stop"]).catch(() => undefined);
    }
    fs.rmSync(base, { recursive: true, force: true });
  };

  try {
    // The superuser's password is never set: it can only come in through the socket.
    await asPostgres(`${PG_BIN}/initdb`, [
      "-D",
      data,
      "-U",
      "postgres",
      "--encoding=UTF8",
      "--locale=C.UTF-8",
      "--auth-local=peer",
      "--auth-host=reject",
    ]);

    // A self-signed certificate, as RDS's CA is unknown to clients that do not fetch it:
    // sslmode=require encrypts without verifying, which is what the hosts use here.
    const key = path.join(data, "server.key");
    const crt = path.join(data, "server.crt");
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
    await run("chown", ["postgres:postgres", key, crt]);
    fs.chmodSync(key, 0o600);

    fs.appendFileSync(
      path.join(data, "postgresql.conf"),
      [
        "",
        "# greenlight test rig",
        `listen_addresses = '${opts.listen}'`,
        `port = ${port}`,
        `unix_socket_directories = '${sock}'`,
        "ssl = on",
        `ssl_cert_file = '${crt}'`,
        `ssl_key_file = '${key}'`,
        "password_encryption = 'scram-sha-256'",
        "timezone = 'UTC'",
        "default_transaction_isolation = 'read committed'",
        // Throwaway data: durability buys nothing and costs the tests time.
        "fsync = off",
        "synchronous_commit = off",
        "full_page_writes = off",
        "",
      ].join("\n"),
    );
    fs.writeFileSync(
      path.join(data, "pg_hba.conf"),
      [
        "# greenlight test rig: superuser over the socket only, everyone else TLS + SCRAM from the rig",
        "local   all   postgres   peer",
        `hostssl all   all        ${cidr}   scram-sha-256`,
        "",
      ].join("\n"),
    );

    await asPostgres(`${PG_BIN}/pg_ctl`, ["-D", data, "-l", log, "-w", "-t", "60", "start"]);
    started = true;
  } catch (e) {
    let tail = "";
    try {
      tail = fs.readFileSync(log, "utf8").split("\n").slice(-20).join("\n");
    } catch {
      // no log written
    }
    await stop();
    throw new Error(`${(e as Error).message}${tail ? `\n${tail}` : ""}`);
  }

  const query = (sql: string, db = "postgres"): Promise<string> =>
    asPostgres(
      "psql",
      ["-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", sock, "-p", String(port), "-U", "postgres", "-d", db],
      sql,
    );

  return {
    host: opts.listen,
    port,
    stop,
    query,
    async createRoleAndDatabase(name, password) {
      // Through stdin, so the password is in no process' argv.
      await query(`CREATE ROLE ${quoteIdent(name)} LOGIN PASSWORD ${quoteLiteral(password)};\n`);
      await query(`CREATE DATABASE ${quoteIdent(name)} OWNER ${quoteIdent(name)};\n`);
    },
    async dropDatabase(name) {
      await query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE);\n`);
    },
  };
}
