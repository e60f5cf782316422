// A whole local environment for the host tests: namespaced Debian hosts over SSH, a
// PostgreSQL playing RDS, the S3/SSM stand-in, and each step built as the program builds it
// (components/remote.ts). Steps run exactly as the program sends them, over real SSH, after
// the scripts reach the host as the program's remote.CopyToRemote puts them there.
import { randomBytes } from "crypto";
import * as http from "http";
import * as net from "net";
import { SECRET_SPECIALS } from "../../components/secrets";
import {
  SCRIPT_DIR,
  StepCall,
  createCommand,
  scriptsCopyPath,
  scriptsId,
  steps,
  updateCommand,
} from "../../components/remote";
import { hostPolicy } from "../../components/hosts";
import { AwsStandIn, startAwsStandIn } from "./awsStandIn";

/** The instance-role credentials every test host's SSH sessions carry. */
export const HOST_ACCESS_KEY = "AKIALOCALHOSTS";
const HOST_SECRET_KEY = "local-hosts-not-a-secret";
import { HostRig, RigHost, generateHostKey, startHosts } from "./hosts";
import { RigPostgres, startPostgres } from "./postgres";
import { RigRedis, startRedis } from "./redis";
import { ensureHostPrerequisites } from "./prereqs";
import { Connection, RunResult, copyToRemote, runRemote } from "./ssh";

export const APP = "site";
export const REGION = "eu-west-1";
/** The name clients use (ALLOWED_HOSTS): what the load balancer's DNS name is on AWS. */
export const SITE_HOST = "site.elb.example";

const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

/**
 * One HTTP request from the machine (the load balancer's side) with the site's Host header.
 * `body` may be a FormData (multipart upload).
 */
export async function httpRequest(
  url: string,
  opts: { method?: string; body?: FormData; timeoutMs?: number } = {},
): Promise<{ status: number; body: string }> {
  let payload: Buffer | undefined;
  const headers: Record<string, string> = { host: SITE_HOST };
  if (opts.body) {
    const req = new Request("http://x/", { method: "POST", body: opts.body });
    payload = Buffer.from(await req.arrayBuffer());
    headers["content-type"] = req.headers.get("content-type")!;
    headers["content-length"] = String(payload.length);
  }
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: opts.method ?? "GET", headers, agent, timeout: opts.timeoutMs ?? 10_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end(payload);
  });
}

/** A value from the same alphabet the program's RandomPassword uses. */
export function generatedSecret(length: number): string {
  const alphabet = `abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789${SECRET_SPECIALS}`;
  return [...randomBytes(length)].map((b) => alphabet[b % alphabet.length]).join("");
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface World {
  rig: HostRig;
  hosts: RigHost[];
  pg: RigPostgres;
  aws: AwsStandIn;
  deployKey: { privateKey: string; publicKey: string };
  parameterPath: string;
  artifactBucket: string;
  backupBucket: string;
  /** The site's uploads (versioned), shared by every host: MEDIA_BUCKET in .env. */
  mediaBucket: string;
  /** The generated secrets, to prove they never leak. */
  secrets: { dbPassword: string; secretKey: string; adminPath: string; redisPassword?: string };
  /** Redis playing ElastiCache (startWorld's `redis`), its URL in SSM as REDIS_URL. */
  redis?: RigRedis;
  connection(host: RigHost, user: "admin" | "deploy"): Connection;
  /**
   * Copies the scripts (the directory `dir`, SCRIPT_DIR unless given) to `host` as the
   * program's remote.CopyToRemote does, to where the bootstrap of version `scriptsId(dir)`
   * installs them from.
   */
  copyScripts(host: RigHost, dir?: string): Promise<void>;
  /**
   * Runs `call`'s create command on `host` as the program would (the bootstrap as admin
   * through sudo, after copying the scripts), with a limit of `timeoutSeconds` (default 1200,
   * commandTimeoutMinutes' default).
   */
  step(
    host: RigHost,
    call: StepCall,
    opts?: { timeoutSeconds?: number; scriptsDir?: string; copy?: boolean; drop?: AbortSignal },
  ): Promise<RunResult>;
  /** Runs `call`'s update command (the step's recorded result) on `host`. */
  update(host: RigHost, call: StepCall): Promise<RunResult>;
  /** Each step as the program builds it, with this world's values. */
  values: {
    bootstrap(): StepCall;
    settings(): StepCall;
    fetch(slot: "blue" | "green", release: string, artifact: { key: string; sha256: string }): StepCall;
    backup(release: string, slot?: "blue" | "green", maintenance?: string): StepCall;
    migrate(release: string, slot?: "blue" | "green", maintenance?: string): StepCall;
    /** The migration check of `release` in `slot` (against the other slot's release), for stack "qa". */
    check(release: string, slot?: "blue" | "green", o?: { allowUnsafe?: boolean }): StepCall;
    activate(slot: "blue" | "green", release: string, healthTimeout?: number, maintenance?: string): StepCall;
    cleanup(keep: number): StepCall;
    restore(key: string, maintenance?: string, restoreId?: string): StepCall;
    maintenance(mode: "on" | "off", reason?: string): StepCall;
    /**
     * The background processes of host `host` to the live `release` (beat on host 0); `off`:
     * the delete of workers-start for `slot` and `release`.
     */
    workers(mode: "stop" | "start" | "off", slot: "blue" | "green", release: string, host: number): StepCall;
  };
  /** GET http://<host>:<port><path> from the machine (the ALB's side). */
  get(host: RigHost, port: number, path: string): Promise<{ status: number; body: string }>;
  stop(): Promise<void>;
}

/**
 * What the instance role and AWS's own endpoint give the site on a real host, for the site's
 * media storage (its .env, examples/site/greenlight_site/settings.py): the S3 stand-in's address
 * and the hosts' credentials (held to the hosts' policy there). The app runs under supervisor,
 * which starts it with a clean environment, so these come through SSM and .env like every other
 * setting; on AWS the program sets none of them (boto3 takes the instance role).
 */
export function mediaRigSettings(endpoint: string): Record<string, string> {
  return {
    MEDIA_ENDPOINT_URL: endpoint,
    MEDIA_ACCESS_KEY_ID: HOST_ACCESS_KEY,
    MEDIA_SECRET_ACCESS_KEY: HOST_SECRET_KEY,
  };
}

export interface StandIns {
  rig: HostRig;
  aws: AwsStandIn;
  /** The stand-in's port, on the rig's bridge address. */
  awsPort: number;
  pg: RigPostgres;
  stop(): Promise<void>;
}

/**
 * What plays AWS for local hosts: the host rig (hosts get fake instance-role credentials and
 * the S3/SSM endpoint through sshd, as an instance role and region would give them), the
 * S3/SSM stand-in and PostgreSQL on the rig's bridge address. Stops what it started on error.
 */
export async function startStandIns(opts: {
  prefix: string;
  subnetIndex: number;
  hosts: number;
  adminAuthorizedKey: string;
  /** A bastion too (rig.bastion), as prod's privateHosts have: it may forward to the hosts. */
  bastion?: boolean;
}): Promise<StandIns> {
  ensureHostPrerequisites();
  const bridgeIp = `10.231.${opts.subnetIndex}.1`;
  const awsPort = await freePort();
  const stops: (() => Promise<unknown>)[] = [];
  const stop = async () => {
    for (const s of stops.reverse()) await s().catch(() => undefined);
    stops.length = 0;
  };
  try {
    const rig = await startHosts({
      count: opts.hosts,
      adminAuthorizedKey: opts.adminAuthorizedKey,
      prefix: opts.prefix,
      subnetIndex: opts.subnetIndex,
      bastion: opts.bastion,
      sshdSetEnv: {
        AWS_ACCESS_KEY_ID: HOST_ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY: HOST_SECRET_KEY,
        AWS_DEFAULT_REGION: REGION,
        GL_AWS_ENDPOINT_URL: `http://${bridgeIp}:${awsPort}`,
      },
    });
    stops.push(() => rig.stop());
    const aws = await startAwsStandIn({ host: bridgeIp, port: awsPort });
    stops.push(() => aws.close());
    const pg = await startPostgres({ listen: bridgeIp });
    stops.push(() => pg.stop());
    return { rig, aws, awsPort, pg, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

export async function startWorld(opts: {
  hosts: number;
  prefix?: string;
  subnetIndex?: number;
  /** Also a prod-like bastion (rig.bastion) that forwards to the hosts. */
  bastion?: boolean;
  /** Redis (as ElastiCache) and its REDIS_URL; `settings` adds plain settings (BEAT_INTERVAL_SECONDS). */
  redis?: boolean;
  settings?: Record<string, string>;
}): Promise<World> {
  const subnetIndex = opts.subnetIndex ?? 7;
  const bridgeIp = `10.231.${subnetIndex}.1`;
  const deployKey = generateHostKey();
  const stack = "hosttest";
  const parameterPath = `/greenlight/${stack}/`;
  const standIns = await startStandIns({
    prefix: opts.prefix ?? "glh",
    subnetIndex,
    hosts: opts.hosts,
    adminAuthorizedKey: deployKey.publicKey,
    bastion: opts.bastion,
  });
  const stopAll = standIns.stop;
  try {
    const { rig, aws, pg } = standIns;

    const secrets: World["secrets"] = {
      dbPassword: generatedSecret(32),
      secretKey: generatedSecret(64),
      adminPath: generatedSecret(20),
    };
    await pg.createRoleAndDatabase(APP, secrets.dbPassword);
    const artifactBucket = "site-artifacts-0123abcd";
    const backupBucket = "site-backups-4567cdef";
    const mediaBucket = "site-media-89abef01";
    aws.createBucket(artifactBucket);
    aws.createBucket(backupBucket, { versioned: true });
    aws.createBucket(mediaBucket, { versioned: true });
    // The hosts' calls are held to the instance role's real policy, as on AWS: a permission
    // the scripts need and the role lacks fails these tests.
    aws.enforce(
      HOST_ACCESS_KEY,
      hostPolicy({
        partition: "aws",
        account: "123456789012",
        region: REGION,
        parameterPath,
        kmsKeyArn: `arn:aws:kms:${REGION}:123456789012:key/${stack}`,
        artifactBucketArn: `arn:aws:s3:::${artifactBucket}`,
        backupBucketArn: `arn:aws:s3:::${backupBucket}`,
        mediaBucketArn: `arn:aws:s3:::${mediaBucket}`,
      }),
    );
    const put = (name: string, value: string, secure: boolean) =>
      aws.putParameter(`${parameterPath}${name}`, value, secure ? "SecureString" : "String");
    put("DB_HOST", bridgeIp, false);
    put("DB_PORT", String(pg.port), false);
    put("DB_NAME", APP, false);
    put("DB_USER", APP, false);
    put("ALLOWED_HOSTS", SITE_HOST, false);
    put("HTTPS", "off", false);
    put("HEALTH_PATH", "/healthz", false);
    put("DB_PASSWORD", secrets.dbPassword, true);
    put("SECRET_KEY", secrets.secretKey, true);
    put("ADMIN_PATH", secrets.adminPath, true);
    put("MEDIA_BUCKET", mediaBucket, false);
    put("MEDIA_REGION", REGION, false);
    for (const [name, value] of Object.entries(mediaRigSettings(`http://${bridgeIp}:${standIns.awsPort}`))) {
      put(name, value, name.includes("SECRET"));
    }
    put("DATABASE_URL", `postgres://${APP}:${secrets.dbPassword}@${bridgeIp}:${pg.port}/${APP}?sslmode=require`, true);
    for (const [k, v] of Object.entries(opts.settings ?? {})) put(k, v, false);
    let redis: RigRedis | undefined;
    if (opts.redis) {
      const redisPassword = generatedSecret(64);
      redis = await startRedis({ listen: bridgeIp, port: await freePort(), password: redisPassword });
      secrets.redisPassword = redisPassword;
      put("REDIS_URL", redis.url, true);
    }

    const connection = (host: RigHost, user: "admin" | "deploy"): Connection => ({
      host: host.ip,
      port: 22,
      user,
      privateKey: deployKey.privateKey,
      hostKey: host.hostKey.publicKey,
      dialErrorLimit: 20,
      perDialTimeout: 15,
    });
    const common = { app: APP, parameterPath, region: REGION };
    const run = (host: RigHost, call: StepCall, command: string, timeoutSeconds: number, drop?: AbortSignal) =>
      runRemote(connection(host, call.user), command, { timeoutMs: (timeoutSeconds + 120) * 1000, drop });
    const world: World = {
      rig,
      hosts: rig.hosts,
      pg,
      aws,
      deployKey,
      parameterPath,
      artifactBucket,
      backupBucket,
      mediaBucket,
      secrets,
      redis,
      connection,
      copyScripts: (host, dir = SCRIPT_DIR) =>
        copyToRemote(connection(host, "admin"), dir, scriptsCopyPath(scriptsId(dir))),
      async step(host, call, o = {}) {
        const timeoutSeconds = o.timeoutSeconds ?? 1200;
        const id = scriptsId(o.scriptsDir ?? SCRIPT_DIR);
        if (call.step === "bootstrap") {
          if (o.copy !== false) await world.copyScripts(host, o.scriptsDir);
          call = { ...call, values: { ...call.values, GL_SCRIPTS_ID: id } };
        }
        return run(host, call, createCommand(call, { timeoutSeconds, scriptsId: id }), timeoutSeconds, o.drop);
      },
      update: (host, call) => run(host, call, updateCommand(call), 60),
      values: {
        bootstrap: () =>
          steps.bootstrap({
            app: APP,
            deployKey: deployKey.publicKey,
            vpcCidr: rig.subnet,
            pgMajor: "15",
            healthPath: "/healthz",
          }),
        settings: () => steps.settings({ ...common, healthPath: "/healthz" }),
        fetch: (slot, release, artifact) =>
          steps.fetch({
            ...common,
            slot,
            release,
            artifactBucket,
            artifactKey: artifact.key,
            sha256: artifact.sha256,
            workers: 2,
          }),
        backup: (release, slot = "blue", maintenance) =>
          steps.backup({ ...common, slot, release, backupBucket, mediaBucket, maintenance }),
        migrate: (release, slot = "blue", maintenance) => steps.migrate({ app: APP, slot, release, maintenance }),
        check: (release, slot = "blue", o = {}) =>
          steps.check({
            app: APP,
            slot,
            release,
            stack: "qa",
            allowUnsafe: o.allowUnsafe ?? false,
          }),
        activate: (slot, release, healthTimeout, maintenance) =>
          steps.activate({ app: APP, slot, release, healthPath: "/healthz", healthTimeout, maintenance }),
        cleanup: (keep) => steps.cleanup({ app: APP, keep }),
        restore: (key, maintenance, restoreId) =>
          steps.restore({ ...common, backupBucket, mediaBucket, backupKey: key, restoreId, maintenance }),
        maintenance: (mode, reason) => steps.maintenance({ app: APP, mode, reason }),
        workers: (mode, slot, release, host) => steps.workers({ app: APP, slot, release, mode, beat: host === 0 }),
      },
      get: (host, port, path) => httpRequest(`http://${host.ip}:${port}${path}`),
      stop: async () => {
        await redis?.stop();
        await stopAll();
      },
    };
    return world;
  } catch (e) {
    await stopAll();
    throw e;
  }
}
