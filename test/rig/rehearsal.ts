// The rehearsal: the real index.ts, for a stack, under a mock engine that behaves like
// `pulumi up` (test/rig/engine.ts), where AWS resources are played by local stand-ins and
// `command:remote:Command` really runs over SSH on local hosts that the program's own
// instances boot (with the host key and deploy key from their user data). It walks a stack
// through the life DESIGN.md promises: provision, release, cutover under load, rollback, a
// failed migration, the fixed release and cleanup, and checks each step.
import { S3Client } from "@aws-sdk/client-s3";
import { randomBytes } from "crypto";
import * as fs from "fs";
import * as http from "http";
import * as os from "os";
import * as path from "path";
import { parse } from "yaml";
import { Colour } from "../../components/constants";
import {
  artifactKey,
  planRelease,
  planRollback,
  readState,
  servingColour,
  writeConfig,
} from "../../scripts/cli/lib/stack";
import { uploadArtifact } from "../../scripts/cli/lib/upload";
import { AlbStandIn, startAlbStandIn } from "./albStandIn";
import { Variant, siteArtifact } from "./artifacts";
import { AwsStandIn } from "./awsStandIn";
import { EngineState, Handler, JournalEntry, StatefulEngine, StoredResource } from "./engine";
import { HostRig, RigHost, generateHostKey } from "./hosts";
import { RigPostgres } from "./postgres";
import { ProgramRun, Registered, runProgram } from "./program";
import { Connection, runRemote } from "./ssh";
import { ROOT, stackConfig } from "./stackConfig";
import { startStandIns } from "./world";
import { fakeEngine } from "../unit/fakeEngine";

const ACCOUNT = "123456789012";
const COMMAND = "command:remote:Command";

export interface UpResult {
  ok: boolean;
  ms: number;
  changes: JournalEntry[];
  /** Remote commands that ran, by resource name. */
  commands: string[];
  error?: string;
  outputs: Record<string, unknown>;
}

const hex = (n: number) => randomBytes(n).toString("hex");
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)}s`;

function randomFrom(alphabet: string, length: number): string {
  return [...randomBytes(length)].map((b) => alphabet[b % alphabet.length]).join("");
}

/** One local environment that plays AWS for one stack, and the engine state between runs. */
export class Rehearsal {
  private state: EngineState = { resources: {} };
  private readonly ips = new Map<string, string>();
  private readonly lbDns = new Map<string, string>();
  /** The name browsers use: the domain when the stack has one, else the ALB's DNS name. */
  private readonly domain?: string;
  private readonly hostsByName = new Map<string, RigHost>();
  private lastOutputs: Record<string, unknown> = {};
  private s3: S3Client;

  private constructor(
    readonly stack: string,
    readonly dir: string,
    private readonly rig: HostRig,
    private readonly pg: RigPostgres,
    private readonly aws: AwsStandIn,
    private readonly alb: AlbStandIn,
    private readonly log: (line: string) => void,
  ) {
    const cfg = parse(fs.readFileSync(path.join(dir, `Pulumi.${stack}.yaml`), "utf8")) as {
      config?: Record<string, unknown>;
    };
    this.domain = (cfg.config?.["greenlight:domain"] as string | undefined) || undefined;
    this.s3 = new S3Client({
      region: "eu-west-1",
      endpoint: aws.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: "rehearsal", secretAccessKey: "rehearsal" },
    });
  }

  static async start(opts: {
    stack: string;
    log: (line: string) => void;
    overrides?: Record<string, string>;
  }): Promise<Rehearsal> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `greenlight-rehearsal-${opts.stack}-`));
    const stops: (() => Promise<unknown>)[] = [];
    try {
      // The stack file is a copy: releases and rollbacks edit it, never the repository's.
      const file = path.join(dir, `Pulumi.${opts.stack}.yaml`);
      const text = fs.readFileSync(path.join(ROOT, `Pulumi.${opts.stack}.yaml`), "utf8");
      fs.writeFileSync(file, writeConfig(text, opts.overrides ?? {}));
      // No hosts yet: the program's instances boot them from their user data.
      const { rig, aws, pg, stop } = await startStandIns({
        prefix: "glr",
        subnetIndex: 31,
        hosts: 0,
        adminAuthorizedKey: "",
      });
      stops.push(stop);
      const alb = startAlbStandIn({ intervalMs: 500 });
      return new Rehearsal(opts.stack, dir, rig, pg, aws, alb, opts.log);
    } catch (e) {
      for (const s of stops.reverse()) await s().catch(() => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }

  get stackFile(): string {
    return path.join(this.dir, `Pulumi.${this.stack}.yaml`);
  }

  /** The local address of the load balancer's forwarding listener. */
  albUrl(): string | undefined {
    return this.alb.url(443) ?? this.alb.url(80);
  }

  /** The colour the listener forwards to, from the engine's state (like `pulumi stack export`). */
  serving(): Colour | undefined {
    return servingColour(
      Object.values(this.state.resources).map((r) => ({ type: r.type, urn: this.urnOf(r), outputs: r.state })),
    );
  }

  private urnOf(r: StoredResource): string {
    return Object.entries(this.state.resources).find(([, v]) => v === r)?.[0] ?? "";
  }

  resource(name: string, type = COMMAND): StoredResource | undefined {
    return Object.values(this.state.resources).find((r) => r.name === name && r.type === type);
  }

  host(i: number): RigHost | undefined {
    return this.hostsByName.get(`h${i}`);
  }

  /** `pulumi up`: runs the program once against the remembered state. */
  async up(): Promise<UpResult> {
    const started = Date.now();
    const engine = new StatefulEngine(this.state, (t) => this.handler(t), fakeEngine.call.bind(fakeEngine), {
      start: (e) => {
        if (e.type === COMMAND)
          this.log(`      ${e.op === "replace" ? "+-" : e.op === "update" ? "~ " : "+ "} ${e.name} ...`);
      },
      end: (e) => {
        if (e.type === COMMAND || e.type === "aws:lb/listener:Listener") {
          const mark = e.ok ? "ok" : "FAILED";
          const why = e.error ? `: ${e.error.split("\n").slice(-3).join(" | ")}` : "";
          this.log(`      ${mark.padEnd(6)} ${e.op} ${e.name} (${seconds(e.ms)})${why}`);
        }
      },
    });
    let run: ProgramRun | undefined;
    let error: string | undefined;
    try {
      run = await runProgram(this.stack, stackConfig(this.stack, {}, this.dir), engine);
      if (run.failures.length) error = run.failures.find((f) => f.type === COMMAND)?.error ?? run.failures[0].error;
    } catch (e) {
      error = e instanceof Error ? e.message : String(e);
    }
    const ok = error === undefined;
    this.state = await engine.finish(ok);
    if (ok && run) this.lastOutputs = run.outputs;
    fs.writeFileSync(path.join(this.dir, "state.json"), JSON.stringify(this.state, null, 1));
    const changes = engine.changes();
    return {
      ok,
      ms: Date.now() - started,
      changes,
      commands: changes.filter((c) => c.ran).map((c) => c.name),
      error,
      outputs: run?.outputs ?? {},
    };
  }

  /** `npm run package-site` + `npm run release`: artifact uploaded, idle slot written, live flipped. */
  async release(variant: Variant, id: string) {
    const a = await siteArtifact(variant, path.join(this.dir, "artifacts"));
    const key = artifactKey(a.sha256);
    const bucket = String(this.lastOutputs.artifactBucket);
    await uploadArtifact(this.s3, bucket, key, a.file, a.sha256);
    const text = fs.readFileSync(this.stackFile, "utf8");
    const plan = planRelease(readState(text), { release: id, artifact: key, sha256: a.sha256 }, this.serving());
    fs.writeFileSync(this.stackFile, writeConfig(text, plan.values));
    return plan;
  }

  /** `npm run rollback`. */
  rollback() {
    const text = fs.readFileSync(this.stackFile, "utf8");
    const plan = planRollback(readState(text));
    fs.writeFileSync(this.stackFile, writeConfig(text, plan.values));
    return plan;
  }

  outputs(): Record<string, unknown> {
    return this.lastOutputs;
  }

  async stop(): Promise<void> {
    this.s3.destroy();
    await this.alb.close().catch(() => undefined);
    await this.aws.close().catch(() => undefined);
    await this.pg.stop().catch(() => undefined);
    await this.rig.stop().catch(() => undefined);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  // --- what each resource type does here ------------------------------------------------------

  private handler(type: string): Handler {
    switch (type) {
      case COMMAND:
        return {
          create: (r, i) => this.runCommand(r.name, i, i.create as string),
          update: (r, i) => this.runCommand(r.name, i, (i.update ?? i.create) as string),
          delete: async (old) => {
            if (!old.inputs.delete) return { ran: false };
            await this.runCommand(old.name, old.inputs, old.inputs.delete as string);
            return { ran: true };
          },
        };
      case "aws:ec2/instance:Instance":
        return { create: (r, i) => this.boot(r, i), update: async (_, __, old) => ({ id: old.id, state: old.state }) };
      case "aws:rds/instance:Instance":
        return {
          create: async (r, i) => {
            await this.pg.createRoleAndDatabase(String(i.username), String(i.password));
            const address = this.rig.bridgeIp;
            return {
              id: `${r.name}-${hex(4)}`,
              state: { address, port: this.pg.port, endpoint: `${address}:${this.pg.port}`, identifier: r.name },
            };
          },
          update: async (_, __, old) => ({ id: old.id, state: old.state }),
        };
      case "aws:ssm/parameter:Parameter": {
        const put = async (_: Registered, i: Record<string, unknown>) => {
          this.aws.putParameter(String(i.name), String(i.value), i.type as "String" | "SecureString");
          return { state: { arn: `arn:aws:ssm:eu-west-1:${ACCOUNT}:parameter${i.name}`, version: 1 } };
        };
        return { create: put, update: put, delete: async (old) => this.aws.deleteParameter(String(old.inputs.name)) };
      }
      case "aws:s3/bucket:Bucket":
        return {
          create: async (r) => {
            const name = `${r.name}-${hex(4)}`.toLowerCase();
            this.aws.createBucket(name);
            return { id: name, state: { bucket: name, arn: `arn:aws:s3:::${name}` } };
          },
          update: async (_, __, old) => ({ id: old.id, state: old.state }),
        };
      case "aws:lb/loadBalancer:LoadBalancer":
        return {
          create: async (r) => {
            const arn = `arn:aws:elasticloadbalancing:eu-west-1:${ACCOUNT}:loadbalancer/app/${r.name}/${hex(8)}`;
            const dnsName = `${r.name}-${parseInt(hex(3), 16)}.eu-west-1.elb.amazonaws.com`;
            this.lbDns.set(arn, dnsName);
            return { state: { arn, dnsName, zoneId: "Z32O12XQLNTSW2", arnSuffix: arn.split(":loadbalancer/")[1] } };
          },
          update: async (_, __, old) => ({ id: old.id, state: old.state }),
        };
      case "aws:lb/targetGroup:TargetGroup": {
        const register = async (r: Registered, i: Record<string, unknown>, old?: StoredResource) => {
          const arn =
            (old?.state.arn as string) ??
            `arn:aws:elasticloadbalancing:eu-west-1:${ACCOUNT}:targetgroup/${r.name}/${hex(8)}`;
          this.alb.targetGroup(arn, String((i.healthCheck as { path?: string })?.path ?? "/"));
          return { state: { arn, arnSuffix: arn.split(":")[5] } };
        };
        return {
          create: (r, i) => register(r, i),
          update: register,
          delete: async (old) => this.alb.removeTargetGroup(String(old.state.arn)),
        };
      }
      case "aws:lb/targetGroupAttachment:TargetGroupAttachment":
        return {
          create: async (_, i) => {
            this.alb.attach(String(i.targetGroupArn), this.ips.get(String(i.targetId))!, Number(i.port));
            return {};
          },
          delete: async (old) =>
            this.alb.detach(
              String(old.inputs.targetGroupArn),
              this.ips.get(String(old.inputs.targetId))!,
              Number(old.inputs.port),
            ),
        };
      case "aws:lb/listener:Listener": {
        const point = async (r: Registered, i: Record<string, unknown>, old?: StoredResource) => {
          const action = ((i.defaultActions ?? []) as { type: string; targetGroupArn?: string }[])[0];
          if (action?.type === "forward") {
            const host = this.domain ?? this.lbDns.get(String(i.loadBalancerArn));
            await this.alb.listen(Number(i.port), action.targetGroupArn, host);
          }
          return {
            state: {
              arn:
                (old?.state.arn as string) ??
                `arn:aws:elasticloadbalancing:eu-west-1:${ACCOUNT}:listener/${r.name}/${hex(8)}`,
            },
          };
        };
        return {
          create: (r, i) => point(r, i),
          update: point,
          delete: async (old) => this.alb.closeListener(Number(old.inputs.port)),
        };
      }
      case "tls:index/privateKey:PrivateKey":
        return {
          create: async () => {
            const k = generateHostKey();
            return { state: { privateKeyOpenssh: k.privateKey, publicKeyOpenssh: `${k.publicKey}\n` } };
          },
        };
      case "random:index/randomPassword:RandomPassword":
      case "random:index/randomString:RandomString":
        return {
          create: async (_, i) => {
            let alphabet = "";
            if (i.lower !== false) alphabet += "abcdefghijklmnopqrstuvwxyz";
            if (i.upper !== false) alphabet += "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
            if (i.numeric !== false) alphabet += "0123456789";
            if (i.special !== false) alphabet += String(i.overrideSpecial ?? "!@#$%&*()-_=+[]{}<>:?");
            return { state: { result: randomFrom(alphabet, Number(i.length)) } };
          },
        };
      case "random:index/randomId:RandomId":
        return { create: async (_, i) => ({ state: { hex: hex(Number(i.byteLength)) } }) };
      default:
        return {
          create: async (r) => fakeEngine.newResource(r),
          update: async (_, __, old) => ({ id: old.id, state: old.state }),
        };
    }
  }

  private async runCommand(name: string, inputs: Record<string, unknown>, text: string) {
    const res = await runRemote(inputs.connection as Connection, text, { timeoutMs: 20 * 60_000 });
    // @pulumi/command trims one trailing newline from stdout and stderr.
    const trim = (s: string) => s.replace(/\n$/, "");
    if (res.code !== 0) {
      const tail = res.stderr.trim().split("\n").slice(-12).join("\n");
      throw new Error(`${name}: Process exited with status ${res.code}\n${tail}`);
    }
    return { ran: true, state: { stdout: trim(res.stdout), stderr: trim(res.stderr) } };
  }

  /** A new instance boots: cloud-init installs the host key and the admin's key from user data. */
  private async boot(r: Registered, inputs: Record<string, unknown>) {
    const userData = String(inputs.userData ?? "");
    if (!userData.startsWith("#cloud-config\n")) throw new Error(`${r.name}: user data is not cloud-config`);
    const cloud = parse(userData) as {
      ssh_keys: { ed25519_private: string; ed25519_public: string };
      ssh_authorized_keys: string[];
    };
    const m = /-(\d+|bastion)$/.exec(r.name);
    if (!m) throw new Error(`${r.name}: cannot tell which host this is`);
    const name = m[1] === "bastion" ? "bastion" : `h${m[1]}`;
    this.log(`      boot ${r.name} as local host ${name}`);
    const host = await this.rig.addHost({
      name,
      hostKey: { privateKey: cloud.ssh_keys.ed25519_private, publicKey: cloud.ssh_keys.ed25519_public },
      adminAuthorizedKey: cloud.ssh_authorized_keys[0],
    });
    this.hostsByName.set(name, host);
    const id = `i-${hex(8)}`;
    this.ips.set(id, host.ip);
    return {
      id,
      state: {
        privateIp: host.ip,
        publicIp: inputs.associatePublicIpAddress ? host.ip : "",
        arn: `arn:aws:ec2:eu-west-1:${ACCOUNT}:instance/${id}`,
      },
    };
  }
}

/** GETs in a loop through the load balancer until stopped (bounded in count and time). */
export function loadThrough(url: string, requestPath: string) {
  let running = true;
  const failures: string[] = [];
  const seen = new Map<string, number>();
  let ok = 0;
  const started = Date.now();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const one = () =>
    new Promise<void>((resolve) => {
      const req = http.get(`${url}${requestPath}`, { agent, timeout: 10_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const body = Buffer.concat(chunks).toString();
          if (res.statusCode !== 200) failures.push(`${res.statusCode}`);
          else {
            ok++;
            const release = (JSON.parse(body) as { release?: string }).release ?? "?";
            seen.set(release, (seen.get(release) ?? 0) + 1);
          }
          resolve();
        });
      });
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", (e) => {
        failures.push(e.message);
        resolve();
      });
    });
  const worker = async () => {
    for (let i = 0; running && i < 20_000 && Date.now() - started < 10 * 60_000; i++) await one();
  };
  const workers = [worker(), worker()];
  return {
    async stop() {
      running = false;
      await Promise.all(workers);
      agent.destroy();
      return { ok, failures, seen: Object.fromEntries(seen) };
    },
  };
}

/** One GET through the load balancer. */
export function getThrough(url: string, requestPath: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(`${url}${requestPath}`, { timeout: 10_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      })
      .on("error", reject);
  });
}
