// The rehearsal: the real index.ts under the real Pulumi CLI and engine (built from the Go
// module proxy by scripts/dev/pulumi-toolchain.sh), driven as a user drives it: `pulumi login
// file://...`, `pulumi stack init`, `npm run release` / `rollback`, `pulumi preview --diff
// --policy-pack policy`, `pulumi up`, `pulumi stack output --json`, `pulumi stack export`.
//
// What is real and what stands in (nothing else is imitated):
//   real      the pulumi CLI and engine, @pulumi/* SDKs, the program, the policy pack, the
//             release/rollback CLIs, sshd/PostgreSQL/nginx/supervisor/gunicorn on the hosts
//   stand-in  the providers that cannot be built here, served to the engine as ambient plugins
//             (providers/bin/pulumi-resource-{aws,random,tls,command}): aws plays its
//             resources on the local world (providers/localWorld.ts); command is a stand-in
//             of pulumi-resource-command 1.2.1 (its Go module is not served here)
//   inline    without pulumi-language-nodejs (not served either), the program runs as an
//             Automation API inline program: the same CLI and engine (`pulumi up --client`)
import { LocalWorkspace, PulumiCommand, Stack, EngineEvent, OpType } from "@pulumi/pulumi/automation";
import { execFile, spawnSync } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as os from "os";
import * as path from "path";
import { parse } from "yaml";
import { Colour } from "../../components/constants";
import { DeployedResource, servingColour } from "../../scripts/cli/lib/stack";
import { AlbStandIn, startAlbStandIn } from "./albStandIn";
import { Variant, siteArtifact } from "./artifacts";
import { AwsStandIn } from "./awsStandIn";
import { HostRig, RigHost } from "./hosts";
import { RigPostgres } from "./postgres";
import { LocalWorld, startLocalWorld } from "./providers/localWorld";
import { ROOT } from "./stackConfig";
import { REGION, mediaRigSettings, startStandIns } from "./world";

const COMMAND = "command:remote:Command";
const PROVIDERS_BIN = path.join(ROOT, "test", "rig", "providers", "bin");
const TOOLCHAIN = path.join(ROOT, "scripts", "dev", "pulumi-toolchain.sh");
const PASSPHRASE = "rehearsal-passphrase-not-a-secret";

export type Op = "create" | "update" | "replace" | "delete";

export interface Change {
  urn: string;
  type: string;
  name: string;
  op: Op;
  ok: boolean;
}

export interface UpResult {
  ok: boolean;
  ms: number;
  /** Every resource the update touched (not the stack, not components). */
  changes: Change[];
  /** Names of the command resources that ran (created, updated, replaced or deleted). */
  commands: string[];
  /** The engine's error diagnostics, by resource name (what `pulumi up` prints for each). */
  errors: Record<string, string>;
  error?: string;
  outputs: Record<string, unknown>;
}

/** What `npm run release` said. */
export interface ReleaseSaid {
  text: string;
  /** The release id it wrote. */
  id?: string;
  slot?: Colour;
  /** A release in that slot that never went live, which this one replaces. */
  neverLive?: string;
}

/** What `npm run rollback` said. */
export interface RollbackSaid {
  text: string;
  from: Colour;
  to: Colour;
  release: string;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)}s`;

function opOf(op: OpType): Op | undefined {
  switch (op) {
    case "create":
    case "update":
    case "delete":
      return op;
    case "replace":
    case "create-replacement":
    case "delete-replaced":
    case "discard-replaced":
      return "replace";
    default:
      return undefined;
  }
}

/** The toolchain's bin directory (built or reused) and what it says it could not build. */
function toolchain(log: (line: string) => void): { bin: string; notBuilt: string[] } {
  const out = spawnSync("bash", [TOOLCHAIN, "--print-bin"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  for (const l of out.stderr.trim().split("\n").filter(Boolean)) log(`   ${l}`);
  if (out.status !== 0) throw new Error(`${TOOLCHAIN} failed:\n${out.stderr}`);
  const bin = out.stdout.trim();
  const status = path.join(path.dirname(bin), "status.txt");
  const notBuilt = fs.existsSync(status)
    ? fs
        .readFileSync(status, "utf8")
        .split("\n")
        .filter((l) => l.split("\t")[1] === "not-buildable")
        .map((l) => l.split("\t")[0])
    : [];
  return { bin, notBuilt };
}

/** One local environment that plays AWS for one stack, with its own Pulumi backend and home. */
export class Rehearsal {
  private lastOutputs: Record<string, unknown> = {};
  private stackRef?: Stack;

  private constructor(
    readonly stack: string,
    /** The project directory: Pulumi.yaml and the stack file (a copy; releases edit it). */
    readonly dir: string,
    private readonly work: string,
    private readonly env: Record<string, string>,
    private readonly pulumi: PulumiCommand,
    private readonly rig: HostRig,
    private readonly pg: RigPostgres,
    private readonly aws: AwsStandIn,
    private readonly alb: AlbStandIn,
    private readonly world: LocalWorld,
    private readonly log: (line: string) => void,
  ) {}

  static async start(opts: {
    stack: string;
    log: (line: string) => void;
    overrides?: Record<string, string>;
  }): Promise<Rehearsal> {
    const log = opts.log;
    const work = fs.mkdtempSync(path.join(os.tmpdir(), `greenlight-rehearsal-${opts.stack}-`));
    const stops: (() => Promise<unknown>)[] = [];
    try {
      const { bin, notBuilt } = toolchain(log);
      const dir = path.join(work, "project");
      fs.mkdirSync(dir);
      // The project file as it is, less `main`: the CLI checks that the entry point exists,
      // and an inline program has none (the program is required from the repository).
      const project = fs.readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8");
      fs.writeFileSync(path.join(dir, "Pulumi.yaml"), project.replace(/^main: .*\n/m, ""));
      const text = fs.readFileSync(path.join(ROOT, `Pulumi.${opts.stack}.yaml`), "utf8");
      const { writeConfig } = await import("../../scripts/cli/lib/stack");
      fs.writeFileSync(path.join(dir, `Pulumi.${opts.stack}.yaml`), writeConfig(text, opts.overrides ?? {}));
      const cfg = parse(text) as { config?: Record<string, unknown> };
      const domain = (cfg.config?.["greenlight:domain"] as string | undefined) || undefined;

      // No hosts yet: the program's instances boot them from their user data.
      const standIns = await startStandIns({ prefix: "glr", subnetIndex: 31, hosts: 0, adminAuthorizedKey: "" });
      stops.push(standIns.stop);
      // What the instance role and AWS's endpoint give the site's media storage on a real host
      // (the program sets MEDIA_BUCKET and MEDIA_REGION itself).
      for (const [name, value] of Object.entries(mediaRigSettings(standIns.aws.endpoint))) {
        standIns.aws.putParameter(
          `/greenlight/${opts.stack}/${name}`,
          value,
          name.includes("SECRET") ? "SecureString" : "String",
        );
      }
      const alb = startAlbStandIn({ intervalMs: 500 });
      stops.push(() => alb.close());
      const world = await startLocalWorld({ ...standIns, alb, domain, log });
      stops.push(() => world.close());

      fs.mkdirSync(path.join(work, "state"));
      const env: Record<string, string> = {
        PATH: `${bin}:${PROVIDERS_BIN}:${process.env.PATH ?? ""}`,
        PULUMI_HOME: path.join(work, "pulumi-home"),
        PULUMI_CONFIG_PASSPHRASE: PASSPHRASE,
        PULUMI_SKIP_UPDATE_CHECK: "true",
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
        GREENLIGHT_STANDINS_URL: world.url,
        // The release CLI uploads to the local S3 stand-in (the AWS SDK reads these).
        AWS_ENDPOINT_URL_S3: standIns.aws.endpoint,
        AWS_ACCESS_KEY_ID: "rehearsal",
        AWS_SECRET_ACCESS_KEY: "rehearsal",
        AWS_REGION: REGION,
      };
      const pulumi = await PulumiCommand.get({ root: path.dirname(bin) });
      const r = new Rehearsal(
        opts.stack,
        dir,
        work,
        env,
        pulumi,
        standIns.rig,
        standIns.pg,
        standIns.aws,
        alb,
        world,
        log,
      );
      log(`   $ pulumi version: ${(await r.cli(["version"])).stdout.trim()} (${bin})`);
      log(
        `   providers: aws, random, tls${notBuilt.some((n) => n.startsWith("pulumi-resource-command")) ? ", command" : ""} ` +
          `are the rig's stand-in plugins (test/rig/providers/bin); not buildable here: ${notBuilt.join(", ") || "none"}`,
      );
      await r.must(["login", `file://${path.join(work, "state")}`]);
      await r.must(["stack", "init", opts.stack, "--secrets-provider", "passphrase"]);
      return r;
    } catch (e) {
      for (const s of stops.reverse()) await s().catch(() => undefined);
      fs.rmSync(work, { recursive: true, force: true });
      throw e;
    }
  }

  get stackFile(): string {
    return path.join(this.dir, `Pulumi.${this.stack}.yaml`);
  }

  /** The real `pulumi` binary, in the project directory, as a user types it. */
  cli(args: string[], opts: { timeoutMs?: number } = {}): Promise<CliResult> {
    return this.exec(path.join(this.pulumi.command), args, opts);
  }

  /** `npm run <script> -- args`, as a user types it (run from the repository). */
  npm(script: string, args: string[]): Promise<CliResult> {
    return this.exec("npm", ["run", "--silent", script, "--", ...args], { cwd: ROOT });
  }

  private exec(cmd: string, args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
    return new Promise((resolve) => {
      execFile(
        cmd,
        args,
        {
          cwd: opts.cwd ?? this.dir,
          env: { ...process.env, ...this.env },
          encoding: "utf8",
          maxBuffer: 256 << 20,
          timeout: opts.timeoutMs ?? 10 * 60_000,
        },
        (err, stdout, stderr) => {
          const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
          resolve({ code, stdout, stderr: stderr || (err && typeof err.code !== "number" ? err.message : "") });
        },
      );
    });
  }

  private async must(args: string[]): Promise<string> {
    const r = await this.cli(args);
    this.log(`   $ pulumi ${args.join(" ")}${r.code === 0 ? "" : ` -> exit ${r.code}`}`);
    if (r.code !== 0) throw new Error(`pulumi ${args.join(" ")} failed: ${r.stderr.trim()}`);
    return r.stdout;
  }

  private async stackHandle(): Promise<Stack> {
    if (this.stackRef) return this.stackRef;
    const program = async () => {
      // A fresh evaluation of the program each time, as a new `pulumi up` process would do.
      for (const k of Object.keys(require.cache)) {
        if (k === path.join(ROOT, "index.ts") || k.startsWith(path.join(ROOT, "components") + path.sep))
          delete require.cache[k];
      }
      return (await import(path.join(ROOT, "index.ts"))) as Record<string, unknown>;
    };
    this.stackRef = await LocalWorkspace.selectStack(
      { stackName: this.stack, projectName: "greenlight", program },
      { workDir: this.dir, envVars: this.env, pulumiCommand: this.pulumi },
    );
    return this.stackRef;
  }

  /**
   * `pulumi up --yes`: the real engine against the stack's state. `onStep` hears each command
   * and listener the engine starts on (its logical name and type), as it starts it.
   */
  async up(opts: { onStep?: (name: string, type: string) => void } = {}): Promise<UpResult> {
    const started = Date.now();
    const stack = await this.stackHandle();
    const changes = new Map<string, Change>();
    const errors: Record<string, string> = {};
    const onEvent = (e: EngineEvent) => {
      const meta = e.resourcePreEvent?.metadata ?? e.resOutputsEvent?.metadata ?? e.resOpFailedEvent?.metadata;
      if (meta) {
        const op = opOf(meta.op);
        if (!op || meta.type.startsWith("pulumi:") || meta.type.startsWith("greenlight:")) return;
        const name = meta.urn.split("::").pop()!;
        const c = changes.get(meta.urn) ?? { urn: meta.urn, type: meta.type, name, op, ok: false };
        if (e.resourcePreEvent && meta.type === COMMAND && !changes.has(meta.urn)) this.log(`      ${op} ${name} ...`);
        if (e.resourcePreEvent && !changes.has(meta.urn)) opts.onStep?.(name, meta.type);
        if (e.resOutputsEvent) c.ok = true;
        if (e.resOpFailedEvent) c.ok = false;
        changes.set(meta.urn, c);
      }
      const d = e.diagnosticEvent;
      if (d && d.severity === "error" && d.urn) {
        const name = d.urn.split("::").pop()!;
        errors[name] = (errors[name] ?? "") + d.message;
      }
    };
    let error: string | undefined;
    try {
      await stack.up({ onEvent, color: "never" });
    } catch (e) {
      error = Object.values(errors).join("\n") || (e instanceof Error ? e.message : String(e));
    }
    const list = [...changes.values()];
    for (const c of list.filter((x) => x.type === COMMAND || x.type === "aws:lb/listener:Listener"))
      this.log(`      ${c.ok ? "ok    " : "FAILED"} ${c.op} ${c.name}`);
    const ok = error === undefined;
    if (ok) this.lastOutputs = await this.stackOutputs();
    return {
      ok,
      ms: Date.now() - started,
      changes: list,
      commands: list.filter((c) => c.type === COMMAND).map((c) => c.name),
      errors,
      error,
      outputs: ok ? this.lastOutputs : {},
    };
  }

  /** `pulumi preview --diff --policy-pack policy`: the text a PR comment carries. */
  async preview(): Promise<{ ok: boolean; text: string; error?: string }> {
    const stack = await this.stackHandle();
    let text = "";
    try {
      await stack.preview({
        diff: true,
        color: "never",
        // policy/, through its launcher (no nodejs language plugin here: see the launcher).
        policyPacks: [path.join(PROVIDERS_BIN, "greenlight-policy-pack")],
        onOutput: (s) => (text += s),
      });
      return { ok: true, text };
    } catch (e) {
      return { ok: false, text, error: e instanceof Error ? e.message : String(e) };
    }
  }

  /** `pulumi stack output --json --show-secrets`. */
  async stackOutputs(): Promise<Record<string, unknown>> {
    return JSON.parse(await this.must(["stack", "output", "--json", "--show-secrets"])) as Record<string, unknown>;
  }

  /** `pulumi stack export`: the deployment's resources. */
  async exported(): Promise<DeployedResource[]> {
    const out = await this.cli(["stack", "export", "--show-secrets"]);
    if (out.code !== 0) throw new Error(`pulumi stack export failed: ${out.stderr}`);
    const state = JSON.parse(out.stdout) as { deployment?: { resources?: DeployedResource[] } };
    return state.deployment?.resources ?? [];
  }

  /** The colour the listener forwards to, from `pulumi stack export` (as the release CLI reads it). */
  async serving(): Promise<Colour | undefined> {
    return servingColour(await this.exported());
  }

  /** A resource of the deployment by its logical name. */
  async resource(
    name: string,
    type = COMMAND,
  ): Promise<{ outputs: Record<string, unknown>; inputs: Record<string, unknown> } | undefined> {
    const r = (await this.exported()).find((x) => x.type === type && !!x.urn?.endsWith(`::${name}`)) as
      (DeployedResource & { inputs?: Record<string, unknown> }) | undefined;
    return r ? { outputs: (r.outputs ?? {}) as Record<string, unknown>, inputs: r.inputs ?? {} } : undefined;
  }

  /** SQL on the stack's database (the rig's PostgreSQL, as its superuser): psql's unaligned rows. */
  async sql(query: string): Promise<string> {
    const db = (await this.exported()).find((x) => x.type === "aws:rds/instance:Instance") as
      (DeployedResource & { inputs?: Record<string, unknown> }) | undefined;
    const name = db?.inputs?.dbName ?? db?.inputs?.username;
    if (typeof name !== "string") throw new Error("the stack has no database yet");
    return this.pg.query(query, name);
  }

  /**
   * The rows of `table` in backup `key` of the backup bucket (the bucket's own object, rendered
   * by pg_restore on this machine), each as its columns by name, as COPY wrote them.
   */
  backupRows(bucket: string, key: string, table: string): Record<string, string>[] {
    const dump = this.aws.getObject(bucket, key);
    if (!dump) throw new Error(`no object ${key} in ${bucket}`);
    const file = path.join(this.work, "backup.dump");
    fs.writeFileSync(file, dump);
    try {
      const r = spawnSync("pg_restore", ["--data-only", `--table=${table}`, "--file=-", file], {
        encoding: "utf8",
        maxBuffer: 256 << 20,
      });
      if (r.status !== 0) throw new Error(`pg_restore of ${key}: ${r.stderr}`);
      const lines = r.stdout.split("\n");
      const start = lines.findIndex((l) => new RegExp(`^COPY public\\.${table} \\(`).test(l));
      if (start < 0) return [];
      const columns = /\(([^)]*)\)/.exec(lines[start])![1].split(", ");
      const rows: Record<string, string>[] = [];
      for (const l of lines.slice(start + 1)) {
        if (l === "\\.") break;
        const cells = l.split("\t");
        rows.push(Object.fromEntries(columns.map((c, i) => [c, cells[i]])));
      }
      return rows;
    } finally {
      fs.rmSync(file, { force: true });
    }
  }

  /** The local address of the load balancer's forwarding listener. */
  albUrl(): string | undefined {
    return this.alb.url(443) ?? this.alb.url(80);
  }

  host(i: number): RigHost | undefined {
    return this.world.hosts.get(`h${i}`);
  }

  /** `npm run package-site` (the variant's artifact) + `npm run release -- --stack S --artifact F --id ID`. */
  async release(variant: Variant, id: string): Promise<ReleaseSaid> {
    const a = await siteArtifact(variant, path.join(this.work, "artifacts"));
    return this.releaseFile(a.file, id, `site-${variant}.tar.gz`);
  }

  /**
   * `npm run release -- --stack S --artifact FILE [--id ID]` with any artifact file (a user's
   * own, in `npm run rehearse -- --artifact FILE`); without `id`, the CLI's default id.
   */
  async releaseFile(file: string, id?: string, shown = file): Promise<ReleaseSaid> {
    const idArgs = id ? ["--id", id] : [];
    const r = await this.npm("release", ["--stack", this.stack, "--artifact", file, ...idArgs, "--dir", this.dir]);
    this.log(`   $ npm run release -- --stack ${this.stack} --artifact ${shown}${id ? ` --id ${id}` : ""}`);
    for (const l of (r.stdout + r.stderr).trim().split("\n")) this.log(`     ${l}`);
    if (r.code !== 0) throw new Error(`npm run release failed (exit ${r.code}): ${r.stderr.trim()}`);
    // "release r4 -> green slot of qa (replacing r3)"; "release r3 in green never went live (...)"
    const said = /release (\S+) -> (blue|green) slot/.exec(r.stdout);
    return {
      text: r.stdout,
      id: said?.[1],
      slot: (id && said?.[1] !== id ? undefined : said?.[2]) as Colour | undefined,
      neverLive: /release (\S+) in (?:blue|green) never went live/.exec(r.stdout)?.[1],
    };
  }

  /** `npm run rollback -- --stack S`. */
  async rollback(): Promise<RollbackSaid> {
    const r = await this.npm("rollback", ["--stack", this.stack, "--dir", this.dir]);
    this.log(`   $ npm run rollback -- --stack ${this.stack}`);
    for (const l of (r.stdout + r.stderr).trim().split("\n")) this.log(`     ${l}`);
    if (r.code !== 0) throw new Error(`npm run rollback failed (exit ${r.code}): ${r.stderr.trim()}`);
    // "live: green -> blue (release r1) in Pulumi.qa.yaml"
    const m = /live: (blue|green) -> (blue|green) \(release (\S+)\)/.exec(r.stdout);
    return { text: r.stdout, from: m?.[1] as Colour, to: m?.[2] as Colour, release: m?.[3] ?? "" };
  }

  outputs(): Record<string, unknown> {
    return this.lastOutputs;
  }

  async stop(): Promise<void> {
    await this.world.close().catch(() => undefined);
    await this.alb.close().catch(() => undefined);
    await this.aws.close().catch(() => undefined);
    await this.pg.stop().catch(() => undefined);
    await this.rig.stop().catch(() => undefined);
    fs.rmSync(this.work, { recursive: true, force: true });
  }
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

export { seconds };
