// Issue 11, item 8: the hosts' instance role allows what the host scripts call, and no more.
// The program's own policy documents, evaluated by @cloud-copilot/iam-simulate.
import * as assert from "assert";
import { ProgramRun, reveal } from "../rig/program";
import { byName, evaluate } from "./fakeEngine";
import { ACCOUNT, PolicyDoc, decide } from "../rig/iamSim";

const R = "eu-west-1";

describe("host role under the IAM simulator", () => {
  const runs: Record<string, ProgramRun> = {};
  before(async () => {
    runs.qa = await evaluate("qa");
    runs.prod = await evaluate("prod");
  });
  const doc = (stack: string, name: string, field = "policy"): PolicyDoc =>
    JSON.parse(reveal<Record<string, string>>(byName(runs[stack], name).inputs)[field]);
  const bucketArn = (stack: string, which: string) => {
    const b = runs[stack].resources.find(
      (r) => r.type === "aws:s3/bucket:Bucket" && r.name === `${stack}-buckets-${which}`,
    );
    assert.ok(b?.state, which);
    return String(b.state.arn);
  };
  const host = (stack: string) => doc(stack, `${stack}-host-policy`);
  const keyPolicy = (stack: string) => doc(stack, `${stack}-secrets-key`);
  const keyArn = (stack: string) => {
    const k = runs[stack].resources.find((r) => r.name === `${stack}-secrets-key` && r.custom)!;
    return String(k.state!.arn);
  };

  for (const stack of ["qa", "prod"]) {
    const other = stack === "qa" ? "prod" : "qa";

    it(`${stack}: backups under db/: put, stream (abort a failed multipart upload), read, delete a failed one`, async () => {
      const backups = bucketArn(stack, "backups");
      for (const action of ["s3:PutObject", "s3:AbortMultipartUpload", "s3:GetObject", "s3:DeleteObject"])
        assert.equal(
          await decide(host(stack), action, `${backups}/db/20261121T101500Z-before-r42.dump`),
          "Allowed",
          action,
        );
      assert.equal(await decide(host(stack), "s3:ListBucket", backups), "Allowed", "a missing restore key is a 404");
      assert.notEqual(
        await decide(host(stack), "s3:DeleteObjectVersion", `${backups}/db/x.dump`),
        "Allowed",
        "a host can never destroy a backup version",
      );
      assert.notEqual(await decide(host(stack), "s3:PutObject", `${backups}/releases/x`), "Allowed", "outside db/");
      assert.notEqual(await decide(host(stack), "s3:PutBucketPolicy", backups), "Allowed");
    });

    it(`${stack}: media: the site's uploads (put, read, delete, list) and the backup's versions, never destroying one`, async () => {
      const media = bucketArn(stack, "media");
      const upload = `${media}/uploads/report.txt`;
      for (const action of ["s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload"])
        assert.equal(await decide(host(stack), action, upload), "Allowed", action);
      assert.equal(
        await decide(host(stack), "s3:GetObjectVersion", upload),
        "Allowed",
        "a restore copies a version back",
      );
      assert.equal(await decide(host(stack), "s3:ListBucket", media), "Allowed", "a missing upload is a 404");
      assert.equal(await decide(host(stack), "s3:ListBucketVersions", media), "Allowed", "the backup's manifest");
      for (const action of ["s3:DeleteObjectVersion", "s3:PutBucketVersioning", "s3:PutLifecycleConfiguration"])
        assert.notEqual(
          await decide(host(stack), action, action.includes("Object") ? upload : media),
          "Allowed",
          action,
        );
      const theirs = bucketArn(other, "media");
      for (const action of ["s3:GetObject", "s3:PutObject", "s3:GetObjectVersion"])
        assert.notEqual(await decide(host(stack), action, `${theirs}/uploads/x`), "Allowed", action);
      assert.notEqual(await decide(host(stack), "s3:ListBucketVersions", theirs), "Allowed");
    });

    it(`${stack}: artifacts are read-only; a missing one is a 404`, async () => {
      const artifacts = bucketArn(stack, "artifacts");
      assert.equal(await decide(host(stack), "s3:GetObject", `${artifacts}/releases/a.tar.gz`), "Allowed");
      assert.equal(await decide(host(stack), "s3:ListBucket", artifacts), "Allowed");
      for (const action of ["s3:PutObject", "s3:DeleteObject"])
        assert.notEqual(await decide(host(stack), action, `${artifacts}/releases/a.tar.gz`), "Allowed", action);
    });

    it(`${stack}: its own parameters only, decrypted only through SSM or S3`, async () => {
      const param = (st: string, n: string) => `arn:aws:ssm:${R}:${ACCOUNT}:parameter/greenlight/${st}/${n}`;
      assert.equal(
        await decide(host(stack), "ssm:GetParametersByPath", param(stack, "").replace(/\/$/, "")),
        "Allowed",
      );
      assert.equal(await decide(host(stack), "ssm:GetParameter", param(stack, "DB_PASSWORD")), "Allowed");
      assert.notEqual(await decide(host(stack), "ssm:GetParameter", param(other, "DB_PASSWORD")), "Allowed");
      assert.notEqual(await decide(host(stack), "ssm:PutParameter", param(stack, "DB_PASSWORD")), "Allowed");
      const decrypt = (via?: string) =>
        decide(
          host(stack),
          "kms:Decrypt",
          keyArn(stack),
          via ? { "kms:ViaService": via } : {},
          undefined,
          keyPolicy(stack),
        );
      assert.equal(await decrypt(`ssm.${R}.amazonaws.com`), "Allowed");
      assert.equal(await decrypt(`s3.${R}.amazonaws.com`), "Allowed");
      assert.notEqual(await decrypt(), "Allowed", "never directly: a stolen session cannot decrypt a copied blob");
    });

    it(`${stack}: nothing of the other stack`, async () => {
      const theirs = bucketArn(other, "backups");
      for (const action of ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"])
        assert.notEqual(await decide(host(stack), action, `${theirs}/db/x.dump`), "Allowed", action);
      assert.notEqual(await decide(host(stack), "s3:ListBucket", theirs), "Allowed");
    });
  }
});
