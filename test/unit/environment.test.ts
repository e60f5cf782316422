import * as assert from "assert";
import { SLOT_PORTS } from "../../components/config";
import { DEBIAN_AMI_OWNER } from "../../components/hosts";
import { TLS_POLICY } from "../../components/loadBalancer";
import { SECRET_SPECIALS } from "../../components/secrets";
import { ProgramRun, Registered, isSecretValue, reveal } from "../rig/program";
import { byName, evaluate, ofType, slot } from "./fakeEngine";

const T = {
  instance: "aws:ec2/instance:Instance",
  nat: "aws:ec2/natGateway:NatGateway",
  subnet: "aws:ec2/subnet:Subnet",
  sg: "aws:ec2/securityGroup:SecurityGroup",
  ingress: "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
  egress: "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
  tg: "aws:lb/targetGroup:TargetGroup",
  attachment: "aws:lb/targetGroupAttachment:TargetGroupAttachment",
  listener: "aws:lb/listener:Listener",
  alb: "aws:lb/loadBalancer:LoadBalancer",
  cert: "aws:acm/certificate:Certificate",
  record: "aws:route53/record:Record",
  rds: "aws:rds/instance:Instance",
  paramGroup: "aws:rds/parameterGroup:ParameterGroup",
  bucket: "aws:s3/bucket:Bucket",
  pab: "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
  sse: "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
  versioning: "aws:s3/bucketVersioning:BucketVersioning",
  lifecycle: "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
  policy: "aws:s3/bucketPolicy:BucketPolicy",
  ssm: "aws:ssm/parameter:Parameter",
  rolePolicy: "aws:iam/rolePolicy:RolePolicy",
  password: "random:index/randomPassword:RandomPassword",
  kms: "aws:kms/key:Key",
  role: "aws:iam/role:Role",
  replication: "aws:s3/bucketReplicationConfig:BucketReplicationConfig",
};

const runs = new Map<string, Promise<ProgramRun>>();
const stackRun = (stack: string) => {
  if (!runs.has(stack)) runs.set(stack, evaluate(stack));
  return runs.get(stack)!;
};
const inputs = (r: Registered) => reveal<Record<string, any>>(r.inputs); // eslint-disable-line @typescript-eslint/no-explicit-any

describe("environment under mocks", function () {
  for (const stack of ["qa", "prod"]) {
    it(`${stack} evaluates without an error or a failed resource`, async () => {
      const run = await stackRun(stack);
      assert.deepEqual(run.failures, []);
      assert.ok(run.resources.length > 50);
    });
  }

  it("qa: one public host, no NAT, no bastion, HTTP only", async () => {
    const run = await stackRun("qa");
    assert.equal(ofType(run, T.instance).length, 1);
    assert.equal(ofType(run, T.nat).length, 0);
    assert.equal(ofType(run, T.cert).length, 0);
    assert.equal(ofType(run, T.tg).length, 2);
    assert.equal(ofType(run, T.attachment).length, 2);
    assert.deepEqual(
      ofType(run, T.listener).map((l) => inputs(l).port),
      [80],
    );
    assert.equal(ofType(run, T.rds).length, 1);
    assert.equal(ofType(run, T.subnet).length, 4);
    assert.equal(inputs(ofType(run, T.instance)[0]).associatePublicIpAddress, true);
    assert.match(String(run.outputs.url), /^http:\/\/.*elb\.amazonaws\.com$/);
  });

  it("prod: two private hosts in two zones, a bastion, one NAT, HTTPS with a redirect", async () => {
    const run = await stackRun("prod");
    const instances = ofType(run, T.instance);
    assert.deepEqual(instances.map((i) => i.name).sort(), ["prod-host-0", "prod-host-1", "prod-host-bastion"]);
    assert.equal(ofType(run, T.nat).length, 1);
    assert.equal(ofType(run, T.attachment).length, 4, "every host in both target groups");
    const hostSubnets = ["prod-host-0", "prod-host-1"].map((n) => inputs(byName(run, n)).subnetId);
    assert.deepEqual(hostSubnets, ["prod-net-private-0-id", "prod-net-private-1-id"]);
    const listeners = ofType(run, T.listener).map(inputs);
    const http = listeners.find((l) => l.port === 80)!;
    assert.equal(http.defaultActions[0].type, "redirect");
    assert.equal(http.defaultActions[0].redirect.protocol, "HTTPS");
    const https = listeners.find((l) => l.port === 443)!;
    assert.equal(https.sslPolicy, TLS_POLICY);
    assert.equal(https.defaultActions[0].type, "forward");
    assert.equal(ofType(run, T.cert).length, 1);
    assert.deepEqual(
      ofType(run, T.record)
        .map((r) => inputs(r).type)
        .sort(),
      ["A", "CNAME"],
    );
    assert.equal(run.outputs.url, "https://www.example.com");
  });

  it("prod hosts have no public address; SSH goes through the bastion", async () => {
    const run = await stackRun("prod");
    for (const n of ["prod-host-0", "prod-host-1"])
      assert.equal(inputs(byName(run, n)).associatePublicIpAddress, false);
    const hosts = run.outputs.hosts as { ssh: string; address: string }[];
    hosts.forEach((h, i) => {
      assert.match(h.address, /^10\./);
      assert.equal(
        h.ssh,
        `ssh -F greenlight-prod.ssh_config prod-${i}`,
        "ProxyJump with the key: the sshConfig output",
      );
    });
  });

  describe("security-group chain", () => {
    for (const stack of ["qa", "prod"]) {
      it(`${stack}: only the ALB's 80/443 are open to the world; slots only from the ALB; 5432 only from the hosts`, async () => {
        const run = await stackRun(stack);
        const sgName = (id: string) => id.replace(/-id$/, "").replace(`${stack}-sg-`, "");
        const rules = ofType(run, T.ingress).map(inputs);
        const world = rules.filter((r) => r.cidrIpv4 === "0.0.0.0/0" || r.cidrIpv6 === "::/0");
        assert.deepEqual(
          world.map((r) => `${sgName(r.securityGroupId)}:${r.fromPort}-${r.toPort}`).sort(),
          stack === "prod" ? ["alb:443-443", "alb:80-80"] : ["alb:80-80"],
        );
        const into = (sg: string) => rules.filter((r) => sgName(r.securityGroupId) === sg);
        assert.deepEqual(
          into("db").map((r) => [r.fromPort, sgName(r.referencedSecurityGroupId ?? r.cidrIpv4)]),
          [[5432, "hosts"]],
        );
        for (const port of Object.values(SLOT_PORTS)) {
          const slotRules = into("hosts").filter((r) => r.fromPort === port);
          assert.deepEqual(
            slotRules.map((r) => sgName(r.referencedSecurityGroupId)),
            ["alb"],
          );
        }
        const ssh = into("hosts").filter((r) => r.fromPort === 22);
        if (stack === "prod") {
          assert.deepEqual(
            ssh.map((r) => sgName(r.referencedSecurityGroupId)),
            ["bastion"],
          );
          assert.deepEqual(
            into("bastion").map((r) => [r.fromPort, r.cidrIpv4]),
            [[22, "203.0.113.10/32"]],
          );
        } else {
          assert.deepEqual(
            ssh.map((r) => r.cidrIpv4),
            ["203.0.113.10/32"],
          );
        }
        for (const r of rules) assert.equal(r.ipProtocol, "tcp", "no all-protocol rule");
        // The ALB may only talk to the hosts, on the slot ports.
        const albOut = ofType(run, T.egress)
          .map(inputs)
          .filter((r) => sgName(r.securityGroupId) === "alb");
        assert.deepEqual(albOut.map((r) => [r.fromPort, sgName(r.referencedSecurityGroupId)]).sort(), [
          [8001, "hosts"],
          [8002, "hosts"],
        ]);
        const dbOut = ofType(run, T.egress)
          .map(inputs)
          .filter((r) => sgName(r.securityGroupId) === "db");
        assert.deepEqual(dbOut, [], "the database starts no connection");
      });
    }

    it("the test listener is open to operator CIDRs only and forwards to the idle colour", async () => {
      const run = await evaluate("qa", { testListener: true, ...slot("blue", "r1") });
      const rules = ofType(run, T.ingress)
        .map(inputs)
        .filter((r) => r.fromPort === 8443);
      assert.deepEqual(
        rules.map((r) => r.cidrIpv4),
        ["203.0.113.10/32"],
      );
      const test = inputs(byName(run, "qa-alb-test"));
      assert.match(test.defaultActions[0].targetGroupArn, /\/qa-alb-green$/);
      // Tools tell the listeners apart by their tags (servingColour), not by their names.
      assert.equal(test.tags["greenlight:listener"], "test");
      assert.equal(inputs(byName(run, "qa-alb-http")).tags["greenlight:listener"], "live");
      const prod = await evaluate("prod", slot("blue", "r1"));
      assert.equal(inputs(byName(prod, "prod-alb-http")).tags["greenlight:listener"], "redirect");
      assert.equal(inputs(byName(prod, "prod-alb-https")).tags["greenlight:listener"], "live");
    });
  });

  describe("database", () => {
    for (const stack of ["qa", "prod"]) {
      it(`${stack}: private, encrypted, backed up, TLS only`, async () => {
        const run = await stackRun(stack);
        const db = inputs(ofType(run, T.rds)[0]);
        assert.equal(db.publiclyAccessible, false);
        assert.equal(db.storageEncrypted, true);
        assert.ok(db.kmsKeyId);
        assert.ok(db.backupRetentionPeriod >= 1);
        assert.equal(db.dbSubnetGroupName, `${stack}-db-subnets`);
        const subnets = inputs(byName(run, `${stack}-db-subnets`));
        assert.deepEqual(subnets.subnetIds, [`${stack}-net-private-0-id`, `${stack}-net-private-1-id`]);
        const params = Object.fromEntries(
          inputs(ofType(run, T.paramGroup)[0]).parameters.map((p: { name: string; value: string }) => [
            p.name,
            p.value,
          ]),
        );
        assert.equal(params.client_encoding, "UTF8");
        assert.equal(params.timezone, "UTC");
        assert.equal(params.default_transaction_isolation, "read committed");
        assert.equal(params["rds.force_ssl"], "1");
        assert.ok(isSecretValue(ofType(run, T.rds)[0].inputs.password), "the password input is secret");
      });
    }

    it("qa: one day of backups, deletable without a snapshot", async () => {
      const db = inputs(ofType(await stackRun("qa"), T.rds)[0]);
      assert.equal(db.backupRetentionPeriod, 1);
      assert.equal(db.deletionProtection, false);
      assert.equal(db.skipFinalSnapshot, true);
      assert.equal(db.multiAz, false);
    });

    it("prod: Multi-AZ, 14 days of backups, deletion protection and a final snapshot", async () => {
      const db = inputs(ofType(await stackRun("prod"), T.rds)[0]);
      assert.equal(db.multiAz, true);
      assert.equal(db.backupRetentionPeriod, 14);
      assert.equal(db.deletionProtection, true);
      assert.equal(db.skipFinalSnapshot, false);
      assert.match(db.finalSnapshotIdentifier, /^prod-db-final-[0-9a-f]+$/);
    });
  });

  describe("hosts", () => {
    for (const stack of ["qa", "prod"]) {
      it(`${stack}: IMDSv2 only and encrypted root volumes on every instance`, async () => {
        const run = await stackRun(stack);
        for (const i of ofType(run, T.instance).map(inputs)) {
          assert.equal(i.metadataOptions.httpTokens, "required");
          assert.equal(i.metadataOptions.httpPutResponseHopLimit, 1);
          assert.equal(i.rootBlockDevice.encrypted, true);
        }
      });
    }

    it("user data only installs the pinned host key and the deploy key, and is secret", async () => {
      const run = await stackRun("prod");
      const host = byName(run, "prod-host-0");
      assert.ok(isSecretValue(host.inputs.userData));
      const ud = inputs(host).userData as string;
      assert.match(ud, /^#cloud-config\n/);
      assert.match(ud, /ssh_deletekeys: true/);
      assert.match(ud, /ssh_genkeytypes: \[\]/);
      assert.match(ud, /ed25519_private: \|/);
      assert.match(ud, /ssh_authorized_keys:\n {2}- ssh-ed25519 /);
      assert.doesNotMatch(ud, /runcmd|packages|write_files|bootcmd/, "everything else is the bootstrap's job");
      assert.equal(inputs(host).userDataReplaceOnChange, false);
    });

    it("the Debian 12 AMI is looked up once and pinned: a newer image never replaces hosts", async () => {
      const run = await stackRun("qa");
      const lookups = run.invokes.filter((i) => i.token === "aws:ec2/getAmi:getAmi");
      assert.equal(lookups.length, 1);
      assert.deepEqual(lookups[0].inputs.owners, [DEBIAN_AMI_OWNER]);
      assert.ok(JSON.stringify(lookups[0].inputs.filters).includes("debian-12-amd64-*"));
      const host = byName(run, "qa-host-0");
      assert.deepEqual(host.options.ignoreChanges, ["ami"]);
      const pinned = await evaluate("qa", { amiId: "ami-0123456789abcdef0" });
      const h = byName(pinned, "qa-host-0");
      assert.equal(inputs(h).ami, "ami-0123456789abcdef0");
      assert.deepEqual(h.options.ignoreChanges, [], "a set amiId replaces hosts deliberately");
      assert.equal(pinned.invokes.filter((i) => i.token === "aws:ec2/getAmi:getAmi").length, 0);
    });

    it("hosts are created (and replaced) one after another", async () => {
      const run = await stackRun("prod");
      assert.ok(byName(run, "prod-host-1").options.dependencies.includes(byName(run, "prod-host-0").urn));
    });

    it("the instance role reads only this environment's SSM path, decrypts only via SSM/S3", async () => {
      for (const stack of ["qa", "prod"]) {
        const run = await stackRun(stack);
        const doc = JSON.parse(
          inputs(ofType(run, T.rolePolicy).find((p) => p.name === `${stack}-host-policy`)!).policy,
        );
        const ssm = doc.Statement.find((s: { Action: string[] }) => s.Action.some((a) => a.startsWith("ssm:")));
        assert.deepEqual(ssm.Resource, [
          `arn:aws:ssm:eu-west-1:123456789012:parameter/greenlight/${stack}`,
          `arn:aws:ssm:eu-west-1:123456789012:parameter/greenlight/${stack}/*`,
        ]);
        for (const s of doc.Statement) {
          assert.equal(s.Effect, "Allow");
          for (const a of [s.Action].flat()) assert.doesNotMatch(a, /\*/, `no wildcard action: ${a}`);
          for (const r of [s.Resource].flat()) assert.notEqual(r, "*", "no wildcard resource");
          if ([s.Action].flat().some((a: string) => a.startsWith("kms:")))
            assert.ok(s.Condition.StringEquals["kms:ViaService"]);
        }
        const actions = doc.Statement.flatMap((s: { Action: string[] }) => s.Action).sort();
        assert.deepEqual(actions, [
          "kms:Decrypt",
          "kms:GenerateDataKey",
          "s3:AbortMultipartUpload",
          "s3:AbortMultipartUpload",
          "s3:DeleteObject",
          "s3:DeleteObject",
          "s3:GetObject",
          "s3:GetObject",
          "s3:GetObject",
          "s3:GetObjectVersion",
          "s3:ListBucket",
          "s3:ListBucket",
          "s3:ListBucketVersions",
          "s3:PutObject",
          "s3:PutObject",
          "ssm:GetParameter",
          "ssm:GetParameters",
          "ssm:GetParametersByPath",
        ]);
      }
    });
  });

  describe("buckets", () => {
    it("every bucket blocks public access, encrypts with KMS and refuses plain HTTP", async () => {
      const run = await evaluate("prod", { backupReplicaRegion: "eu-central-1" });
      const buckets = ofType(run, T.bucket);
      assert.equal(buckets.length, 5, "artifacts, backups, media and their two replicas");
      for (const b of buckets) {
        const pab = ofType(run, T.pab).find((p) => p.name === `${b.name}-public-access`);
        assert.ok(pab, `${b.name} has a public access block`);
        const p = inputs(pab);
        assert.deepEqual(
          [p.blockPublicAcls, p.blockPublicPolicy, p.ignorePublicAcls, p.restrictPublicBuckets],
          [true, true, true, true],
        );
        const sse = inputs(ofType(run, T.sse).find((s) => s.name === `${b.name}-sse`)!);
        assert.equal(sse.rules[0].applyServerSideEncryptionByDefault.sseAlgorithm, "aws:kms");
        const policy = JSON.parse(inputs(ofType(run, T.policy).find((s) => s.name === `${b.name}-tls-only`)!).policy);
        assert.deepEqual(policy.Statement[0].Condition, { Bool: { "aws:SecureTransport": "false" } });
        assert.equal(policy.Statement[0].Effect, "Deny");
        assert.ok(ofType(run, T.lifecycle).some((l) => l.name === `${b.name}-lifecycle`));
      }
    });

    it("backups are versioned and expire after the configured days; prod keeps buckets on destroy", async () => {
      const run = await stackRun("prod");
      assert.ok(ofType(run, T.versioning).some((v) => v.name === "prod-buckets-backups-versioning"));
      const rules = inputs(byName(run, "prod-buckets-backups-lifecycle")).rules;
      assert.equal(rules.find((r: { id: string }) => r.id === "expire-backups").expiration.days, 90);
      for (const b of ofType(run, T.bucket)) assert.equal(inputs(b).forceDestroy, false);
      for (const b of ofType(await stackRun("qa"), T.bucket)) assert.equal(inputs(b).forceDestroy, true);
    });
  });

  describe("offsite replicas (backupReplicaRegion)", () => {
    let run: Promise<ProgramRun> | undefined;
    const replicated = () => (run ??= evaluate("prod", { backupReplicaRegion: "eu-central-1" }));
    const find = (run: ProgramRun, type: string, name: string) => {
      const r = run.resources.find((x) => x.type === type && x.name === name);
      assert.ok(r?.state, `${type} ${name}`);
      return r;
    };
    const arnOf = (run: ProgramRun, name: string, type = T.bucket) => String(find(run, type, name).state!.arn);

    it("exist only with backupReplicaRegion: a replica of the backups and one of media", async () => {
      for (const stack of ["qa", "prod"]) {
        const run = await stackRun(stack);
        assert.deepEqual(
          run.resources.filter((r) => /replica|replication/.test(r.name)).map((r) => r.name),
          [],
          `${stack} has no replica without backupReplicaRegion`,
        );
      }
      const run = await replicated();
      assert.deepEqual(
        ofType(run, T.bucket)
          .map((b) => b.name)
          .filter((n) => n.endsWith("-replica"))
          .sort(),
        ["prod-buckets-backups-replica", "prod-buckets-media-replica"],
      );
      assert.deepEqual(
        ofType(run, T.replication)
          .map((r) => r.name)
          .sort(),
        ["prod-buckets-backups-replication", "prod-buckets-media-replication"],
      );
    });

    it("the media replica: versioned, the replica region's key, replaced versions kept as long as the source keeps them", async () => {
      const run = await replicated();
      const key = arnOf(run, "prod-buckets-replica-key", T.kms);
      assert.notEqual(key, arnOf(run, "prod-secrets-key", T.kms));
      assert.equal(inputs(byName(run, "prod-buckets-replica-region")).region, "eu-central-1");
      assert.equal(
        inputs(byName(run, "prod-buckets-media-replica-versioning")).versioningConfiguration.status,
        "Enabled",
      );
      const sse = inputs(byName(run, "prod-buckets-media-replica-sse")).rules[0];
      assert.deepEqual(sse.applyServerSideEncryptionByDefault, { sseAlgorithm: "aws:kms", kmsMasterKeyId: key });
      const rule = (bucket: string, id: string) =>
        inputs(byName(run, `${bucket}-lifecycle`)).rules.find((r: { id: string }) => r.id === id);
      const source = rule("prod-buckets-media", "expire-replaced-media");
      const replica = rule("prod-buckets-media-replica", "expire-replaced-media");
      assert.equal(
        replica.noncurrentVersionExpiration.noncurrentDays,
        source.noncurrentVersionExpiration.noncurrentDays,
      );
      assert.equal(replica.noncurrentVersionExpiration.noncurrentDays, 90);
      assert.equal(replica.expiration, undefined, "an upload's offsite copy never expires");
      assert.equal(
        inputs(find(run, T.bucket, "prod-buckets-media-replica")).forceDestroy,
        false,
        "prod keeps it on destroy",
      );
    });

    it("media replicates every object, KMS-encrypted ones with the replica's key; a delete never reaches the copy", async () => {
      const run = await replicated();
      for (const which of ["backups", "media"]) {
        const config = find(run, T.replication, `prod-buckets-${which}-replication`);
        const c = inputs(config);
        assert.equal(c.bucket, `prod-buckets-${which}-id`);
        assert.equal(c.role, arnOf(run, "prod-buckets-replication", T.role));
        assert.equal(c.rules.length, 1);
        const [r] = c.rules;
        assert.equal(r.id, `replicate-${which}`);
        assert.equal(r.status, "Enabled");
        assert.deepEqual(r.filter, {}, "every object");
        assert.deepEqual(r.deleteMarkerReplication, { status: "Disabled" });
        assert.deepEqual(r.sourceSelectionCriteria, { sseKmsEncryptedObjects: { status: "Enabled" } });
        assert.deepEqual(r.destination, {
          bucket: arnOf(run, `prod-buckets-${which}-replica`),
          encryptionConfiguration: { replicaKmsKeyId: arnOf(run, "prod-buckets-replica-key", T.kms) },
        });
        const after = config.options.dependencies;
        for (const dep of [`prod-buckets-${which}-versioning`, `prod-buckets-${which}-replica-versioning`]) {
          assert.ok(
            after.some((u) => u.endsWith(`::${dep}`)),
            `${which}: after ${dep}`,
          );
        }
        assert.ok(
          after.some((u) => u.endsWith("aws:iam/rolePolicy:RolePolicy::prod-buckets-replication")),
          `${which}: after the role's policy`,
        );
      }
    });

    it("the replication role's policy names exactly the two sources, the two replicas and the two keys", async () => {
      const run = await replicated();
      const policy = inputs(find(run, T.rolePolicy, "prod-buckets-replication"));
      assert.equal(policy.role, "prod-buckets-replication-id");
      const doc = JSON.parse(policy.policy);
      const [backups, media, backupsReplica, mediaReplica] = [
        "backups",
        "media",
        "backups-replica",
        "media-replica",
      ].map((b) => arnOf(run, `prod-buckets-${b}`));
      const on = (action: string) =>
        doc.Statement.filter((s: { Action: string[] }) => s.Action.includes(action))
          .flatMap((s: { Resource: string | string[] }) => [s.Resource].flat())
          .sort();
      for (const action of ["s3:GetReplicationConfiguration", "s3:ListBucket"])
        assert.deepEqual(on(action), [backups, media].sort(), action);
      for (const action of [
        "s3:GetObjectVersionForReplication",
        "s3:GetObjectVersionAcl",
        "s3:GetObjectVersionTagging",
      ])
        assert.deepEqual(on(action), [`${backups}/*`, `${media}/*`].sort(), action);
      for (const action of ["s3:ReplicateObject", "s3:ReplicateTags"])
        assert.deepEqual(on(action), [`${backupsReplica}/*`, `${mediaReplica}/*`].sort(), action);
      assert.deepEqual(on("kms:Decrypt"), [arnOf(run, "prod-secrets-key", T.kms)]);
      for (const action of ["kms:Encrypt", "kms:GenerateDataKey"])
        assert.deepEqual(on(action), [arnOf(run, "prod-buckets-replica-key", T.kms)], action);
      assert.deepEqual(
        doc.Statement.flatMap((s: { Action: string[] }) => s.Action).sort(),
        [
          "kms:Decrypt",
          "kms:Encrypt",
          "kms:GenerateDataKey",
          "s3:GetObjectVersionAcl",
          "s3:GetObjectVersionForReplication",
          "s3:GetObjectVersionTagging",
          "s3:GetReplicationConfiguration",
          "s3:ListBucket",
          "s3:ReplicateObject",
          "s3:ReplicateTags",
        ],
        "nothing more; no s3:ReplicateDelete, since no rule replicates delete markers",
      );
      for (const s of doc.Statement) {
        assert.equal(s.Effect, "Allow");
        assert.equal(s.Condition, undefined);
        for (const r of [s.Resource].flat()) assert.ok(!/\*$/.test(r) || /^arn:aws:s3:::[^*]+\/\*$/.test(r), r);
      }
    });
  });

  describe("media", () => {
    it("one media bucket per stack, versioned, replaced versions kept as long as backups", async () => {
      for (const stack of ["qa", "prod"]) {
        const run = await stackRun(stack);
        const bucket = ofType(run, T.bucket).find((b) => b.name === `${stack}-buckets-media`);
        assert.ok(bucket, "the media bucket");
        assert.ok(ofType(run, T.versioning).some((v) => v.name === `${stack}-buckets-media-versioning`));
        const rules = inputs(byName(run, `${stack}-buckets-media-lifecycle`)).rules;
        const rule = rules.find((r: { id: string }) => r.id === "expire-replaced-media");
        const days = inputs(byName(run, `${stack}-buckets-backups-lifecycle`)).rules.find(
          (r: { id: string }) => r.id === "expire-backups",
        ).expiration.days;
        assert.equal(rule.noncurrentVersionExpiration.noncurrentDays, days, "a backup's media versions outlive it");
        assert.equal(rule.expiration.days, undefined, "uploads themselves never expire");
        assert.equal(inputs(bucket).forceDestroy, stack === "qa");
      }
    });

    it("the hosts' role reaches the media bucket (its objects and versions) and no other bucket for it", async () => {
      const run = await stackRun("prod");
      const doc = JSON.parse(inputs(ofType(run, T.rolePolicy).find((p) => p.name === "prod-host-policy")!).policy);
      const media = inputs(ofType(run, T.rolePolicy).find((p) => p.name === "prod-host-policy")!).policy.match(
        /arn:aws:s3:::prod-buckets-media-[0-9a-f]+/,
      )[0];
      const of = (sid: string) => doc.Statement.find((s: { Sid: string }) => s.Sid === sid);
      assert.deepEqual(of("ListMedia").Resource, media);
      assert.deepEqual(of("ListMedia").Action, ["s3:ListBucket", "s3:ListBucketVersions"]);
      assert.deepEqual(of("ReadAndWriteMedia").Resource, `${media}/*`);
      const actions = doc.Statement.flatMap((s: { Action: string[] }) => s.Action);
      assert.ok(!actions.includes("s3:DeleteObjectVersion"), "a host can hide an upload, never destroy a version");
      for (const s of doc.Statement) {
        if ([s.Action].flat().some((a: string) => /Version/.test(a))) {
          for (const r of [s.Resource].flat()) assert.ok(r.startsWith(media), `${s.Sid}: ${r}`);
        }
      }
    });

    it("the site gets the bucket's name and region in .env; backup and restore name it", async () => {
      const run = await evaluate("prod", {
        restoreBackup: "db/20261121T101500Z-before-r1.dump",
        blueRelease: "r1",
        blueArtifact: "releases/a.tar.gz",
        blueSha256: "a".repeat(64),
      });
      const param = (n: string) => inputs(ofType(run, T.ssm).find((p) => inputs(p).name === `/greenlight/prod/${n}`)!);
      const bucket = param("MEDIA_BUCKET").insecureValue;
      assert.match(bucket, /^prod-buckets-media-[0-9a-f]+$/);
      assert.equal(param("MEDIA_BUCKET").type, "String");
      assert.equal(param("MEDIA_REGION").insecureValue, "eu-west-1");
      const commands = ofType(run, "command:remote:Command")
        .filter((c) => /-(backup|restore)$/.test(c.name))
        .map((c) => inputs(c).create as string);
      assert.equal(commands.length, 2, commands.join("\n"));
      for (const c of commands) assert.ok(c.includes(`GL_MEDIA_BUCKET='${bucket}'`), `${bucket}: ${c}`);
    });
  });

  describe("secrets", () => {
    it("generated secrets use an alphabet free of characters that break .env files, shells and URLs", async () => {
      const run = await stackRun("qa");
      const forbidden = ["=", "'", '"', "\\", "$", "@", ":", "/", "?", "#", "%"];
      const passwords = ofType(run, T.password).map(inputs);
      assert.ok(passwords.length >= 2);
      for (const p of passwords) {
        assert.equal(p.special, true);
        for (const c of forbidden) assert.ok(!p.overrideSpecial.includes(c), `${c} in ${p.overrideSpecial}`);
        assert.equal(p.overrideSpecial, SECRET_SPECIALS);
      }
      for (const s of ofType(run, "random:index/randomString:RandomString").map(inputs)) assert.equal(s.special, false);
    });

    it("every setting lands under /greenlight/<stack>/, secrets as SecureString with the environment's key", async () => {
      const run = await evaluate("qa", { sentryDsn: { secret: "https://key@o1.ingest.sentry.io/2" } });
      const params = ofType(run, T.ssm);
      const byParamName = Object.fromEntries(params.map((p) => [inputs(p).name, p]));
      const secure = ["ADMIN_PATH", "DATABASE_URL", "DB_PASSWORD", "SECRET_KEY", "SENTRY_DSN"];
      const plain = [
        "ALLOWED_HOSTS",
        "DB_HOST",
        "DB_NAME",
        "DB_PORT",
        "DB_USER",
        "HEALTH_PATH",
        "HTTPS",
        "MEDIA_BUCKET",
        "MEDIA_REGION",
      ];
      assert.deepEqual(Object.keys(byParamName).sort(), [...secure, ...plain].map((n) => `/greenlight/qa/${n}`).sort());
      for (const n of secure) {
        const p = byParamName[`/greenlight/qa/${n}`];
        assert.equal(inputs(p).type, "SecureString", n);
        assert.ok(isSecretValue(p.inputs.value), `${n}'s value is a secret input`);
        assert.ok(inputs(p).keyId, `${n} is encrypted with the environment's key`);
      }
      for (const n of plain) assert.equal(inputs(byParamName[`/greenlight/qa/${n}`]).type, "String", n);
      assert.equal(inputs(byParamName["/greenlight/qa/SENTRY_DSN"]).value, "https://key@o1.ingest.sentry.io/2");
      assert.match(
        inputs(byParamName["/greenlight/qa/DATABASE_URL"]).value,
        /^postgres:\/\/site:generated-.*@.*:5432\/site\?sslmode=require$/,
      );
    });

    it("plain settings (greenlight:settings) are plain SSM Strings, ALLOWED_HOSTS extends greenlight's", async () => {
      const run = await evaluate("qa", {
        settings: JSON.stringify({ EMAIL_HOST: "smtp.example.com", ALLOWED_HOSTS: ".example.org" }),
      });
      const byParamName = Object.fromEntries(ofType(run, T.ssm).map((p) => [inputs(p).name, p]));
      const email = byParamName["/greenlight/qa/EMAIL_HOST"];
      assert.equal(inputs(email).type, "String");
      assert.equal(inputs(email).keyId, undefined);
      assert.equal(email.inputs.value, undefined);
      assert.ok(!isSecretValue(email.inputs.insecureValue), "visible in a preview");
      assert.equal(inputs(email).insecureValue, "smtp.example.com");
      assert.equal(
        inputs(byParamName["/greenlight/qa/ALLOWED_HOSTS"]).insecureValue,
        ".eu-west-1.elb.amazonaws.com,.example.org",
      );
    });

    it("no secret reaches a plain stack output", async () => {
      for (const stack of ["qa", "prod"]) {
        const run = await stackRun(stack);
        assert.deepEqual(run.secretOutputs.sort(), ["adminPath", "adminSshPrivateKey", "sshPrivateKey"]);
        const secrets = run.resources
          .filter((r) => r.type.startsWith("random:") || r.type.startsWith("tls:"))
          .flatMap((r) => Object.values(r.state ?? {}))
          .filter(
            (v): v is string => typeof v === "string" && (v.startsWith("generated-") || v.includes("PRIVATE KEY")),
          );
        assert.ok(secrets.length >= 4);
        const plain = JSON.stringify(Object.entries(run.outputs).filter(([k]) => !run.secretOutputs.includes(k)));
        for (const s of secrets) assert.ok(!plain.includes(s), `${stack}: a plain output carries a secret`);
      }
    });

    it("sshConfig: an OpenSSH config whose private hosts jump through the bastion's own entry (its key too)", async () => {
      const prod = (await stackRun("prod")).outputs;
      const text = String(prod.sshConfig);
      assert.match(
        text,
        /^Host prod-bastion\n {2}HostName \S+\n {2}User admin\n {2}IdentityFile greenlight-prod\.key\n/m,
      );
      assert.match(text, /^Host prod-1\n {2}HostName \S+\n {2}User deploy\n(?: {2}.*\n)*? {2}ProxyJump prod-bastion$/m);
      assert.match(text, /UserKnownHostsFile greenlight-prod\.known_hosts\n {2}StrictHostKeyChecking yes/);
      const qa = String((await stackRun("qa")).outputs.sshConfig);
      assert.match(qa, /^Host qa-0\n/m);
      assert.doesNotMatch(qa, /ProxyJump|bastion/);
    });
  });

  describe("rollback", () => {
    const released = { ...slot("blue", "r1"), ...slot("green", "r2") };
    for (const stack of ["qa", "prod"]) {
      it(`${stack}: flipping live changes the forwarding listener and nothing else (but the workers' steps, with Redis)`, async () => {
        const before = await evaluate(stack, { ...released, live: "green" });
        const after = await evaluate(stack, { ...released, live: "blue" });
        const snapshot = (run: ProgramRun) =>
          new Map(run.resources.map((r) => [`${r.type}::${r.name}`, JSON.stringify(reveal(r.inputs))]));
        const a = snapshot(before);
        const b = snapshot(after);
        assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort(), "the same resources");
        const changed = [...a.keys()].filter((k) => a.get(k) !== b.get(k));
        const forward = stack === "prod" ? "prod-alb-https" : "qa-alb-http";
        // With Redis (prod's default) the workers' steps follow the listener (docs/architecture.md).
        const workers =
          stack === "prod"
            ? ["stop-0", "stop-1", "start-0", "start-1"].map((s) => `command:remote:Command::prod-release-workers-${s}`)
            : [];
        assert.deepEqual(changed, [`${T.listener}::${forward}`, ...workers]);
        const target = (run: ProgramRun) => inputs(byName(run, forward)).defaultActions[0].targetGroupArn as string;
        assert.match(target(before), /alb-green/);
        assert.match(target(after), /alb-blue/);
        assert.equal(after.outputs.liveColour, "blue");
        assert.equal(after.outputs.liveRelease, "r1");
      });
    }
  });

  it("every resource belongs to a greenlight component, named after the environment", async () => {
    for (const stack of ["qa", "prod"]) {
      const run = await stackRun(stack);
      for (const r of run.resources) {
        if (r.type === "greenlight:environment:Environment") {
          assert.equal(r.name, stack);
          continue;
        }
        assert.match(
          r.options.parent,
          /greenlight:[a-zA-Z]+:[A-Z][A-Za-z]+::/,
          `${r.type} ${r.name} has a component parent`,
        );
        assert.ok(r.name.startsWith(`${stack}-`), `${r.name} is named after ${stack}`);
      }
    }
  });
});
