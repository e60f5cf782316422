// Issue 11, item 8: the S3/SSM stand-in enforces the hosts' real policy (hostPolicy, through
// @cloud-copilot/iam-simulate), and lib.sh's own AWS calls (aws_py: boto3, as on the hosts)
// run against it. A permission the role lacks fails here, as it would on AWS.
import * as assert from "assert";
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { hostPolicy } from "../../components/hosts";
import { AwsStandIn, startAwsStandIn } from "../rig/awsStandIn";
import { ROOT } from "../rig/stackConfig";

const LIB = path.join(ROOT, "scripts", "remote", "lib.sh");

describe("S3/SSM stand-in enforcing the hosts' policy", function () {
  this.timeout(120_000);
  let aws: AwsStandIn;
  let tmp: string;
  before(async function () {
    const py = spawnSync("/usr/bin/python3", ["-c", "import boto3"]);
    if (py.status !== 0)
      assert.fail("Debian's python3-boto3 is missing: apt-get install python3-boto3 (npm run pretest)");
    aws = await startAwsStandIn({
      policies: {
        ASIAHOSTROLE: hostPolicy({
          partition: "aws",
          account: "123456789012",
          region: "eu-west-1",
          parameterPath: "/greenlight/qa/",
          kmsKeyArn: "arn:aws:kms:eu-west-1:123456789012:key/qa",
          artifactBucketArn: "arn:aws:s3:::qa-artifacts",
          backupBucketArn: "arn:aws:s3:::qa-backups",
          mediaBucketArn: "arn:aws:s3:::qa-media",
        }),
      },
    });
    for (const b of ["qa-artifacts", "qa-backups", "prod-backups"]) aws.createBucket(b);
    for (const b of ["qa-media", "prod-media"]) aws.createBucket(b, { versioned: true });
    aws.putObject("qa-artifacts", "releases/a.tar.gz", Buffer.from("artifact"));
    aws.putObject("prod-backups", "db/x.dump", Buffer.from("theirs"));
    aws.putParameter("/greenlight/qa/DB_HOST", "db.internal", "String");
    aws.putParameter("/greenlight/prod/DB_PASSWORD", "not-for-qa", "SecureString");
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "gl-standin-"));
  });
  after(async () => {
    await aws?.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  /** lib.sh's aws_py, as a step runs it on a host (asynchronously: the stand-in serves from this process). */
  const awsPy = (args: string[], input?: Buffer, parameterPath = "/greenlight/qa/") =>
    new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn("bash", ["-c", 'source "$0"; aws_py "$@"', LIB, ...args], {
        env: {
          PATH: "/usr/bin:/bin",
          GL_REGION: "eu-west-1",
          GL_AWS_ENDPOINT_URL: aws.endpoint,
          GL_PARAMETER_PATH: parameterPath,
          AWS_ACCESS_KEY_ID: "ASIAHOSTROLE",
          AWS_SECRET_ACCESS_KEY: "host-role-session",
          HOME: tmp,
        },
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      child.on("error", reject);
      child.on("close", (status) => resolve({ status, stdout, stderr }));
      child.stdin.on("error", () => undefined); // the client may stop reading after a refusal
      child.stdin.end(input ?? Buffer.alloc(0));
    });
  const last = (n: number) =>
    aws
      .requests()
      .slice(-n)
      .map((r) => `${r.op} ${r.target} ${r.status}`);

  it("downloads an artifact; may not write one", async () => {
    const ok = await awsPy(["get", "qa-artifacts", "releases/a.tar.gz", path.join(tmp, "a")]);
    assert.equal(ok.status, 0, ok.stderr);
    const put = await awsPy(["put", "qa-artifacts", "releases/evil.tar.gz", "-"], Buffer.from("x"));
    assert.notEqual(put.status, 0);
    assert.match(put.stderr, /AccessDenied/);
    assert.equal(aws.getObject("qa-artifacts", "releases/evil.tar.gz"), undefined);
  });

  it("writes a backup under db/ and deletes a failed one (s3:DeleteObject)", async () => {
    const put = await awsPy(["put", "qa-backups", "db/t-before-r1.dump", "-"], Buffer.from("dump"));
    assert.equal(put.status, 0, put.stderr);
    const rm = await awsPy(["rm", "qa-backups", "db/t-before-r1.dump"]);
    assert.equal(rm.status, 0, rm.stderr);
    assert.deepEqual(last(1), ["DeleteObject qa-backups/db/t-before-r1.dump 204"]);
  });

  it("a streamed backup whose upload fails is aborted, and the abort is allowed (s3:AbortMultipartUpload)", async () => {
    aws.failNext("UploadPart", 20);
    const big = Buffer.alloc(20 * 1024 * 1024, 7);
    const put = await awsPy(["put", "qa-backups", "db/t-before-r2.dump", "-"], big);
    aws.clearFaults();
    assert.notEqual(put.status, 0);
    const aborts = aws.requests().filter((r) => r.op === "AbortMultipartUpload");
    assert.ok(aborts.length >= 1, `no abort: ${last(5).join(", ")}`);
    for (const a of aborts) assert.equal(a.status, 204, "the abort itself was refused");
  });

  it("a missing restore key is a 404, not an AccessDenied (s3:ListBucket)", async () => {
    const r = await awsPy(["get", "qa-backups", "db/missing.dump", path.join(tmp, "m")]);
    assert.notEqual(r.status, 0);
    assert.deepEqual(last(1), ["GetObject qa-backups/db/missing.dump 404"]);
    assert.doesNotMatch(r.stderr, /AccessDenied|403/);
  });

  it("holds only the hosts' credentials to the policy: an operator's key may upload an artifact", async () => {
    const r = await fetch(`${aws.endpoint}/qa-artifacts/releases/b.tar.gz`, {
      method: "PUT",
      body: "artifact",
      headers: {
        authorization:
          "AWS4-HMAC-SHA256 Credential=AKIAOPERATOR/20261201/eu-west-1/s3/aws4_request, SignedHeaders=host, Signature=x",
      },
    });
    assert.equal(r.status, 200, await r.text());
  });

  it("nothing of another stack: its backups and its parameters are AccessDenied", async () => {
    const theirs = await awsPy(["get", "prod-backups", "db/x.dump", path.join(tmp, "x")]);
    assert.notEqual(theirs.status, 0);
    assert.deepEqual(last(1), ["GetObject prod-backups/db/x.dump 403"]);
    const env = await awsPy(["env"], undefined, "/greenlight/prod/");
    assert.notEqual(env.status, 0);
    assert.match(env.stderr, /AccessDenied/);
    assert.doesNotMatch(env.stdout + env.stderr, /not-for-qa/);
    const own = await awsPy(["env"]);
    assert.equal(own.status, 0, own.stderr);
    assert.match(own.stdout, /^DB_HOST=db\.internal$/m);
  });

  it("media: the backup's manifest names each upload's version, and the restore puts that state back", async () => {
    aws.putObject("qa-media", "uploads/a.txt", Buffer.from("a1"));
    aws.putObject("qa-media", "uploads/b.txt", Buffer.from("b1"));
    aws.putObject("qa-media", "uploads/gone.txt", Buffer.from("deleted before the backup"));
    const rmGone = await awsPy(["rm", "qa-media", "uploads/gone.txt"]);
    assert.equal(rmGone.status, 0, rmGone.stderr);
    const since = Math.floor(Date.now() / 1000) + 5; // the dump "began" after all of the above
    const m = await awsPy(
      ["media-manifest", "qa-media", "qa-backups", "db/t-before-r3.media.json"],
      Buffer.from(`go ${since}\n`),
    );
    assert.equal(m.status, 0, m.stderr);
    assert.deepEqual(JSON.parse(m.stdout), { key: "db/t-before-r3.media.json", objects: 2, bytes: 4 });
    const manifest = JSON.parse(aws.getObject("qa-backups", "db/t-before-r3.media.json")!.toString()) as {
      objects: { key: string; versionId: string; etag: string; size: number }[];
    };
    assert.deepEqual(
      manifest.objects.map((o) => o.key),
      ["uploads/a.txt", "uploads/b.txt"],
    );
    assert.ok(manifest.objects.every((o) => o.versionId && o.versionId !== "null" && /^[0-9a-f]{32}$/.test(o.etag)));

    // After the backup: a.txt replaced, b.txt deleted, c.txt new.
    aws.putObject("qa-media", "uploads/a.txt", Buffer.from("a2"));
    assert.equal((await awsPy(["rm", "qa-media", "uploads/b.txt"])).status, 0);
    aws.putObject("qa-media", "uploads/c.txt", Buffer.from("c"));
    const r = await awsPy(["media-restore", "qa-media", "qa-backups", "db/t-before-r3.media.json"]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), {
      manifest: "db/t-before-r3.media.json",
      objects: 2,
      copiedBack: 2,
      removed: 1,
    });
    assert.deepEqual(aws.listKeys("qa-media"), ["uploads/a.txt", "uploads/b.txt"]);
    assert.equal(aws.getObject("qa-media", "uploads/a.txt")!.toString(), "a1");
    assert.equal(aws.getObject("qa-media", "uploads/b.txt")!.toString(), "b1");
    const again = await awsPy(["media-restore", "qa-media", "qa-backups", "db/t-before-r3.media.json"]);
    assert.equal(JSON.parse(again.stdout).copiedBack, 0, "a second restore changes nothing");
  });

  it("media: a manifest counts an upload deleted while the dump ran", async () => {
    aws.putObject("qa-media", "late/x.txt", Buffer.from("x"));
    const since = Math.floor(Date.now() / 1000);
    assert.equal((await awsPy(["rm", "qa-media", "late/x.txt"])).status, 0);
    const m = await awsPy(
      ["media-manifest", "qa-media", "qa-backups", "db/t-late.media.json"],
      Buffer.from(`go ${since}\n`),
    );
    assert.equal(m.status, 0, m.stderr);
    const manifest = JSON.parse(aws.getObject("qa-backups", "db/t-late.media.json")!.toString()) as {
      objects: { key: string }[];
    };
    assert.ok(
      manifest.objects.some((o) => o.key === "late/x.txt"),
      JSON.stringify(manifest),
    );
  });

  it("media: a host may hide an upload, never destroy a version (no s3:DeleteObjectVersion), nor touch another stack's", async () => {
    const listed = await fetch(`${aws.endpoint}/qa-media?versions`, {
      headers: {
        authorization:
          "AWS4-HMAC-SHA256 Credential=ASIAHOSTROLE/20261201/eu-west-1/s3/aws4_request, SignedHeaders=host, Signature=x",
      },
    });
    const version = /<VersionId>([^<]+)<\/VersionId>/.exec(await listed.text())![1];
    const destroy = await fetch(`${aws.endpoint}/qa-media/uploads/a.txt?versionId=${version}`, {
      method: "DELETE",
      headers: {
        authorization:
          "AWS4-HMAC-SHA256 Credential=ASIAHOSTROLE/20261201/eu-west-1/s3/aws4_request, SignedHeaders=host, Signature=x",
      },
    });
    assert.equal(destroy.status, 403);
    aws.putObject("prod-media", "uploads/theirs.txt", Buffer.from("theirs"));
    const theirs = await awsPy(["get", "prod-media", "uploads/theirs.txt", path.join(tmp, "t")]);
    assert.notEqual(theirs.status, 0);
    assert.deepEqual(last(1), ["GetObject prod-media/uploads/theirs.txt 403"]);
  });

  it("media: take_backup writes the manifest next to the dump and names it; a failed listing fails the backup", async () => {
    // pg_dump and pg_restore stand-ins on PATH: this is about the stream and the manifest, not PostgreSQL.
    const bin = fs.mkdtempSync(path.join(tmp, "bin-"));
    fs.writeFileSync(path.join(bin, "pg_dump"), "#!/bin/sh\nprintf 'PGDMP dump bytes'\n", { mode: 0o755 });
    fs.writeFileSync(path.join(bin, "pg_restore"), "#!/bin/sh\ncat >/dev/null\necho '-- Name: notes_note'\n", {
      mode: 0o755,
    });
    for (const [k, v] of Object.entries({ DB_HOST: "db", DB_PORT: "5432", DB_NAME: "site", DB_USER: "site" }))
      aws.putParameter(`/greenlight/qa/${k}`, v, "String");
    aws.putParameter("/greenlight/qa/DB_PASSWORD", "pw", "SecureString");
    const backup = (media: string, label: string) =>
      new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve, reject) => {
        const child = spawn("bash", ["-c", 'source "$0"; take_backup "$1"', LIB, label], {
          env: {
            PATH: `${bin}:/usr/bin:/bin`,
            GL_REGION: "eu-west-1",
            GL_AWS_ENDPOINT_URL: aws.endpoint,
            GL_PARAMETER_PATH: "/greenlight/qa/",
            GL_BACKUP_BUCKET: "qa-backups",
            GL_MEDIA_BUCKET: media,
            GL_BACKUP_MIN_FREE_MB: "1",
            AWS_ACCESS_KEY_ID: "ASIAHOSTROLE",
            AWS_SECRET_ACCESS_KEY: "host-role-session",
            HOME: tmp,
            TMPDIR: tmp,
          },
        });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
        child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        child.on("error", reject);
        child.on("close", (status) => resolve({ status, stdout, stderr }));
      });
    const ok = await backup("qa-media", "before-r9");
    assert.equal(ok.status, 0, ok.stderr);
    const result = JSON.parse(ok.stdout.trim().split("\n").pop()!);
    assert.match(result.key, /^db\/\d{8}T\d{6}Z-before-r9\.dump$/);
    assert.equal(result.media.key, result.key.replace(/\.dump$/, ".media.json"));
    const manifest = JSON.parse(aws.getObject("qa-backups", result.media.key)!.toString()) as {
      bucket: string;
      objects: { key: string }[];
    };
    assert.equal(result.media.objects, manifest.objects.length);
    // Every current upload; an upload deleted in the second before the dump began may be listed too.
    for (const k of aws.listKeys("qa-media"))
      assert.ok(
        manifest.objects.some((o) => o.key === k),
        k,
      );
    assert.equal(manifest.bucket, "qa-media");
    assert.equal(aws.getObject("qa-backups", result.key)!.toString(), "PGDMP dump bytes");

    // Another stack's media bucket: the listing is refused, and no dump counts as a backup.
    const before = aws.listKeys("qa-backups", "db/");
    const refused = await backup("prod-media", "before-r10");
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /no backup: the media manifest of s3:\/\/prod-media could not be written/);
    assert.deepEqual(aws.listKeys("qa-backups", "db/"), before, "the dump was removed again");
  });
});
