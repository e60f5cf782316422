import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";
import { Policy, ResourceValidationPolicy, StackValidationPolicy } from "@pulumi/policy";
import * as P from "../../policy/policies";
import { ProgramRun } from "../rig/program";
import { Override, ROOT } from "../rig/stackConfig";
import { evaluate, slot } from "../unit/fakeEngine";
import {
  FakeResource,
  Outcome,
  UNKNOWN_STRING,
  isStackPolicy,
  resourcesOf,
  runResourcePolicy,
  runStackPolicy,
  urnOf,
} from "./harness";

const T = {
  ingressRule: "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
  sgRule: "aws:ec2/securityGroupRule:SecurityGroupRule",
  sg: "aws:ec2/securityGroup:SecurityGroup",
  rds: "aws:rds/instance:Instance",
  cache: "aws:elasticache/replicationGroup:ReplicationGroup",
  cacheCluster: "aws:elasticache/cluster:Cluster",
  instance: "aws:ec2/instance:Instance",
  bucket: "aws:s3/bucket:Bucket",
  pab: "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
  sse: "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
  bucketPolicy: "aws:s3/bucketPolicy:BucketPolicy",
  ssm: "aws:ssm/parameter:Parameter",
  lb: "aws:lb/loadBalancer:LoadBalancer",
  listener: "aws:lb/listener:Listener",
  albListener: "aws:alb/listener:Listener",
  command: "command:remote:Command",
  copy: "command:remote:CopyToRemote",
};

/** Violation messages of a resource policy on one resource. */
async function check(
  policy: ResourceValidationPolicy,
  type: string,
  props: Record<string, unknown>,
  opts: { config?: object; stack?: string } = {},
): Promise<string[]> {
  const out = await runResourcePolicy(policy, { type, name: "r", props }, opts.config, opts.stack);
  assert.deepEqual(out.unknown, [], "no unknown values in these fixtures");
  return out.violations.map((v) => v.message);
}

async function passes(policy: ResourceValidationPolicy, type: string, props: Record<string, unknown>, opts = {}) {
  assert.deepEqual(await check(policy, type, props, opts), [], `${policy.name} should accept ${JSON.stringify(props)}`);
}

async function fails(
  policy: ResourceValidationPolicy,
  type: string,
  props: Record<string, unknown>,
  expected: RegExp,
  opts = {},
) {
  const messages = await check(policy, type, props, opts);
  assert.ok(messages.length > 0, `${policy.name} should reject ${JSON.stringify(props)}`);
  assert.ok(
    messages.some((m) => expected.test(m)),
    `${policy.name}: expected a violation matching ${expected}, got ${JSON.stringify(messages)}`,
  );
}

const ingress = (props: Record<string, unknown>) => ({ securityGroupId: "sg-1", ...props });
const web = (port: number) => ingress({ cidrIpv4: "0.0.0.0/0", ipProtocol: "tcp", fromPort: port, toPort: port });

describe("policy pack: the rules", () => {
  it("has at least 12 uniquely named, described, mandatory policies", () => {
    const names = P.policies.map((p) => p.name);
    assert.ok(names.length >= 12, `only ${names.length} policies`);
    assert.equal(new Set(names).size, names.length, "policy names are unique");
    for (const p of P.policies as Policy[]) {
      assert.match(p.name, /^[a-z0-9-]+$/);
      assert.ok(p.description.length > 20, `${p.name} has a description`);
      assert.equal(p.enforcementLevel, "mandatory", `${p.name} is mandatory`);
    }
  });

  describe("sg-no-world-ingress", () => {
    const p = P.sgNoWorldIngress;
    it("allows TCP 80 and 443 from the world, anything from a narrower CIDR or a group", async () => {
      await passes(p, T.ingressRule, web(80));
      await passes(p, T.ingressRule, web(443));
      await passes(
        p,
        T.ingressRule,
        ingress({ cidrIpv4: "203.0.113.10/32", ipProtocol: "tcp", fromPort: 22, toPort: 22 }),
      );
      await passes(p, T.ingressRule, ingress({ referencedSecurityGroupId: "sg-2", ipProtocol: "-1" }));
    });
    it("rejects other ports, port ranges and all-traffic rules from 0.0.0.0/0 or ::/0", async () => {
      await fails(p, T.ingressRule, web(8443), /tcp 8443-8443 from 0\.0\.0\.0\/0 opens more than HTTP\/HTTPS/);
      await fails(
        p,
        T.ingressRule,
        ingress({ cidrIpv6: "::/0", ipProtocol: "tcp", fromPort: 80, toPort: 443 }),
        /tcp 80-443 from ::\/0/,
      );
      await fails(
        p,
        T.ingressRule,
        ingress({ cidrIpv4: "0.0.0.0/0", ipProtocol: "-1" }),
        /all traffic from 0\.0\.0\.0\/0/,
      );
      await fails(
        p,
        T.ingressRule,
        ingress({ cidrIpv4: "0.0.0.0/0", ipProtocol: "udp", fromPort: 443, toPort: 443 }),
        /udp 443/,
      );
    });
    it("covers inline ingress on aws.ec2.SecurityGroup and aws.ec2.SecurityGroupRule", async () => {
      const inline = (r: Record<string, unknown>) => ({ vpcId: "vpc-1", ingress: [r] });
      await passes(p, T.sg, inline({ protocol: "tcp", fromPort: 443, toPort: 443, cidrBlocks: ["0.0.0.0/0"] }));
      await fails(
        p,
        T.sg,
        inline({ protocol: "tcp", fromPort: 5432, toPort: 5432, cidrBlocks: ["10.0.0.0/8", "0.0.0.0/0"] }),
        /tcp 5432-5432/,
      );
      const rule = { type: "ingress", protocol: "tcp", fromPort: 3306, toPort: 3306, securityGroupId: "sg-1" };
      await fails(p, T.sgRule, { ...rule, ipv6CidrBlocks: ["::/0"] }, /tcp 3306-3306 from ::\/0/);
      await passes(p, T.sgRule, { ...rule, type: "egress", cidrBlocks: ["0.0.0.0/0"] });
    });
  });

  describe("sg-no-world-ssh", () => {
    const p = P.sgNoWorldSsh;
    it("allows SSH from an operator /32 or the bastion's group", async () => {
      await passes(
        p,
        T.ingressRule,
        ingress({ cidrIpv4: "203.0.113.10/32", ipProtocol: "tcp", fromPort: 22, toPort: 22 }),
      );
      await passes(
        p,
        T.ingressRule,
        ingress({ referencedSecurityGroupId: "sg-b", ipProtocol: "tcp", fromPort: 22, toPort: 22 }),
      );
    });
    it("rejects 22 from the world, from a /8, and port ranges or all-traffic rules that include 22", async () => {
      const ssh = (cidr: string) => ingress({ cidrIpv4: cidr, ipProtocol: "tcp", fromPort: 22, toPort: 22 });
      await fails(p, T.ingressRule, ssh("0.0.0.0/0"), /exposes SSH \(22\) to 0\.0\.0\.0\/0/);
      await fails(p, T.ingressRule, ssh("10.0.0.0/8"), /exposes SSH \(22\) to 10\.0\.0\.0\/8/);
      await fails(
        p,
        T.ingressRule,
        ingress({ cidrIpv4: "0.0.0.0/0", ipProtocol: "tcp", fromPort: 1, toPort: 1024 }),
        /SSH/,
      );
      await fails(p, T.sg, { ingress: [{ protocol: "-1", fromPort: 0, toPort: 0, ipv6CidrBlocks: ["::/0"] }] }, /SSH/);
    });
  });

  describe("rds", () => {
    const good = {
      engine: "postgres",
      publiclyAccessible: false,
      storageEncrypted: true,
      backupRetentionPeriod: 7,
      deletionProtection: true,
      skipFinalSnapshot: false,
      finalSnapshotIdentifier: "prod-db-final-1a2b",
    };
    it("rds-not-public", async () => {
      await passes(P.rdsNotPublic, T.rds, good);
      await fails(P.rdsNotPublic, T.rds, { ...good, publiclyAccessible: true }, /publiclyAccessible is true/);
    });
    it("rds-storage-encrypted", async () => {
      await passes(P.rdsStorageEncrypted, T.rds, good);
      await fails(
        P.rdsStorageEncrypted,
        T.rds,
        { ...good, storageEncrypted: undefined },
        /storageEncrypted is not true/,
      );
    });
    it("cache-not-public: in the private subnet group, behind its own security group, never a bare cluster", async () => {
      const cache = { subnetGroupName: "db-subnets", securityGroupIds: ["sg-1"] };
      await passes(P.cacheNotPublic, T.cache, cache);
      await fails(P.cacheNotPublic, T.cache, { ...cache, subnetGroupName: undefined }, /subnetGroupName is not set/);
      await fails(P.cacheNotPublic, T.cache, { ...cache, securityGroupIds: [] }, /securityGroupIds is empty/);
      await passes(P.cacheNotPublic, T.cacheCluster, { replicationGroupId: "rg" });
      await fails(P.cacheNotPublic, T.cacheCluster, { engine: "redis" }, /outside a replication group/);
    });
    it("cache-encrypted: at rest with a KMS key, in transit, with an AUTH token", async () => {
      const cache = {
        atRestEncryptionEnabled: true,
        kmsKeyId: "arn:aws:kms:eu-west-1:1:key/k",
        transitEncryptionEnabled: true,
        authToken: "t".repeat(32),
      };
      await passes(P.cacheEncrypted, T.cache, cache);
      await fails(P.cacheEncrypted, T.cache, { ...cache, atRestEncryptionEnabled: false }, /atRestEncryptionEnabled/);
      await fails(P.cacheEncrypted, T.cache, { ...cache, kmsKeyId: undefined }, /kmsKeyId is not set/);
      await fails(P.cacheEncrypted, T.cache, { ...cache, transitEncryptionEnabled: undefined }, /transitEncryption/);
      await fails(P.cacheEncrypted, T.cache, { ...cache, authToken: undefined }, /neither authToken/);
    });
    it("rds-backups-retained: at least one day (configurable), set explicitly", async () => {
      await passes(P.rdsBackupsRetained, T.rds, { ...good, backupRetentionPeriod: 1 });
      await fails(P.rdsBackupsRetained, T.rds, { ...good, backupRetentionPeriod: 0 }, /backupRetentionPeriod is 0/);
      await fails(P.rdsBackupsRetained, T.rds, { ...good, backupRetentionPeriod: undefined }, /not set/);
      await fails(P.rdsBackupsRetained, T.rds, good, /is 7; allowed: 14 or more/, { config: { minRetentionDays: 14 } });
    });
    it("rds-protected-stack: deletion protection and a final snapshot in prod (or the configured stacks)", async () => {
      const p = P.rdsProtectedStack;
      await passes(p, T.rds, good, { stack: "prod" });
      await fails(
        p,
        T.rds,
        { ...good, deletionProtection: false },
        /deletionProtection is not true in protected stack prod/,
        {
          stack: "prod",
        },
      );
      await fails(p, T.rds, { ...good, skipFinalSnapshot: true }, /skipFinalSnapshot is true/, { stack: "prod" });
      await fails(p, T.rds, { ...good, finalSnapshotIdentifier: undefined }, /finalSnapshotIdentifier is not set/, {
        stack: "prod",
      });
      const throwaway = { ...good, deletionProtection: false, skipFinalSnapshot: true };
      const qa = await runResourcePolicy(p, { type: T.rds, name: "db", props: throwaway }, {}, "qa");
      assert.deepEqual(qa.violations, []);
      assert.equal(qa.notApplicable.length, 1, "qa is not protected by default");
      await fails(p, T.rds, throwaway, /protected stack qa/, {
        stack: "qa",
        config: { protectedStacks: ["qa", "prod"] },
      });
      await fails(p, T.rds, throwaway, /protected stack staging/, {
        stack: "staging",
        config: { protectedStacks: ["*"] },
      });
    });
  });

  describe("ec2", () => {
    const host = {
      ami: "ami-1",
      instanceType: "t3.small",
      metadataOptions: { httpTokens: "required", httpEndpoint: "enabled" },
      rootBlockDevice: { encrypted: true, volumeType: "gp3" },
    };
    it("ec2-imdsv2-required", async () => {
      await passes(P.ec2Imdsv2, T.instance, host);
      await passes(P.ec2Imdsv2, T.instance, { ...host, metadataOptions: { httpEndpoint: "disabled" } });
      await fails(
        P.ec2Imdsv2,
        T.instance,
        { ...host, metadataOptions: { httpTokens: "optional" } },
        /"optional"; allowed: "required"/,
      );
      await fails(P.ec2Imdsv2, T.instance, { ...host, metadataOptions: undefined }, /"unset"/);
    });
    it("ec2-volumes-encrypted", async () => {
      await passes(P.ec2VolumesEncrypted, T.instance, host);
      await fails(
        P.ec2VolumesEncrypted,
        T.instance,
        { ...host, rootBlockDevice: { volumeSize: 20 } },
        /rootBlockDevice\.encrypted/,
      );
      await fails(
        P.ec2VolumesEncrypted,
        T.instance,
        { ...host, ebsBlockDevices: [{ deviceName: "/dev/sdf", encrypted: false }] },
        /ebsBlockDevices\[0\] \(\/dev\/sdf\) is not encrypted/,
      );
    });
  });

  describe("s3", () => {
    const flags = {
      blockPublicAcls: true,
      blockPublicPolicy: true,
      ignorePublicAcls: true,
      restrictPublicBuckets: true,
    };
    it("s3-public-access-block-flags", async () => {
      await passes(P.s3PublicAccessBlockFlags, T.pab, { bucket: "b", ...flags });
      await fails(
        P.s3PublicAccessBlockFlags,
        T.pab,
        { bucket: "b", ...flags, restrictPublicBuckets: false, ignorePublicAcls: undefined },
        /^ignorePublicAcls, restrictPublicBuckets not true/,
      );
    });

    const tlsOnly = JSON.stringify({
      Version: "2012-10-17",
      Statement: [
        {
          Effect: "Deny",
          Principal: "*",
          Action: "s3:*",
          Resource: ["arn:aws:s3:::b1", "arn:aws:s3:::b1/*"],
          Condition: { Bool: { "aws:SecureTransport": "false" } },
        },
      ],
    });
    const sseKms = {
      rules: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: "aws:kms", kmsMasterKeyId: "k" } }],
    };

    /** A bucket with its three companions, wired by id (after an update) or by dependency only (preview). */
    function bucketSet(name: string, mode: "known" | "preview", omit: string[] = []): FakeResource[] {
      const bucketUrn = urnOf({ type: T.bucket, name });
      const bucket: FakeResource = {
        type: T.bucket,
        name,
        props: mode === "known" ? { bucket: `${name}-abc`, id: `${name}-abc`, arn: `arn:aws:s3:::${name}-abc` } : {},
      };
      if (mode === "preview") bucket.props = { bucket: UNKNOWN_STRING, arn: UNKNOWN_STRING };
      const ref = mode === "known" ? `${name}-abc` : UNKNOWN_STRING;
      const companion = (type: string, suffix: string, props: Record<string, unknown>): FakeResource => ({
        type,
        name: `${name}-${suffix}`,
        props: { bucket: ref, ...props },
        dependencies: [bucketUrn],
        propertyDependencies: mode === "preview" ? { bucket: [bucketUrn] } : {},
      });
      return [
        bucket,
        companion(T.pab, "pab", flags),
        companion(T.sse, "sse", sseKms),
        companion(T.bucketPolicy, "policy", { policy: mode === "known" ? tlsOnly : UNKNOWN_STRING }),
      ].filter((r) => !omit.some((o) => r.name.endsWith(`-${o}`)));
    }

    async function stack(policy: StackValidationPolicy, resources: FakeResource[]): Promise<Outcome> {
      return runStackPolicy(policy, resources);
    }

    for (const [policy, omit, expected] of [
      [P.s3BucketPublicAccessBlocked, "pab", /bucket b2: no BucketPublicAccessBlock with all four flags/],
      [P.s3BucketEncrypted, "sse", /bucket b2: no BucketServerSideEncryptionConfiguration with aws:kms/],
      [P.s3BucketTlsOnly, "policy", /bucket b2: no bucket policy denies s3:\* .* aws:SecureTransport is "false"/],
    ] as const) {
      it(`${policy.name}: each bucket is paired with its own ${omit}, by id or (in preview) by dependency`, async () => {
        for (const mode of ["known", "preview"] as const) {
          const ok = await stack(policy, [...bucketSet("b1", mode), ...bucketSet("b2", mode)]);
          assert.deepEqual(ok.violations, [], `${mode}: both buckets are complete`);
          assert.deepEqual(ok.unknown, [], `${mode}: the policy reads ids without aborting`);
          const missing = await stack(policy, [...bucketSet("b1", mode), ...bucketSet("b2", mode, [omit])]);
          assert.equal(missing.violations.length, 1, `${mode}: ${JSON.stringify(missing.violations)}`);
          assert.match(missing.violations[0].message, expected);
          assert.equal(missing.violations[0].urn, urnOf({ type: T.bucket, name: "b2" }));
        }
        // Two companions on one bucket do not make up for a missing one on the other.
        const [b1, ...b1companions] = bucketSet("b1", "known");
        const b2 = bucketSet("b2", "known", [omit]);
        const extra = b1companions
          .filter((c) => c.name.endsWith(`-${omit}`))
          .map((c) => ({ ...c, name: `${c.name}-again` }));
        const doubled = await stack(policy, [b1, ...b1companions, ...extra, ...b2]);
        assert.equal(doubled.violations.length, 1);
      });
    }

    it("s3-public-access-block: a companion with a flag off does not count", async () => {
      const set = bucketSet("b1", "known");
      set.find((r) => r.type === T.pab)!.props.blockPublicPolicy = false;
      const out = await stack(P.s3BucketPublicAccessBlocked, set);
      assert.match(out.violations[0]?.message ?? "", /bucket b1: no BucketPublicAccessBlock/);
    });

    it("s3-bucket-sse-kms: SSE-S3 (AES256) is not enough", async () => {
      const set = bucketSet("b1", "known");
      set.find((r) => r.type === T.sse)!.props.rules = [
        { applyServerSideEncryptionByDefault: { sseAlgorithm: "AES256" } },
      ];
      const out = await stack(P.s3BucketEncrypted, set);
      assert.match(out.violations[0]?.message ?? "", /bucket b1: no BucketServerSideEncryptionConfiguration/);
    });

    it("s3-bucket-tls-only: an Allow, or a Deny without the SecureTransport condition, is not TLS-only", async () => {
      const doc = (statement: object) => JSON.stringify({ Version: "2012-10-17", Statement: [statement] });
      assert.equal(P.deniesInsecureTransport(tlsOnly), true);
      assert.equal(P.deniesInsecureTransport(JSON.parse(tlsOnly)), true, "a policy document object works too");
      assert.equal(
        P.deniesInsecureTransport(
          doc({
            Effect: "Allow",
            Principal: "*",
            Action: "s3:*",
            Condition: { Bool: { "aws:SecureTransport": "false" } },
          }),
        ),
        false,
      );
      assert.equal(P.deniesInsecureTransport(doc({ Effect: "Deny", Principal: "*", Action: "s3:*" })), false);
      assert.equal(
        P.deniesInsecureTransport(
          doc({
            Effect: "Deny",
            Principal: "*",
            Action: "s3:GetObject",
            Condition: { Bool: { "aws:SecureTransport": "false" } },
          }),
        ),
        false,
        "only s3:* closes every action",
      );
      const inline = await stack(P.s3BucketTlsOnly, [
        { type: T.bucket, name: "b1", props: { bucket: "b1-abc", policy: tlsOnly } },
      ]);
      assert.deepEqual(inline.violations, [], "an inline bucket policy counts");
    });

    describe("the media bucket", () => {
      const versioning = (bucket: string, status: string): FakeResource => ({
        type: "aws:s3/bucketVersioning:BucketVersioning",
        name: `${bucket}-versioning`,
        props: { bucket: `${bucket}-abc`, versioningConfiguration: { status } },
      });
      const lifecycle = (bucket: string, rules: object[]): FakeResource => ({
        type: "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
        name: `${bucket}-lifecycle`,
        props: { bucket: `${bucket}-abc`, rules },
      });
      const keepRule = {
        id: "expire-replaced-media",
        status: "Enabled",
        noncurrentVersionExpiration: { noncurrentDays: 30 },
        expiration: { expiredObjectDeleteMarker: true },
      };

      it("s3-media-bucket-versioned: versioned, and no rule expires uploads", async () => {
        const ok = await stack(P.s3MediaBucketVersioned, [
          ...bucketSet("qa-buckets-media", "known"),
          versioning("qa-buckets-media", "Enabled"),
          lifecycle("qa-buckets-media", [keepRule]),
        ]);
        assert.deepEqual(ok.violations, []);
        const unversioned = await stack(P.s3MediaBucketVersioned, [
          ...bucketSet("qa-buckets-media", "known"),
          versioning("qa-buckets-media", "Suspended"),
        ]);
        assert.match(
          unversioned.violations[0]?.message ?? "",
          /bucket qa-buckets-media: no BucketVersioning with status "Enabled"/,
        );
        const none = await stack(P.s3MediaBucketVersioned, bucketSet("qa-buckets-media", "known"));
        assert.equal(none.violations.length, 1);
        const expiring = await stack(P.s3MediaBucketVersioned, [
          ...bucketSet("qa-buckets-media", "known"),
          versioning("qa-buckets-media", "Enabled"),
          lifecycle("qa-buckets-media", [keepRule, { id: "tidy", status: "Enabled", expiration: { days: 90 } }]),
        ]);
        assert.match(expiring.violations[0]?.message ?? "", /lifecycle rule tidy expires uploads/);
      });

      it("s3-media-bucket-versioned: the media replica too (it keeps what a backup's manifest names)", async () => {
        const ok = await stack(P.s3MediaBucketVersioned, [
          ...bucketSet("prod-buckets-media", "known"),
          versioning("prod-buckets-media", "Enabled"),
          ...bucketSet("prod-buckets-media-replica", "known"),
          versioning("prod-buckets-media-replica", "Enabled"),
          lifecycle("prod-buckets-media-replica", [{ ...keepRule, expiration: undefined }]),
        ]);
        assert.deepEqual(ok.violations, []);
        const bad = await stack(P.s3MediaBucketVersioned, [
          ...bucketSet("prod-buckets-media", "known"),
          versioning("prod-buckets-media", "Enabled"),
          ...bucketSet("prod-buckets-media-replica", "known"),
          lifecycle("prod-buckets-media-replica", [
            { id: "expire-copies", status: "Enabled", expiration: { days: 90 } },
          ]),
        ]);
        assert.deepEqual(
          bad.violations.map((v) => v.message.replace(/ \(expiration.*/, "")),
          [
            'bucket prod-buckets-media-replica: no BucketVersioning with status "Enabled" points at it',
            "bucket prod-buckets-media-replica: lifecycle rule expire-copies expires uploads",
          ],
        );
        const backupsReplica = await stack(P.s3MediaBucketVersioned, [
          ...bucketSet("prod-buckets-media", "known"),
          versioning("prod-buckets-media", "Enabled"),
          ...bucketSet("prod-buckets-backups-replica", "known"),
          lifecycle("prod-buckets-backups-replica", [
            { id: "expire-backups", status: "Enabled", expiration: { days: 90 } },
          ]),
        ]);
        assert.deepEqual(backupsReplica.violations, [], "the backups' replica expires its dumps");
      });

      it("s3-media-bucket-versioned: only the media bucket (other buckets may expire objects); none is not applicable", async () => {
        const other = await stack(P.s3MediaBucketVersioned, [
          ...bucketSet("qa-buckets-media", "known"),
          versioning("qa-buckets-media", "Enabled"),
          ...bucketSet("qa-buckets-artifacts", "known"),
          lifecycle("qa-buckets-artifacts", [{ id: "x", status: "Enabled", expiration: { days: 1 } }]),
        ]);
        assert.deepEqual(other.violations, []);
        const na = await stack(P.s3MediaBucketVersioned, bucketSet("b1", "known"));
        assert.equal(na.notApplicable.length, 1);
      });

      it("iam-hosts-keep-versions: an EC2 role may not delete object versions, other roles are not judged", async () => {
        const role = (name: string, service: string): FakeResource => ({
          type: "aws:iam/role:Role",
          name,
          props: {
            id: name,
            name,
            assumeRolePolicy: JSON.stringify({
              Statement: [{ Principal: { Service: service }, Action: "sts:AssumeRole" }],
            }),
          },
        });
        const grant = (name: string, roleName: string, actions: string[]): FakeResource => ({
          type: "aws:iam/rolePolicy:RolePolicy",
          name,
          props: {
            role: roleName,
            policy: JSON.stringify({
              Statement: [{ Effect: "Allow", Action: actions, Resource: "arn:aws:s3:::qa-buckets-media-abc/*" }],
            }),
          },
        });
        const ok = await stack(P.iamHostsKeepVersions, [
          role("qa-host-role", "ec2.amazonaws.com"),
          grant("qa-host-policy", "qa-host-role", ["s3:GetObject", "s3:GetObjectVersion", "s3:DeleteObject"]),
          role("qa-ci-deploy", "sts.amazonaws.com"),
          grant("qa-ci-deploy", "qa-ci-deploy", ["s3:*"]),
        ]);
        assert.deepEqual(ok.violations, []);
        for (const action of ["s3:DeleteObjectVersion", "s3:*", "s3:Delete*"]) {
          const bad = await stack(P.iamHostsKeepVersions, [
            role("qa-host-role", "ec2.amazonaws.com"),
            grant("qa-host-policy", "qa-host-role", ["s3:GetObject", action]),
          ]);
          assert.match(
            bad.violations[0]?.message ?? "",
            new RegExp(`role policy qa-host-policy allows ${action.replace("*", "\\*")}`),
          );
        }
      });
    });

    it("stack policies with no bucket are not applicable", async () => {
      const out = await stack(P.s3BucketTlsOnly, [{ type: T.ssm, name: "p", props: {} }]);
      assert.deepEqual(out.violations, []);
      assert.equal(out.notApplicable.length, 1);
    });
  });

  describe("ssm", () => {
    it("ssm-parameter-under-stack-path: /<project>/<stack>/ from the URN (or the configured template)", async () => {
      const p = P.ssmUnderStackPath;
      await passes(p, T.ssm, { name: "/greenlight/qa/DB_HOST", type: "String", value: "x" });
      await fails(p, T.ssm, { name: "/greenlight/prod/DB_HOST", type: "String" }, /outside \/greenlight\/qa\//);
      await fails(p, T.ssm, { type: "String" }, /"\(auto-named\)" is outside/);
      await passes(
        p,
        T.ssm,
        { name: "/apps/greenlight/qa/X", type: "String" },
        { config: { pathTemplate: "/apps/{project}/{stack}/" } },
      );
    });
    it("ssm-secret-securestring: secret-looking names must be SecureString", async () => {
      const p = P.ssmSecretsAreSecure;
      for (const name of [
        "DB_PASSWORD",
        "SECRET_KEY",
        "MAILGUN_API_KEY",
        "GITHUB_TOKEN",
        "SENTRY_DSN",
        "DATABASE_URL",
      ]) {
        await passes(p, T.ssm, { name: `/greenlight/qa/${name}`, type: "SecureString", keyId: "k" });
        await fails(
          p,
          T.ssm,
          { name: `/greenlight/qa/${name}`, type: "String" },
          new RegExp(`${name} looks like a secret`),
        );
      }
      for (const name of ["DB_HOST", "ALLOWED_HOSTS", "KEYBOARD_LAYOUT", "HTTPS"]) {
        await passes(p, T.ssm, { name: `/greenlight/qa/${name}`, type: "String" });
      }
    });
  });

  describe("load balancer", () => {
    it("alb-https-tls13 on aws.lb and aws.alb listeners", async () => {
      const p = P.albTls13;
      const https = { loadBalancerArn: "arn:lb", port: 443, protocol: "HTTPS", certificateArn: "arn:cert" };
      await passes(p, T.listener, { ...https, sslPolicy: "ELBSecurityPolicy-TLS13-1-2-2021-06" });
      await passes(p, T.listener, { loadBalancerArn: "arn:lb", port: 80, protocol: "HTTP" });
      await fails(
        p,
        T.listener,
        { ...https, sslPolicy: "ELBSecurityPolicy-2016-08" },
        /HTTPS listener on 443 uses "ELBSecurityPolicy-2016-08"/,
      );
      await fails(p, T.albListener, https, /uses "the default policy"; allowed: ELBSecurityPolicy-TLS13-\*/);
    });

    const lb = (name: string): FakeResource => ({
      type: T.lb,
      name,
      props: {
        arn: `arn:aws:elasticloadbalancing:eu-west-1:1:loadbalancer/app/${name}`,
        loadBalancerType: "application",
      },
    });
    const listener = (name: string, lbName: string, props: Record<string, unknown>, preview = false): FakeResource => {
      const lbUrn = urnOf({ type: T.lb, name: lbName });
      return {
        type: T.listener,
        name,
        props: {
          loadBalancerArn: preview
            ? UNKNOWN_STRING
            : `arn:aws:elasticloadbalancing:eu-west-1:1:loadbalancer/app/${lbName}`,
          arn: preview ? UNKNOWN_STRING : `arn:listener/${name}`,
          ...props,
        },
        dependencies: [lbUrn],
        propertyDependencies: preview ? { loadBalancerArn: [lbUrn] } : {},
      };
    };
    const redirect = {
      defaultActions: [{ type: "redirect", redirect: { protocol: "HTTPS", port: "443", statusCode: "HTTP_301" } }],
    };
    const forward = { defaultActions: [{ type: "forward", targetGroupArn: UNKNOWN_STRING }] };

    it("alb-http-redirects-to-https: HTTP:80 must redirect once the load balancer has HTTPS", async () => {
      for (const preview of [false, true]) {
        const https = listener("https", "a", { port: 443, protocol: "HTTPS", ...forward }, preview);
        const ok = await runStackPolicy(P.albHttpRedirects, [
          lb("a"),
          listener("http", "a", { port: 80, protocol: "HTTP", ...redirect }, preview),
          https,
        ]);
        assert.deepEqual(ok.violations, [], `preview=${preview}`);
        assert.deepEqual(ok.unknown, []);
        const bad = await runStackPolicy(P.albHttpRedirects, [
          lb("a"),
          listener("http", "a", { port: 80, protocol: "HTTP", ...forward }, preview),
          https,
        ]);
        assert.equal(bad.violations.length, 1, `preview=${preview}`);
        assert.match(bad.violations[0].message, /listener http \(HTTP:80 on a\) does not redirect to HTTPS/);
      }
      // An HTTP-only load balancer (qa without a domain) forwards on 80; another LB's HTTPS does not count.
      const httpOnly = await runStackPolicy(P.albHttpRedirects, [
        lb("a"),
        lb("b"),
        listener("http-a", "a", { port: 80, protocol: "HTTP", ...forward }),
        listener("https-b", "b", { port: 443, protocol: "HTTPS", ...forward }),
        listener("http-b", "b", { port: 80, protocol: "HTTP", ...redirect }),
      ]);
      assert.deepEqual(httpOnly.violations, []);
    });

    it("alb-drop-invalid-header-fields", async () => {
      const p = P.albDropInvalidHeaders;
      await passes(p, T.lb, { loadBalancerType: "application", dropInvalidHeaderFields: true });
      await passes(p, T.lb, { loadBalancerType: "network" });
      await fails(p, T.lb, { subnets: ["s"] }, /dropInvalidHeaderFields is not true/);
    });
  });

  describe("remote commands", () => {
    const connection = {
      host: "10.0.0.5",
      user: "deploy",
      privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nsecret\n-----END OPENSSH PRIVATE KEY-----\n",
      hostKey: "ssh-ed25519 AAAAhost",
      proxy: { host: "198.51.100.1", user: "admin", hostKey: "ssh-ed25519 AAAAbastion" },
    };

    it("remote-command-host-key-pinned: host and proxy keys, on commands and copies", async () => {
      const p = P.remoteHostKeyPinned;
      await passes(p, T.command, { connection, create: "true" });
      await passes(p, T.copy, { connection, remotePath: "/tmp/x", source: {} });
      await fails(
        p,
        T.command,
        { connection: { ...connection, hostKey: undefined }, create: "true" },
        /^connection\.hostKey is not set/,
      );
      await fails(
        p,
        T.copy,
        { connection: { ...connection, proxy: { host: "b" } }, remotePath: "/x" },
        /proxy\.hostKey is not set/,
      );
      const messages = await check(p, T.command, { connection: { ...connection, hostKey: "" } });
      assert.ok(!messages.join("\n").includes("PRIVATE KEY"), "a message never echoes the (secret) connection");
    });

    it("remote-command-no-secrets: no environment map, no secret in the command text", async () => {
      const p = P.remoteCommandNoSecrets;
      const script = [
        "set -Eeuo pipefail",
        "DB_URL=\"$(grep '^DATABASE_URL=' /srv/site/shared/.env | cut -d= -f2-)\"",
        'export PGPASSWORD="$DB_PASSWORD"',
        "SECRET_KEY=$(cat /run/secret)",
      ].join("\n");
      await passes(p, T.command, { connection, create: script, stdin: "DB_PASSWORD=hunter2\n" });
      await fails(
        p,
        T.command,
        { connection, create: "true", environment: { DB_PASSWORD: "x" } },
        /environment is set \(DB_PASSWORD\)/,
      );
      await fails(
        p,
        T.command,
        { connection, create: "echo '-----BEGIN OPENSSH PRIVATE KEY-----' > k" },
        /create contains -----BEGIN/,
      );
      await fails(
        p,
        T.command,
        { connection, update: "DB_PASSWORD=hunter2 ./migrate" },
        /update contains PASSWORD= followed by a literal value/,
      );
      await fails(p, T.command, { connection, delete: "SECRET_KEY='abc' ./x" }, /delete contains SECRET_KEY=/);
      await fails(
        p,
        T.command,
        { connection, create: "DATABASE_URL=postgres://u:p@h/db ./manage.py migrate" },
        /DATABASE_URL=/,
      );
      const messages = await check(p, T.command, { connection, create: "DB_PASSWORD=hunter2 ./migrate" });
      assert.ok(!messages.join("\n").includes("hunter2"), "the message never quotes the secret");
    });
  });

  it("multi-class policies reach their later classes (not applicable is caught per validation)", async () => {
    const out = await runResourcePolicy(P.albTls13, {
      type: T.albListener,
      name: "l",
      props: { protocol: "HTTPS", port: 443, sslPolicy: "ELBSecurityPolicy-2016-08" },
    });
    assert.equal(out.notApplicable.length, 1, "aws.lb.Listener's validation is not applicable");
    assert.equal(out.violations.length, 1, "aws.alb.Listener's validation still ran");
  });
});

describe("policy pack: the real program satisfies its own guardrails", function () {
  const scenarios: [string, string, Record<string, Override>][] = [
    ["qa", "as configured", {}],
    ["prod", "as configured", {}],
    [
      "qa",
      "with both slots released, green live and the test listener",
      {
        testListener: true,
        ...slot("blue", "r1"),
        ...slot("green", "r2"),
        live: "green",
      },
    ],
    [
      "prod",
      "with a backup replica region, the test listener and a release",
      {
        backupReplicaRegion: "eu-central-1",
        testListener: true,
        ...slot("blue", "r1"),
      },
    ],
    [
      "qa",
      "with CI roles, alarm mail, an app secret and a restore",
      {
        ciRepository: "acme/site",
        ciStateBucket: "acme-greenlight-state",
        ciCreateOidcProvider: true,
        alarmEmail: "ops@example.com",
        sentryDsn: { secret: "https://key@o1.ingest.sentry.io/2" },
        restoreBackup: "db/20261101T000000Z-before-r1.dump",
        ...slot("blue", "r1"),
      },
    ],
  ];
  const resourcePolicies = P.policies.filter((p) => !isStackPolicy(p)) as ResourceValidationPolicy[];
  const stackPolicies = P.policies.filter(isStackPolicy);
  /** Per scenario: what went wrong. */
  const problems = new Map<number, string[]>();
  /** Policy name -> how many resources (or stacks) it examined, over all scenarios. */
  const applied = new Map<string, number>();
  const count = (name: string) => applied.set(name, (applied.get(name) ?? 0) + 1);

  before(async function () {
    for (const [i, [stack, , overrides]] of scenarios.entries()) {
      const run: ProgramRun = await evaluate(stack, overrides);
      const found = run.failures.map((f) => `program failure: ${f.name}: ${f.error}`);
      for (const r of resourcesOf(run, "inputs")) {
        for (const policy of resourcePolicies) {
          const out = await runResourcePolicy(policy, r, {}, stack);
          found.push(...out.violations.map((v) => `${policy.name} on ${r.name}: ${v.message}`));
          found.push(...out.unknown.map((u) => `unknown value on ${r.name}: ${u}`));
          if (out.notApplicable.length < [policy.validateResource ?? []].flat().length) count(policy.name);
        }
      }
      const outputs = resourcesOf(run, "outputs");
      for (const policy of stackPolicies) {
        const out = await runStackPolicy(policy, outputs, {}, stack);
        found.push(...out.violations.map((v) => `${policy.name}: ${v.message}`), ...out.unknown);
        if (!out.notApplicable.length) count(policy.name);
      }
      problems.set(i, found);
    }
  });

  scenarios.forEach(([stack, label], i) => {
    it(`${stack} ${label}: no violations from any policy`, () => {
      assert.deepEqual(problems.get(i), []);
    });
  });

  it("every policy about what the program builds today examined something", () => {
    const idle = P.policies.map((p) => p.name).filter((n) => !applied.get(n));
    assert.deepEqual(idle, [], "policies that never applied to the program (a renamed type, or a dead rule?)");
  });
});

describe("policy pack: packaging", () => {
  const dir = path.join(ROOT, "policy");
  it("PulumiPolicy.yaml runs the pack with nodejs; package.json has a version and the root's SDK versions", () => {
    const project = parse(fs.readFileSync(path.join(dir, "PulumiPolicy.yaml"), "utf8"));
    assert.equal(project.runtime, "nodejs");
    const pack = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"));
    const root = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8"));
    assert.match(
      pack.version,
      /^\d+\.\d+\.\d+$/,
      "the PolicyPack constructor refuses a package.json without a version",
    );
    const rootDeps = { ...root.dependencies, ...root.devDependencies };
    for (const dep of ["@pulumi/policy", "@pulumi/pulumi"]) assert.ok(pack.dependencies[dep], `${dep} is a dependency`);
    for (const [dep, range] of Object.entries(pack.dependencies)) {
      assert.equal(range, rootDeps[dep], `${dep}: the pack resolves the root's node_modules, so the ranges must agree`);
    }
  });

  it("index.ts is the only file that constructs a PolicyPack, and it serves every policy", () => {
    const index = fs.readFileSync(path.join(dir, "index.ts"), "utf8");
    assert.match(index, /new PolicyPack\("greenlight", \{[\s\S]*policies,/);
    const others = fs
      .readdirSync(dir)
      .filter((f) => f.endsWith(".ts") && f !== "index.ts")
      .filter((f) => fs.readFileSync(path.join(dir, f), "utf8").includes("new PolicyPack("));
    assert.deepEqual(others, []);
  });
});
