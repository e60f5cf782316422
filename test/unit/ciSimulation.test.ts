// Issue 11, item 7: the CI roles of one stack cannot change another stack's resources, even in
// the same account and region. The roles' real policy documents (CiAccess under mocks) are
// evaluated by @cloud-copilot/iam-simulate, request by request.
import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";
import { CI_ROLE_PATH, CiAccess, CiAccessArgs } from "../../components/ci";
import { STACK_TAG } from "../../components/constants";
import { reveal } from "../rig/program";
import { byName, evaluate, fakeEngine } from "./fakeEngine";
import { ACCOUNT, PolicyDoc, decide } from "../rig/iamSim";

const R = "eu-west-1";
const STATE = "arn:aws:s3:::acme-pulumi-state";
const KEY = { qa: "1234abcd-12ab-34cd-56ef-00000000000a", prod: "1234abcd-12ab-34cd-56ef-00000000000b" };
const keyArn = (st: "qa" | "prod") => `arn:aws:kms:${R}:${ACCOUNT}:key/${KEY[st]}`;

type Stack = "qa" | "prod";
/** A request against one stack's resource: action, resource ARN, extra context. */
type Probe = {
  what: string;
  action: string;
  resource: (st: Stack) => string;
  context?: (st: Stack) => Record<string, string | string[]>;
};

const tagged = (st: Stack) => ({ [`aws:ResourceTag/${STACK_TAG}`]: st });
const PROBES: Probe[] = [
  {
    what: "terminate a host",
    action: "ec2:TerminateInstances",
    resource: (st) => `arn:aws:ec2:${R}:${ACCOUNT}:instance/i-0${st}`,
    context: tagged,
  },
  {
    what: "stop a host",
    action: "ec2:StopInstances",
    resource: (st) => `arn:aws:ec2:${R}:${ACCOUNT}:instance/i-0${st}`,
    context: tagged,
  },
  {
    what: "open a security group",
    action: "ec2:AuthorizeSecurityGroupIngress",
    resource: (st) => `arn:aws:ec2:${R}:${ACCOUNT}:security-group/sg-0${st}`,
    context: tagged,
  },
  {
    what: "delete the database",
    action: "rds:DeleteDBInstance",
    resource: (st) => `arn:aws:rds:${R}:${ACCOUNT}:db:${st}-db-postgres-1`,
    context: tagged,
  },
  {
    what: "modify the database",
    action: "rds:ModifyDBInstance",
    resource: (st) => `arn:aws:rds:${R}:${ACCOUNT}:db:${st}-db-postgres-1`,
    context: tagged,
  },
  {
    what: "change the cache (Redis)",
    action: "elasticache:ModifyReplicationGroup",
    resource: (st) => `arn:aws:elasticache:${R}:${ACCOUNT}:replicationgroup:${st}-cache-redis`,
    context: tagged,
  },
  {
    what: "delete the cache (Redis)",
    action: "elasticache:DeleteReplicationGroup",
    resource: (st) => `arn:aws:elasticache:${R}:${ACCOUNT}:replicationgroup:${st}-cache-redis`,
    context: tagged,
  },
  {
    what: "move the listener",
    action: "elasticloadbalancing:ModifyListener",
    resource: (st) =>
      `arn:aws:elasticloadbalancing:${R}:${ACCOUNT}:listener/app/${st}-alb-1/50dc6c495c0c9188/f2f7dc8efc522ab2`,
    context: tagged,
  },
  {
    what: "deregister targets",
    action: "elasticloadbalancing:DeregisterTargets",
    resource: (st) => `arn:aws:elasticloadbalancing:${R}:${ACCOUNT}:targetgroup/${st}-alb-blue/73e2d6bc24d8a067`,
    context: tagged,
  },
  { what: "rewrite the key policy", action: "kms:PutKeyPolicy", resource: keyArn, context: tagged },
  { what: "schedule the key's deletion", action: "kms:ScheduleKeyDeletion", resource: keyArn, context: tagged },
  {
    what: "delete an alarm",
    action: "cloudwatch:DeleteAlarms",
    resource: (st) => `arn:aws:cloudwatch:${R}:${ACCOUNT}:alarm:${st}-alarms-5xx`,
    context: tagged,
  },
  {
    what: "subscribe to the alarm topic",
    action: "sns:Subscribe",
    resource: (st) => `arn:aws:sns:${R}:${ACCOUNT}:${st}-alarms-topic-1a2b3c`,
    context: tagged,
  },
  {
    what: "read a secret parameter",
    action: "ssm:GetParameter",
    resource: (st) => `arn:aws:ssm:${R}:${ACCOUNT}:parameter/greenlight/${st}/DB_PASSWORD`,
  },
  {
    what: "overwrite a parameter",
    action: "ssm:PutParameter",
    resource: (st) => `arn:aws:ssm:${R}:${ACCOUNT}:parameter/greenlight/${st}/DATABASE_URL`,
  },
  {
    what: "read a backup",
    action: "s3:GetObject",
    resource: (st) => `arn:aws:s3:::${st}-buckets-backups-1a2b3c/db/x.dump`,
  },
  {
    what: "give the host role a policy",
    action: "iam:PutRolePolicy",
    resource: (st) => `arn:aws:iam::${ACCOUNT}:role/${st}-host-role-1a2b3c`,
  },
  {
    what: "write the stack's state",
    action: "s3:PutObject",
    resource: (st) => `${STATE}/.pulumi/stacks/greenlight/${st}.json`,
  },
  {
    what: "read the stack's state",
    action: "s3:GetObject",
    resource: (st) => `${STATE}/.pulumi/stacks/greenlight/${st}.json`,
  },
  {
    what: "take the stack's lock",
    action: "s3:PutObject",
    resource: (st) => `${STATE}/.pulumi/locks/greenlight/${st}/5f1c.json`,
  },
  {
    what: "rewrite the stack's history",
    action: "s3:DeleteObject",
    resource: (st) => `${STATE}/.pulumi/history/greenlight/${st}/${st}-1.checkpoint.json`,
  },
  {
    what: "start a host tagged for the stack",
    action: "ec2:RunInstances",
    resource: () => `arn:aws:ec2:${R}:${ACCOUNT}:instance/*`,
    context: (st) => ({ [`aws:RequestTag/${STACK_TAG}`]: st, "aws:TagKeys": [STACK_TAG] }),
  },
  {
    what: "create a key tagged for the stack",
    action: "kms:CreateKey",
    resource: () => "*",
    context: (st) => ({ [`aws:RequestTag/${STACK_TAG}`]: st, "aws:TagKeys": [STACK_TAG] }),
  },
];

describe("CI roles under the IAM simulator: each stack's roles reach only their own stack", function () {
  const created: pulumi.runtime.MockResourceArgs[] = [];
  let keyPolicy: PolicyDoc;
  const resourcePolicyOf = (action: string) => (action.startsWith("kms:") ? keyPolicy : undefined);
  const policy = (name: string): PolicyDoc => {
    const r = created.find((x) => x.type === "aws:iam/rolePolicy:RolePolicy" && x.name === name);
    assert.ok(r, name);
    return JSON.parse(r.inputs.policy);
  };
  const base = (st: Stack): CiAccessArgs => ({
    repository: "acme/greenlight",
    stack: st,
    createOidcProvider: false,
    stateBucketArn: STATE,
    parameterPath: `/greenlight/${st}/`,
    region: R,
    kmsKeyArn: keyArn(st),
  });

  before(async function () {
    await pulumi.runtime.setMocks(
      {
        newResource: (args) => {
          created.push(args);
          return {
            id: `${args.name}-id`,
            state: { ...args.inputs, arn: `arn:aws:iam::${ACCOUNT}:role${CI_ROLE_PATH}${args.name}` },
          };
        },
        call: (args) => fakeEngine.call(args.token, args.inputs),
      },
      "greenlight",
      "qa",
      false,
    );
    new CiAccess("qa-ci", base("qa"));
    new CiAccess("prod-ci", { ...base("prod"), deployEnvironment: "production", domain: "www.example.com" });
    new CiAccess("nokey-ci", { ...base("qa"), kmsKeyArn: undefined });
    await pulumi.runtime.disconnect();
    // KMS asks the key's own policy too: the environment key's, as the program builds it.
    const run = await evaluate("qa");
    keyPolicy = JSON.parse(reveal<Record<string, string>>(byName(run, "qa-secrets-key").inputs).policy);
  });

  const ask = (role: string, p: Probe, on: Stack) =>
    decide(
      policy(role),
      p.action,
      p.resource(on),
      { "aws:RequestedRegion": R, ...(p.context?.(on) ?? {}) },
      undefined,
      resourcePolicyOf(p.action),
    );

  for (const p of PROBES) {
    it(`deploy: ${p.what}: its own stack's yes, the other stack's no`, async () => {
      assert.equal(await ask("qa-ci-deploy", p, "qa"), "Allowed", "qa on qa");
      assert.notEqual(await ask("qa-ci-deploy", p, "prod"), "Allowed", "qa on prod");
      assert.equal(await ask("prod-ci-deploy", p, "prod"), "Allowed", "prod on prod");
      assert.notEqual(await ask("prod-ci-deploy", p, "qa"), "Allowed", "prod on qa");
    });
  }

  it("another stack's tag is an explicit Deny, which no Allow (here or in another policy) can outweigh", async () => {
    const host = PROBES.find((p) => p.action === "ec2:TerminateInstances")!;
    assert.equal(await ask("qa-ci-deploy", host, "prod"), "ExplicitlyDenied");
    const key = PROBES.find((p) => p.action === "kms:PutKeyPolicy")!;
    assert.equal(await ask("qa-ci-deploy", key, "prod"), "ExplicitlyDenied");
  });

  it("a qa role cannot re-tag its own resource for prod, nor create a key without the stack's tag", async () => {
    const retag = await decide(policy("qa-ci-deploy"), "ec2:CreateTags", `arn:aws:ec2:${R}:${ACCOUNT}:instance/i-0qa`, {
      "aws:RequestedRegion": R,
      [`aws:ResourceTag/${STACK_TAG}`]: "qa",
      [`aws:RequestTag/${STACK_TAG}`]: "prod",
      "aws:TagKeys": [STACK_TAG],
    });
    assert.equal(retag, "ExplicitlyDenied");
    const untaggedKey = await decide(policy("qa-ci-deploy"), "kms:CreateKey", "*", { "aws:RequestedRegion": R });
    assert.notEqual(untaggedKey, "Allowed");
  });

  it("without the environment key's ARN, KMS use is still confined to keys of the stack's tag", async () => {
    const use = (st: Stack) =>
      decide(
        policy("nokey-ci-deploy"),
        "kms:Decrypt",
        keyArn(st),
        { "aws:RequestedRegion": R, ...tagged(st) },
        undefined,
        keyPolicy,
      );
    assert.equal(await use("qa"), "Allowed");
    assert.notEqual(await use("prod"), "Allowed");
  });

  it("previews read their own stack's state only, and change nothing", async () => {
    const read = PROBES.find((p) => p.what === "read the stack's state")!;
    assert.equal(await ask("qa-ci-preview", read, "qa"), "Allowed");
    assert.notEqual(await ask("qa-ci-preview", read, "prod"), "Allowed");
    for (const p of PROBES.filter((x) => x.what !== "read the stack's state"))
      assert.notEqual(await ask("qa-ci-preview", p, "qa"), "Allowed", `preview may not ${p.what}`);
  });

  it("DNS: prod changes only its own name and its validation records; qa changes no DNS", async () => {
    const change = (role: string, names: string[]) =>
      decide(policy(role), "route53:ChangeResourceRecordSets", "arn:aws:route53:::hostedzone/Z0EXAMPLEZONE", {
        "route53:ChangeResourceRecordSetsNormalizedRecordNames": names,
      });
    assert.equal(await change("prod-ci-deploy", ["www.example.com"]), "Allowed");
    assert.equal(await change("prod-ci-deploy", ["_3f1a.www.example.com"]), "Allowed");
    assert.notEqual(await change("prod-ci-deploy", ["www.example.com", "mail.example.com"]), "Allowed");
    assert.notEqual(await change("prod-ci-deploy", ["example.com"]), "Allowed");
    assert.notEqual(await change("qa-ci-deploy", ["www.example.com"]), "Allowed");
  });
});
