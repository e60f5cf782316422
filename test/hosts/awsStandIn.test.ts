// Checks the S3/SSM stand-in against the real clients that will talk to it: Debian's awscli
// 2.9.19 (what the host scripts run) and @aws-sdk/client-s3 + lib-storage (what the release
// CLI runs). A stand-in that only agrees with itself would prove nothing.
//
// The CLI runs with AWS_MAX_ATTEMPTS=1 so one injected fault fails a command deterministically;
// one test drops that variable to show the CLI's own retries absorb a single 500.
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Readable } from "node:stream";
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { AwsStandIn, startAwsStandIn } from "../rig/awsStandIn";

const AWS = "/usr/bin/aws";
const MiB = 1024 * 1024;
const sha256 = (b: Buffer) => crypto.createHash("sha256").update(b).digest("hex");
const md5 = (b: Buffer) => crypto.createHash("md5").update(b).digest("hex");

interface Run {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

describe("AWS stand-in (S3 + SSM)", function () {
  this.timeout(120_000);
  let standIn: AwsStandIn;
  let tmp: string;

  before(async () => {
    standIn = await startAwsStandIn();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "greenlight-aws-"));
    standIn.createBucket("artifacts");
  });
  after(async () => {
    await standIn?.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  const opsSince = (mark: number) => standIn.requests().slice(mark);
  const mark = () => standIn.requests().length;
  /** Puts an object with a bare PUT, so a test does not depend on an earlier one's uploads. */
  const seed = async (bucket: string, key: string, body: Buffer) => {
    const r = await fetch(`${standIn.endpoint}/${bucket}/${key}`, { method: "PUT", body });
    assert.equal(r.status, 200, await r.text());
  };

  describe("with awscli 2.9.19", () => {
    let env: NodeJS.ProcessEnv;
    const small = Buffer.from("release 42\n");
    const big = crypto.randomBytes(20 * MiB + 12345);
    let smallFile: string;
    let bigFile: string;

    before(() => {
      assert.ok(fs.existsSync(AWS), `${AWS} is required: apt-get install awscli (the hosts run Debian's)`);
      const home = path.join(tmp, "home");
      fs.mkdirSync(home);
      // Built from scratch so no AWS_PROFILE or real ~/.aws leaks in from the developer's shell.
      env = {
        PATH: process.env.PATH,
        HOME: home,
        LC_ALL: "C.UTF-8",
        AWS_ACCESS_KEY_ID: "AKIDSTANDIN",
        AWS_SECRET_ACCESS_KEY: "stand-in-secret",
        AWS_DEFAULT_REGION: "eu-west-1",
        AWS_CONFIG_FILE: path.join(home, "config"),
        AWS_SHARED_CREDENTIALS_FILE: path.join(home, "credentials"),
        AWS_EC2_METADATA_DISABLED: "true",
        AWS_PAGER: "",
        AWS_MAX_ATTEMPTS: "1",
      };
      smallFile = path.join(tmp, "small.txt");
      fs.writeFileSync(smallFile, small);
      bigFile = path.join(tmp, "big.bin");
      fs.writeFileSync(bigFile, big);
    });

    function aws(args: string[], opts: { input?: Buffer; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
      return new Promise((resolve, reject) => {
        const child = spawn(AWS, ["--endpoint-url", standIn.endpoint, ...args], { env: opts.env ?? env });
        const out: Buffer[] = [];
        const err: Buffer[] = [];
        child.stdout.on("data", (c: Buffer) => out.push(c));
        child.stderr.on("data", (c: Buffer) => err.push(c));
        child.on("error", reject);
        child.on("close", (code) =>
          resolve({ code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() }),
        );
        child.stdin.on("error", () => undefined);
        child.stdin.end(opts.input);
      });
    }
    async function ok(args: string[], opts?: { input?: Buffer; env?: NodeJS.ProcessEnv }): Promise<Buffer> {
      const r = await aws(args, opts);
      assert.equal(r.code, 0, `aws ${args.join(" ")} failed:\n${r.stderr}`);
      return r.stdout;
    }
    const json = async (args: string[]) => JSON.parse((await ok([...args, "--output", "json"])).toString());

    describe("S3", () => {
      it("uploads a small file with SSE-KMS and serves it back with head-object metadata", async () => {
        const body = small;
        const m = mark();
        await ok([
          "s3",
          "cp",
          smallFile,
          "s3://artifacts/releases/small.txt",
          "--sse",
          "aws:kms",
          "--only-show-errors",
        ]);
        assert.deepEqual(standIn.getObject("artifacts", "releases/small.txt"), body);
        assert.deepEqual(opsSince(m), [{ op: "PutObject", target: "artifacts/releases/small.txt", status: 200 }]);

        const head = await json(["s3api", "head-object", "--bucket", "artifacts", "--key", "releases/small.txt"]);
        assert.equal(head.ContentLength, body.length);
        assert.equal(head.ETag, `"${md5(body)}"`);
        assert.equal(head.ServerSideEncryption, "aws:kms");
        assert.ok(head.LastModified, "LastModified missing");

        const back = path.join(tmp, "small.back");
        await ok(["s3", "cp", "s3://artifacts/releases/small.txt", back, "--only-show-errors"]);
        assert.deepEqual(fs.readFileSync(back), body);
      });

      it("round-trips a 20 MB file through multipart upload and ranged download", async () => {
        const body = big;
        const m = mark();
        await ok(["s3", "cp", bigFile, "s3://artifacts/releases/big.bin", "--sse", "aws:kms", "--only-show-errors"]);
        const up = opsSince(m).map((r) => `${r.op} ${r.status}`);
        assert.deepEqual(up.sort(), [
          "CompleteMultipartUpload 200",
          "CreateMultipartUpload 200",
          "UploadPart 200",
          "UploadPart 200",
          "UploadPart 200",
        ]);
        assert.equal(sha256(standIn.getObject("artifacts", "releases/big.bin")!), sha256(body));
        const head = await json(["s3api", "head-object", "--bucket", "artifacts", "--key", "releases/big.bin"]);
        assert.match(head.ETag, /^"[0-9a-f]{32}-3"$/);
        assert.equal(head.ContentLength, body.length);

        const back = path.join(tmp, "big.back");
        const m2 = mark();
        await ok(["s3", "cp", "s3://artifacts/releases/big.bin", back, "--only-show-errors"]);
        assert.equal(sha256(fs.readFileSync(back)), sha256(body));
        const ranged = opsSince(m2).filter((r) => r.op === "GetObject");
        assert.ok(ranged.length >= 3 && ranged.every((r) => r.status === 206), JSON.stringify(ranged));
      });

      it("uploads from stdin, small and large (multipart from a stream), and downloads to stdout", async () => {
        const small = Buffer.from("DJANGO_SETTINGS_MODULE=site.settings\n");
        await ok(["s3", "cp", "-", "s3://artifacts/stdin/small", "--only-show-errors"], { input: small });
        assert.deepEqual(standIn.getObject("artifacts", "stdin/small"), small);

        const large = crypto.randomBytes(12 * MiB);
        const m = mark();
        await ok(["s3", "cp", "-", "s3://artifacts/stdin/large", "--only-show-errors"], { input: large });
        assert.ok(opsSince(m).some((r) => r.op === "CompleteMultipartUpload" && r.status === 200));
        const out = await ok(["s3", "cp", "s3://artifacts/stdin/large", "-"]);
        assert.equal(sha256(out), sha256(large));
      });

      it("fails on missing keys and buckets with S3's error codes", async () => {
        const get = await aws(["s3api", "get-object", "--bucket", "artifacts", "--key", "nope", path.join(tmp, "x")]);
        assert.notEqual(get.code, 0);
        assert.match(get.stderr, /NoSuchKey/);

        const cp = await aws(["s3", "cp", "s3://artifacts/nope", path.join(tmp, "x")]);
        assert.notEqual(cp.code, 0);
        assert.match(cp.stderr, /404/);

        const put = await aws(["s3", "cp", smallFile, "s3://no-such-bucket/k"]);
        assert.notEqual(put.code, 0);
        assert.match(put.stderr, /NoSuchBucket/);

        assert.notEqual((await aws(["s3api", "head-bucket", "--bucket", "no-such-bucket"])).code, 0);
        await ok(["s3api", "head-bucket", "--bucket", "artifacts"]);
        assert.match((await ok(["s3", "ls"])).toString(), / artifacts\n/);
      });

      it("lists with delimiters, pages through continuation tokens and deletes recursively", async () => {
        const keys = ["site/a.txt", "site/b c.txt", "site/c+d.txt", "site/sub/e.txt", "site/sub/f.txt", "siteX"];
        standIn.createBucket("listing");
        const dir = path.join(tmp, "tree");
        for (const k of keys) {
          fs.mkdirSync(path.dirname(path.join(dir, k)), { recursive: true });
          fs.writeFileSync(path.join(dir, k), k);
        }
        await ok(["s3", "cp", dir, "s3://listing/", "--recursive", "--only-show-errors"]);
        assert.deepEqual(standIn.listKeys("listing"), [...keys].sort());
        assert.equal(standIn.getObject("listing", "site/c+d.txt")?.toString(), "site/c+d.txt");

        const ls = (await ok(["s3", "ls", "s3://listing/site/"])).toString();
        assert.match(ls, /PRE sub\/\n/);
        for (const name of ["a.txt", "b c.txt", "c+d.txt"]) assert.ok(ls.includes(` ${name}\n`), ls);
        assert.ok(!ls.includes("siteX") && !ls.includes("e.txt"), ls);

        const m = mark();
        const listed = await json([
          "s3api",
          "list-objects-v2",
          "--bucket",
          "listing",
          "--prefix",
          "site/",
          "--page-size",
          "2",
        ]);
        assert.deepEqual(
          listed.Contents.map((c: { Key: string }) => c.Key),
          keys.filter((k) => k.startsWith("site/")),
        );
        assert.equal(opsSince(m).filter((r) => r.op === "ListObjectsV2").length, 3);

        await ok(["s3", "rm", "s3://listing/site/", "--recursive", "--only-show-errors"]);
        assert.deepEqual(standIn.listKeys("listing"), ["siteX"]);
      });
    });

    describe("SSM", () => {
      const plain: Record<string, string> = {};
      const secure: Record<string, string> = {};

      before(() => {
        for (let i = 0; i < 10; i++) plain[`/greenlight/qa/SETTING_${i}`] = `value ${i} with spaces & =`;
        for (let i = 0; i < 8; i++) secure[`/greenlight/qa/SECRET_${i}`] = crypto.randomBytes(24).toString("base64url");
        for (let i = 0; i < 4; i++) plain[`/greenlight/qa/mail/OPTION_${i}`] = `mail-${i}`;
        secure["/greenlight/qa/db/PASSWORD"] = "s3cr3t-db-password";
        secure["/greenlight/qa/db/deep/er/KEY"] = "nested-secret";
        secure["/greenlight/qa/sentry/DSN"] = "https://key@sentry.example/1";
        for (const [k, v] of Object.entries(plain)) standIn.putParameter(k, v, "String");
        for (const [k, v] of Object.entries(secure)) standIn.putParameter(k, v, "SecureString");
        // Neighbours that a sloppy prefix match would leak into qa.
        standIn.putParameter("/greenlight/prod/SECRET_0", "prod-only", "SecureString");
        standIn.putParameter("/greenlight/qa-old/SETTING", "old", "String");
        standIn.putParameter("/greenlight/qaX", "x", "String");
        assert.equal(Object.keys(plain).length + Object.keys(secure).length, 25);
      });

      it("returns every parameter under the path, decrypted, across pages, and nothing else", async () => {
        const m = mark();
        const out = await json([
          "ssm",
          "get-parameters-by-path",
          "--path",
          "/greenlight/qa/",
          "--recursive",
          "--with-decryption",
        ]);
        const got = Object.fromEntries(out.Parameters.map((p: { Name: string; Value: string }) => [p.Name, p.Value]));
        assert.deepEqual(got, { ...plain, ...secure });
        for (const p of out.Parameters) {
          assert.equal(p.Type, p.Name in secure ? "SecureString" : "String");
          assert.equal(p.ARN, `arn:aws:ssm:eu-west-1:123456789012:parameter${p.Name}`);
          assert.equal(p.DataType, "text");
          assert.equal(p.Version, 1);
        }
        const pages = opsSince(m);
        assert.equal(pages.length, 3, "25 parameters at 10 per page");
        assert.ok(pages.every((r) => r.op === "GetParametersByPath" && r.target === "/greenlight/qa/"));
        const log = JSON.stringify(standIn.requests());
        for (const v of [...Object.values(secure), ...Object.values(plain)])
          assert.ok(!log.includes(v), "value logged");
      });

      it("hides SecureString values without --with-decryption and lists only direct children without --recursive", async () => {
        const out = await json(["ssm", "get-parameters-by-path", "--path", "/greenlight/qa"]);
        const names = out.Parameters.map((p: { Name: string }) => p.Name).sort();
        const direct = [...Object.keys(plain), ...Object.keys(secure)].filter((n) => n.split("/").length === 4);
        assert.deepEqual(names, direct.sort());
        for (const p of out.Parameters) {
          if (p.Name in secure) assert.notEqual(p.Value, secure[p.Name]);
          else assert.equal(p.Value, plain[p.Name]);
        }
      });

      it("gets, puts, overwrites and deletes single parameters with SSM's errors", async () => {
        const one = await json(["ssm", "get-parameter", "--name", "/greenlight/qa/db/PASSWORD", "--with-decryption"]);
        assert.equal(one.Parameter.Value, secure["/greenlight/qa/db/PASSWORD"]);

        const missing = await aws(["ssm", "get-parameter", "--name", "/greenlight/qa/NOPE"]);
        assert.notEqual(missing.code, 0);
        assert.match(missing.stderr, /ParameterNotFound/);

        const put = ["ssm", "put-parameter", "--name", "/greenlight/qa/NEW", "--type", "SecureString"];
        assert.equal((await json([...put, "--value", "v1"])).Version, 1);
        const again = await aws([...put, "--value", "v2"]);
        assert.match(again.stderr, /ParameterAlreadyExists/);
        assert.equal((await json([...put, "--value", "v2", "--overwrite"])).Version, 2);
        const both = await json(["ssm", "get-parameters", "--names", "/greenlight/qa/NEW", "/greenlight/qa/GONE"]);
        assert.deepEqual(both.InvalidParameters, ["/greenlight/qa/GONE"]);
        assert.notEqual(both.Parameters[0].Value, "v2", "SecureString returned without decryption");
        await ok(["ssm", "delete-parameter", "--name", "/greenlight/qa/NEW"]);
        assert.match(
          (await aws(["ssm", "delete-parameter", "--name", "/greenlight/qa/NEW"])).stderr,
          /ParameterNotFound/,
        );
      });
    });

    describe("fault injection", () => {
      it("fails the CLI command on a 500 from PutObject, UploadPart, GetObject or GetParametersByPath", async () => {
        standIn.failNext("PutObject");
        const put = await aws(["s3", "cp", smallFile, "s3://artifacts/faults/put"]);
        assert.notEqual(put.code, 0);
        assert.match(put.stderr, /InternalError/);
        assert.equal(standIn.getObject("artifacts", "faults/put"), undefined);

        standIn.failNext("UploadPart");
        const m = mark();
        const big = await aws(["s3", "cp", bigFile, "s3://artifacts/faults/big"]);
        assert.notEqual(big.code, 0);
        assert.equal(standIn.getObject("artifacts", "faults/big"), undefined);
        assert.ok(
          opsSince(m).some((r) => r.op === "AbortMultipartUpload" && r.status === 204),
          "upload not aborted",
        );

        await seed("artifacts", "faults/get", small);
        standIn.failNext("GetObject");
        const get = await aws(["s3", "cp", "s3://artifacts/faults/get", path.join(tmp, "faulted")]);
        assert.notEqual(get.code, 0);
        assert.ok(!fs.existsSync(path.join(tmp, "faulted")), "partial download left behind");

        standIn.failNext("GetParametersByPath");
        const ssm = await aws(["ssm", "get-parameters-by-path", "--path", "/greenlight/qa/", "--recursive"]);
        assert.notEqual(ssm.code, 0);
        assert.match(ssm.stderr, /InternalServerError/);
        // Each fault is consumed exactly once.
        await ok(["ssm", "get-parameters-by-path", "--path", "/greenlight/qa/"]);
      });

      it("is absorbed by the CLI's default retries when only one request fails", async () => {
        const defaults = { ...env };
        delete defaults.AWS_MAX_ATTEMPTS;
        standIn.failNext("PutObject");
        const m = mark();
        await ok(["s3", "cp", smallFile, "s3://artifacts/faults/retried", "--only-show-errors"], {
          env: defaults,
        });
        assert.deepEqual(
          opsSince(m).map((r) => r.status),
          [500, 200],
        );
        assert.ok(standIn.getObject("artifacts", "faults/retried"));
      });
    });
  });

  describe("with @aws-sdk/client-s3 and lib-storage", () => {
    let client: S3Client;
    before(() => {
      client = new S3Client({
        endpoint: standIn.endpoint,
        forcePathStyle: true,
        region: "eu-west-1",
        credentials: { accessKeyId: "AKIDSTANDIN", secretAccessKey: "stand-in-secret" },
      });
    });
    after(() => client?.destroy());

    it("uploads a 20 MB buffer with Upload (multipart) and reads ranges back", async () => {
      const body = crypto.randomBytes(20 * MiB);
      const m = mark();
      const done = await new Upload({
        client,
        params: { Bucket: "artifacts", Key: "sdk/site.tar.gz", Body: body, ServerSideEncryption: "aws:kms" },
      }).done();
      assert.match(done.ETag ?? "", /^"[0-9a-f]{32}-4"$/);
      assert.equal(opsSince(m).filter((r) => r.op === "UploadPart" && r.status === 200).length, 4);
      assert.equal(sha256(standIn.getObject("artifacts", "sdk/site.tar.gz")!), sha256(body));

      const head = await client.send(new HeadObjectCommand({ Bucket: "artifacts", Key: "sdk/site.tar.gz" }));
      assert.equal(head.ContentLength, body.length);
      assert.equal(head.ServerSideEncryption, "aws:kms");
      const start = 5 * MiB - 10;
      const part = await client.send(
        new GetObjectCommand({ Bucket: "artifacts", Key: "sdk/site.tar.gz", Range: `bytes=${start}-${start + 99}` }),
      );
      assert.equal(part.ContentRange, `bytes ${start}-${start + 99}/${body.length}`);
      assert.deepEqual(Buffer.from(await part.Body!.transformToByteArray()), body.subarray(start, start + 100));
    });

    it("decodes aws-chunked streaming uploads and verifies their CRC32 trailer", async () => {
      const chunks = [crypto.randomBytes(70_000), crypto.randomBytes(3), crypto.randomBytes(100_000)];
      const body = Buffer.concat(chunks);
      await client.send(
        new PutObjectCommand({
          Bucket: "artifacts",
          Key: "sdk/streamed",
          Body: Readable.from(chunks),
          ContentLength: body.length,
        }),
      );
      assert.deepEqual(standIn.getObject("artifacts", "sdk/streamed"), body);
    });

    it("rejects what real S3 rejects: wrong digests, undersized parts, missing keys", async () => {
      const url = `${standIn.endpoint}/artifacts/sdk/digest`;
      const badMd5 = await fetch(url, {
        method: "PUT",
        body: "abc",
        headers: { "content-md5": crypto.createHash("md5").update("abd").digest("base64") },
      });
      assert.equal(badMd5.status, 400);
      assert.match(await badMd5.text(), /<Code>BadDigest<\/Code>/);
      const badCrc = await fetch(url, { method: "PUT", body: "abc", headers: { "x-amz-checksum-crc32": "AAAAAA==" } });
      assert.equal(badCrc.status, 400);
      assert.match(await badCrc.text(), /<Code>BadDigest<\/Code>/);
      assert.equal(standIn.getObject("artifacts", "sdk/digest"), undefined);
      // A sub-resource the stand-in does not know must not be taken for a plain PutObject.
      await seed("artifacts", "sdk/tagged", Buffer.from("keep me"));
      const tagging = await fetch(`${standIn.endpoint}/artifacts/sdk/tagged?tagging`, {
        method: "PUT",
        body: "x",
      });
      assert.equal(tagging.status, 501);
      assert.equal(standIn.getObject("artifacts", "sdk/tagged")?.toString(), "keep me");

      const key = "sdk/too-small";
      const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: "artifacts", Key: key }));
      const parts = [];
      for (const PartNumber of [1, 2]) {
        const r = await client.send(
          new UploadPartCommand({ Bucket: "artifacts", Key: key, UploadId, PartNumber, Body: Buffer.alloc(1024, 1) }),
        );
        parts.push({ PartNumber, ETag: r.ETag });
      }
      await assert.rejects(
        client.send(
          new CompleteMultipartUploadCommand({
            Bucket: "artifacts",
            Key: key,
            UploadId,
            MultipartUpload: { Parts: parts },
          }),
        ),
        (e: Error) => e.name === "EntityTooSmall",
      );

      await assert.rejects(
        client.send(new GetObjectCommand({ Bucket: "artifacts", Key: "sdk/absent" })),
        (e: Error) => e.name === "NoSuchKey",
      );
      await assert.rejects(
        client.send(new GetObjectCommand({ Bucket: "absent-bucket", Key: "k" })),
        (e: Error) => e.name === "NoSuchBucket",
      );
    });
  });
});
