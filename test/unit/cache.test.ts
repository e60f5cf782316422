// Issue 13: Redis for the site's Celery worker and beat (components/cache.ts).
import * as assert from "assert";
import { isSecretValue, reveal } from "../rig/program";
import { evaluate, ofType } from "./fakeEngine";

const RG = "aws:elasticache/replicationGroup:ReplicationGroup";
const T = {
  ingress: "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
  egress: "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
  sg: "aws:ec2/securityGroup:SecurityGroup",
  ssm: "aws:ssm/parameter:Parameter",
  subnets: "aws:elasticache/subnetGroup:SubnetGroup",
  alarm: "aws:cloudwatch/metricAlarm:MetricAlarm",
  command: "command:remote:Command",
};
const inputs = (r: { inputs: Record<string, unknown> }) => reveal<Record<string, unknown>>(r.inputs);

describe("cache: Redis on ElastiCache, on by default in prod, off by default in qa", () => {
  it("prod has one; qa has none, nor its group, its REDIS_URL, its alarms or worker steps", async () => {
    const prod = await evaluate("prod");
    assert.equal(ofType(prod, RG).length, 1);
    const qa = await evaluate("qa");
    assert.equal(ofType(qa, RG).length, 0);
    assert.ok(!ofType(qa, T.sg).some((g) => g.name.endsWith("-sg-cache")));
    assert.ok(!ofType(qa, T.ssm).some((p) => String(inputs(p).name).endsWith("/REDIS_URL")));
    assert.ok(!ofType(qa, T.alarm).some((a) => a.name.includes("-cache-")));
    assert.equal(qa.outputs.redisEndpoint, undefined);
  });

  it("greenlight:redis turns it on in qa and off in prod", async () => {
    assert.equal(ofType(await evaluate("qa", { redis: "on" }), RG).length, 1);
    assert.equal(ofType(await evaluate("prod", { redis: "off" }), RG).length, 0);
  });

  it("is private: the database's subnets, a group of its own that admits the hosts' group only, on 6379", async () => {
    const run = await evaluate("prod");
    const rg = inputs(ofType(run, RG)[0]);
    const subnets = inputs(ofType(run, T.subnets)[0]);
    const db = inputs(ofType(run, "aws:rds/subnetGroup:SubnetGroup")[0] ?? { inputs: {} });
    if (db.subnetIds) assert.deepEqual(subnets.subnetIds, db.subnetIds);
    assert.ok(String(subnets.subnetIds).includes("private"), `private subnets: ${String(subnets.subnetIds)}`);
    const groups = Object.fromEntries(ofType(run, T.sg).map((g) => [`${g.name}-id`, g.name]));
    assert.deepEqual(
      (rg.securityGroupIds as string[]).map((id) => groups[id]),
      ["prod-sg-cache"],
    );
    const cacheIn = ofType(run, T.ingress).filter((r) => groups[String(inputs(r).securityGroupId)] === "prod-sg-cache");
    assert.equal(cacheIn.length, 1);
    assert.equal(groups[String(inputs(cacheIn[0]).referencedSecurityGroupId)], "prod-sg-hosts");
    assert.equal(inputs(cacheIn[0]).fromPort, 6379);
    assert.equal(inputs(cacheIn[0]).cidrIpv4, undefined);
    const hostsOut = ofType(run, T.egress).filter(
      (r) => groups[String(inputs(r).referencedSecurityGroupId)] === "prod-sg-cache",
    );
    assert.equal(hostsOut.length, 1);
    assert.equal(groups[String(inputs(hostsOut[0]).securityGroupId)], "prod-sg-hosts");
  });

  it("is encrypted at rest with the environment's key and in transit, with a generated AUTH token", async () => {
    const run = await evaluate("prod");
    const r = ofType(run, RG)[0];
    const rg = inputs(r);
    assert.equal(rg.atRestEncryptionEnabled, true);
    assert.match(String(rg.kmsKeyId), /kms/);
    assert.equal(rg.transitEncryptionEnabled, true);
    assert.ok(isSecretValue(r.inputs.authToken), "the token is a secret input");
    assert.match(String(rg.authToken), /^generated-prod-cache-auth-token-/);
    assert.equal(rg.nodeType, "cache.t4g.micro");
    assert.equal(
      inputs(ofType(await evaluate("prod", { redisNodeType: "cache.t4g.small" }), RG)[0]).nodeType,
      "cache.t4g.small",
    );
  });

  it("reaches the site only as the SecureString REDIS_URL (TLS, the token), in no command and no plain output", async () => {
    const run = await evaluate("prod");
    const p = ofType(run, T.ssm).find((x) => inputs(x).name === "/greenlight/prod/REDIS_URL")!;
    assert.ok(p, "REDIS_URL is published");
    assert.equal(inputs(p).type, "SecureString");
    assert.ok(isSecretValue(p.inputs.value));
    assert.ok(inputs(p).keyId);
    const token = String(inputs(ofType(run, RG)[0]).authToken);
    assert.equal(
      inputs(p).value,
      `rediss://:${token}@master.prod-cache-redis.abc123.euw1.cache.amazonaws.com:6379/0?ssl_cert_reqs=required`,
    );
    for (const c of ofType(run, T.command)) {
      const text = JSON.stringify(inputs(c));
      assert.ok(!text.includes(token), `${c.name} carries the token`);
    }
    assert.ok(!JSON.stringify(run.outputs).includes(token), "no output carries the token");
    assert.equal(run.outputs.redisEndpoint, "master.prod-cache-redis.abc123.euw1.cache.amazonaws.com");
  });

  it("alarms: engine CPU, memory and evictions of the node", async () => {
    const run = await evaluate("prod");
    const alarms = ofType(run, T.alarm).filter((a) => a.name.includes("-cache-"));
    assert.deepEqual(alarms.map((a) => a.name).sort(), [
      "prod-alarms-cache-cpu",
      "prod-alarms-cache-evictions",
      "prod-alarms-cache-memory",
    ]);
    for (const a of alarms) {
      assert.equal(inputs(a).namespace, "AWS/ElastiCache");
      assert.deepEqual(inputs(a).dimensions, { CacheClusterId: "prod-cache-redis-001" });
    }
  });
});
