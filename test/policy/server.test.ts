// The pack served for real: policy/index.ts in a child process (as `pulumi preview --policy-pack
// policy` starts it), asked over gRPC the way the engine asks. This pins what the harness
// mirrors: secrets arrive unwrapped, "not applicable" is per validation, unknown values make an
// advisory, stack policies pair resources through property dependencies, and the message a
// user reads is the policy's description followed by the violation.
import * as assert from "assert";
import { ChildProcess, spawn } from "child_process";
import { createRequire } from "module";
import * as path from "path";
import { ROOT } from "../rig/stackConfig";
import { UNKNOWN_STRING } from "./harness";

/* eslint-disable @typescript-eslint/no-explicit-any -- generated gRPC/protobuf code is untyped here */
// The analyzer's own transport libraries, resolved where @pulumi/policy resolves them.
const fromPolicy = createRequire(require.resolve("@pulumi/policy"));
const grpc = fromPolicy("@grpc/grpc-js");
const { Struct } = fromPolicy("google-protobuf/google/protobuf/struct_pb");
const pb = require("@pulumi/pulumi/proto/analyzer_pb"); // eslint-disable-line @typescript-eslint/no-require-imports
const rpc = require("@pulumi/pulumi/proto/analyzer_grpc_pb"); // eslint-disable-line @typescript-eslint/no-require-imports

const SECRET = (value: unknown) => ({ "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", value });
const urn = (type: string, name: string, stack = "prod") => `urn:pulumi:${stack}::greenlight::${type}::${name}`;

interface Diagnostic {
  policy: string;
  message: string;
  level: string;
  urn: string;
}

describe("policy pack served over gRPC (as the Pulumi CLI runs it)", function () {
  this.timeout(120_000);
  let child: ChildProcess;
  let client: any;

  before(async () => {
    child = spawn(process.execPath, ["-r", "ts-node/register/transpile-only", "index.ts"], {
      cwd: path.join(ROOT, "policy"),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr!.on("data", (d) => (stderr += d));
    const port = await new Promise<number>((resolve, reject) => {
      let out = "";
      child.stdout!.on("data", (d) => {
        out += d;
        const m = /^(\d+)\s*$/m.exec(out);
        if (m) resolve(Number(m[1]));
      });
      child.on("exit", (code) => reject(new Error(`the pack exited (${code}) before serving:\n${stderr}`)));
    });
    client = new rpc.AnalyzerClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  });

  after(() => {
    client?.close();
    if (child && child.exitCode === null) child.kill("SIGTERM");
  });

  const options = () => {
    const o = new pb.AnalyzerResourceOptions();
    o.setCustomtimeouts(new pb.AnalyzerResourceOptions.CustomTimeouts());
    return o;
  };
  const diagnostics = (res: any): Diagnostic[] =>
    res.getDiagnosticsList().map((d: any) => ({
      policy: d.getPolicyname(),
      message: d.getMessage(),
      level: d.getEnforcementlevel(),
      urn: d.getUrn(),
    }));
  const call = (method: string, req: unknown) =>
    new Promise<any>((resolve, reject) =>
      client[method](req, (err: Error, res: unknown) => (err ? reject(err) : resolve(res))),
    );

  async function analyze(type: string, name: string, props: object, stack = "prod"): Promise<Diagnostic[]> {
    const req = new pb.AnalyzeRequest();
    req.setType(type);
    req.setName(name);
    req.setUrn(urn(type, name, stack));
    req.setProperties(Struct.fromJavaScript(props));
    req.setOptions(options());
    return diagnostics(await call("analyze", req));
  }

  async function analyzeStack(
    resources: { type: string; name: string; props: object; deps?: Record<string, string[]> }[],
  ): Promise<Diagnostic[]> {
    const req = new pb.AnalyzeStackRequest();
    req.setResourcesList(
      resources.map((r) => {
        const a = new pb.AnalyzerResource();
        a.setType(r.type);
        a.setName(r.name);
        a.setUrn(urn(r.type, r.name));
        a.setProperties(Struct.fromJavaScript(r.props));
        a.setOptions(options());
        const all = Object.values(r.deps ?? {}).flat();
        a.setDependenciesList(all);
        for (const [k, urns] of Object.entries(r.deps ?? {})) {
          const d = new pb.AnalyzerPropertyDependencies();
          d.setUrnsList(urns);
          a.getPropertydependenciesMap().set(k, d);
        }
        return a;
      }),
    );
    return diagnostics(await call("analyzeStack", req));
  }

  it("reports a mandatory violation as description + message; a compliant resource gets none", async () => {
    const db = { engine: "postgres", storageEncrypted: true, backupRetentionPeriod: 14, deletionProtection: true };
    const bad = await analyze("aws:rds/instance:Instance", "db", { ...db, publiclyAccessible: true });
    const pub = bad.filter((d) => d.policy === "rds-not-public");
    assert.equal(pub.length, 1, JSON.stringify(bad));
    assert.match(pub[0].message, /^RDS instances are never publicly accessible.*\npubliclyAccessible is true/);
    assert.equal(pub[0].level, pb.EnforcementLevel.MANDATORY);
    const good = await analyze("aws:rds/instance:Instance", "db", {
      ...db,
      publiclyAccessible: false,
      finalSnapshotIdentifier: "prod-db-final-1",
    });
    assert.deepEqual(good, []);
  });

  it("sees a secret `connection` unwrapped (so messages must not quote it) and checks its host keys", async () => {
    const connection = { host: "10.0.0.5", privateKey: "-----BEGIN KEY-----", hostKey: "ssh-ed25519 AAAA" };
    const pinned = await analyze("command:remote:Command", "fetch", { connection: SECRET(connection), create: "true" });
    assert.deepEqual(pinned, []);
    const unpinned = await analyze("command:remote:Command", "fetch", {
      connection: SECRET({ ...connection, hostKey: "", proxy: { host: "b" } }),
      create: "true",
    });
    assert.deepEqual(unpinned.map((d) => d.message.split("\n")[1]).sort(), [
      "connection.hostKey is not set; allowed: the host's public key (known_hosts format)",
      "connection.proxy.hostKey is not set; allowed: the bastion's public key",
    ]);
    assert.ok(!JSON.stringify(unpinned).includes("BEGIN KEY"));
  });

  it("a policy over several classes still checks its second class", async () => {
    const d = await analyze("aws:alb/listener:Listener", "l", { protocol: "HTTPS", port: 443, sslPolicy: "old" });
    assert.deepEqual(
      d.map((x) => x.policy),
      ["alb-https-tls13"],
    );
  });

  it("an unknown value during preview turns a check into an advisory note, not a pass or a failure", async () => {
    const d = await analyze("aws:ec2/instance:Instance", "h", {
      metadataOptions: UNKNOWN_STRING,
      rootBlockDevice: { encrypted: true },
    });
    assert.equal(d.length, 1, JSON.stringify(d));
    assert.equal(d[0].policy, "ec2-imdsv2-required");
    assert.equal(d[0].level, pb.EnforcementLevel.ADVISORY);
    assert.match(d[0].message, /can't run policy 'ec2-imdsv2-required'.* during preview/);
  });

  it("pairs a bucket with its public access block through property dependencies while ids are unknown", async () => {
    const bucket = { type: "aws:s3/bucket:Bucket", name: "b", props: { bucket: UNKNOWN_STRING, arn: UNKNOWN_STRING } };
    const pab = {
      type: "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
      name: "b-pab",
      props: {
        bucket: UNKNOWN_STRING,
        blockPublicAcls: true,
        blockPublicPolicy: true,
        ignorePublicAcls: true,
        restrictPublicBuckets: true,
      },
      deps: { bucket: [urn(bucket.type, bucket.name)] },
    };
    const paired = await analyzeStack([bucket, pab]);
    assert.deepEqual(
      paired.filter((d) => d.policy === "s3-bucket-public-access-blocked"),
      [],
    );
    const alone = await analyzeStack([bucket]);
    const missing = alone.filter((d) => d.policy === "s3-bucket-public-access-blocked");
    assert.equal(missing.length, 1);
    assert.equal(missing[0].urn, urn(bucket.type, bucket.name));
    assert.equal(missing[0].level, pb.EnforcementLevel.MANDATORY);
  });
});
