// A mock engine for unit tests: every resource gets a deterministic id and the outputs the
// program reads (addresses, ARNs, key material), derived from its name. Unknown invokes fail
// loudly rather than returning their inputs.
import { MockEngine, Registered, ProgramRun, reveal, runProgram } from "../rig/program";
import { awsInvoke } from "../rig/providers/invokes";
import { Override, stackConfig } from "../rig/stackConfig";

import { ACCOUNT } from "../rig/providers/invokes";

function hash(s: string): number {
  let h = 7;
  for (const c of s) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return h;
}

export const fakeEngine: MockEngine = {
  async newResource(r: Registered) {
    const inputs = reveal<Record<string, unknown>>(r.inputs);
    const n = hash(r.name);
    const id = `${r.name}-id`;
    const arn = (service: string, what: string) => `arn:aws:${service}:eu-west-1:${ACCOUNT}:${what}/${r.name}`;
    const extra: Record<string, unknown> = {};
    switch (r.type) {
      case "aws:ec2/instance:Instance":
        extra.privateIp = `10.40.${n % 200}.${(n >> 8) % 250}`;
        extra.publicIp = inputs.associatePublicIpAddress ? `198.51.100.${n % 250}` : "";
        extra.arn = arn("ec2", "instance");
        break;
      case "aws:lb/loadBalancer:LoadBalancer":
        extra.arn = arn("elasticloadbalancing", "loadbalancer/app");
        extra.dnsName = `${r.name}-${n % 100000}.eu-west-1.elb.amazonaws.com`;
        extra.zoneId = "Z32O12XQLNTSW2";
        break;
      case "aws:rds/instance:Instance":
        extra.address = `${r.name}.abc123.eu-west-1.rds.amazonaws.com`;
        extra.port = 5432;
        extra.endpoint = `${extra.address}:5432`;
        break;
      case "aws:elasticache/replicationGroup:ReplicationGroup":
        extra.primaryEndpointAddress = `master.${r.name}.abc123.euw1.cache.amazonaws.com`;
        extra.memberClusters = [`${r.name}-001`];
        extra.port = inputs.port;
        extra.arn = arn("elasticache", "replicationgroup");
        break;
      case "aws:s3/bucket:Bucket":
        extra.bucket = `${r.name}-${(n % 0xfffffff).toString(16)}`;
        extra.arn = `arn:aws:s3:::${extra.bucket}`;
        break;
      case "tls:index/privateKey:PrivateKey":
        extra.privateKeyOpenssh = `-----BEGIN OPENSSH PRIVATE KEY-----\nfake-${r.name}\n-----END OPENSSH PRIVATE KEY-----\n`;
        extra.publicKeyOpenssh = `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA${n.toString(36)} \n`;
        break;
      case "random:index/randomPassword:RandomPassword":
      case "random:index/randomString:RandomString":
        extra.result = `generated-${r.name}-${n.toString(36)}`;
        break;
      case "random:index/randomId:RandomId":
        extra.hex = (n % 0xffffffff).toString(16);
        break;
      case "aws:acm/certificate:Certificate":
        extra.arn = arn("acm", "certificate");
        extra.domainValidationOptions = [
          {
            domainName: inputs.domainName,
            resourceRecordName: `_x.${inputs.domainName}.`,
            resourceRecordType: "CNAME",
            resourceRecordValue: "_y.acm-validations.aws.",
          },
        ];
        break;
      case "aws:acm/certificateValidation:CertificateValidation":
        extra.certificateArn = inputs.certificateArn;
        break;
      case "aws:route53/record:Record":
        extra.fqdn = inputs.name;
        break;
      default:
        extra.arn = arn(r.type.split(":")[1].split("/")[0], r.type.split(":")[2]);
    }
    // Like the provider's autonaming: a resource without a name gets its logical name.
    return { id, state: { name: r.name, ...r.inputs, ...extra, id } };
  },
  call(token: string) {
    try {
      return awsInvoke(token);
    } catch {
      throw new Error(`Mock not implemented: ${token}`);
    }
  },
};

/** Runs the program for `stack` with the stack file's config plus `overrides`. */
export function evaluate(stack: string, overrides: Record<string, Override> = {}): Promise<ProgramRun> {
  return runProgram(stack, stackConfig(stack, overrides), fakeEngine);
}

export function ofType(run: ProgramRun, type: string): Registered[] {
  return run.resources.filter((r) => r.type === type);
}

export function byName(run: ProgramRun, name: string): Registered {
  const r = run.resources.find((x) => x.name === name);
  if (!r) throw new Error(`no resource named ${name}; have ${run.resources.map((x) => x.name).join(", ")}`);
  return r;
}

/** A release for a slot, as `npm run release` writes it. */
export function slot(colour: "blue" | "green", release: string): Record<string, string> {
  const sha = (hash(release).toString(16).padStart(8, "0") + "0".repeat(56)).slice(0, 64);
  return {
    [`${colour}Release`]: release,
    [`${colour}Artifact`]: `releases/${sha}.tar.gz`,
    [`${colour}Sha256`]: sha,
  };
}
