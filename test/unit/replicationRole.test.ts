// Issue 13: the role S3 replication assumes copies the backups and media into their replicas
// in backupReplicaRegion, and nothing else; the hosts' role cannot reach either replica.
// The program's own policy documents, evaluated by @cloud-copilot/iam-simulate.
import * as assert from "assert";
import { ProgramRun, reveal } from "../rig/program";
import { evaluate } from "./fakeEngine";
import { ACCOUNT, PolicyDoc, decide } from "../rig/iamSim";

describe("replication role under the IAM simulator", () => {
  let run: ProgramRun;
  let other: ProgramRun;
  before(async () => {
    run = await evaluate("prod", { backupReplicaRegion: "eu-central-1" });
    other = await evaluate("qa", { backupReplicaRegion: "eu-central-1" });
  });
  const find = (r: ProgramRun, type: string, name: string) => {
    const x = r.resources.find((y) => y.type === type && y.name === name);
    assert.ok(x?.state, `${type} ${name}`);
    return x;
  };
  const doc = (r: ProgramRun, name: string): PolicyDoc =>
    JSON.parse(reveal<Record<string, string>>(find(r, "aws:iam/rolePolicy:RolePolicy", name).inputs).policy);
  const bucket = (which: string, r = run) => {
    const stack = r === run ? "prod" : "qa";
    return String(find(r, "aws:s3/bucket:Bucket", `${stack}-buckets-${which}`).state!.arn);
  };
  const key = (name: string) => String(find(run, "aws:kms/key:Key", name).state!.arn);
  // KMS needs the key's own policy too: the environment's key has one; the replica key has
  // AWS's default, which leaves the decision to the account's IAM policies, as that one does.
  const keyPolicy = (name: string): PolicyDoc => {
    const p = reveal<Record<string, string>>(find(run, "aws:kms/key:Key", name).inputs).policy;
    if (p) return JSON.parse(p);
    return {
      Version: "2012-10-17",
      Statement: [
        { Effect: "Allow", Principal: { AWS: `arn:aws:iam::${ACCOUNT}:root` }, Action: "kms:*", Resource: "*" },
      ],
    };
  };
  const kms = (policy: PolicyDoc, action: string, name: string, context: Record<string, string> = {}) =>
    decide(policy, action, key(name), context, undefined, keyPolicy(name));
  const replication = () => doc(run, "prod-buckets-replication");
  const host = () => doc(run, "prod-host-policy");

  it("reads media's versions for replication and writes them into the media replica", async () => {
    const media = bucket("media");
    assert.equal(await decide(replication(), "s3:GetReplicationConfiguration", media), "Allowed");
    assert.equal(await decide(replication(), "s3:ListBucket", media), "Allowed");
    for (const action of ["s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging"])
      assert.equal(await decide(replication(), action, `${media}/uploads/report.txt`), "Allowed", action);
    for (const action of ["s3:ReplicateObject", "s3:ReplicateTags"])
      assert.equal(
        await decide(replication(), action, `${bucket("media-replica")}/uploads/report.txt`),
        "Allowed",
        action,
      );
    assert.equal(await kms(replication(), "kms:Decrypt", "prod-secrets-key"), "Allowed", "the source's key");
    for (const action of ["kms:Encrypt", "kms:GenerateDataKey"])
      assert.equal(await kms(replication(), action, "prod-buckets-replica-key"), "Allowed", action);
  });

  it("still replicates the backups (dumps and their media manifests) into theirs", async () => {
    const dump = "db/20261121T101500Z-before-r42";
    for (const file of [`${dump}.dump`, `${dump}.media.json`]) {
      assert.equal(
        await decide(replication(), "s3:GetObjectVersionForReplication", `${bucket("backups")}/${file}`),
        "Allowed",
      );
      assert.equal(
        await decide(replication(), "s3:ReplicateObject", `${bucket("backups-replica")}/${file}`),
        "Allowed",
      );
    }
  });

  it("cannot write anywhere else: not the sources, not across the pairs, not another stack, no deletes", async () => {
    const upload = "uploads/report.txt";
    const elsewhere = [
      bucket("media"),
      bucket("backups"),
      bucket("artifacts"),
      bucket("media-replica", other),
      bucket("backups-replica", other),
    ];
    for (const b of elsewhere)
      for (const action of ["s3:ReplicateObject", "s3:PutObject", "s3:ReplicateTags"])
        assert.notEqual(await decide(replication(), action, `${b}/${upload}`), "Allowed", `${action} on ${b}`);
    for (const b of [bucket("media-replica"), bucket("backups-replica")]) {
      for (const action of ["s3:ReplicateDelete", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObject"])
        assert.notEqual(await decide(replication(), action, `${b}/${upload}`), "Allowed", `${action} on ${b}`);
      for (const action of ["s3:PutLifecycleConfiguration", "s3:PutBucketVersioning", "s3:PutBucketPolicy"])
        assert.notEqual(await decide(replication(), action, b), "Allowed", `${action} on ${b}`);
    }
    assert.notEqual(
      await decide(replication(), "s3:GetObjectVersionForReplication", `${bucket("media", other)}/${upload}`),
      "Allowed",
      "another stack's media",
    );
    assert.notEqual(await decide(replication(), "s3:GetObject", `${bucket("media")}/${upload}`), "Allowed");
    assert.notEqual(await kms(replication(), "kms:Decrypt", "prod-buckets-replica-key"), "Allowed");
  });

  it("the hosts' role cannot touch either replica", async () => {
    for (const b of [bucket("media-replica"), bucket("backups-replica")]) {
      for (const action of [
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:DeleteObjectVersion",
        "s3:ReplicateObject",
      ])
        assert.notEqual(await decide(host(), action, `${b}/uploads/x`), "Allowed", `${action} on ${b}`);
      for (const action of ["s3:ListBucket", "s3:ListBucketVersions", "s3:PutLifecycleConfiguration"])
        assert.notEqual(await decide(host(), action, b), "Allowed", `${action} on ${b}`);
    }
    assert.notEqual(
      await kms(host(), "kms:Decrypt", "prod-buckets-replica-key", {
        "kms:ViaService": "s3.eu-central-1.amazonaws.com",
      }),
      "Allowed",
    );
    // The probe is of the replicas, not of a host that cannot do anything: its own media it can.
    assert.equal(await decide(host(), "s3:PutObject", `${bucket("media")}/uploads/x`), "Allowed");
  });
});
