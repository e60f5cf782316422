// Stand-in for pulumi-aws (its provider cannot be built offline: it needs a patched Terraform
// provider checked out beside it). Diff replaces on what AWS replaces on (replaces.ts).
//
// Resources that the release flow touches are played by the rehearsal's local world, over
// HTTP on loopback (GREENLIGHT_STANDINS_URL, see ../rehearsal/world.ts): an EC2 instance boots
// a local host from its user data, RDS is the local PostgreSQL, SSM parameters and S3 buckets
// live in the local S3/SSM stand-in, and the load balancer's target groups, attachments and
// listeners drive the local ALB stand-in. Every other resource (VPC, subnets, security groups,
// IAM, KMS, alarms, ...) has no local effect: it gets an id and the ARN-style outputs the
// program reads, like the unit tests' mocks.
import { randomBytes } from "crypto";
import { ACCOUNT, REGION, awsInvoke } from "./invokes";
import { AWS_REPLACES } from "./replaces";
import { Resource, StandInProvider } from "./standIn";
import { Props } from "./wire";

/** The resource types the local world plays (see WORLD_TYPES in ../rehearsal/world.ts). */
export const PLAYED = new Set([
  "aws:ec2/instance:Instance",
  "aws:rds/instance:Instance",
  "aws:elasticache/replicationGroup:ReplicationGroup",
  "aws:ssm/parameter:Parameter",
  "aws:s3/bucket:Bucket",
  "aws:s3/bucketVersioning:BucketVersioning",
  "aws:lb/loadBalancer:LoadBalancer",
  "aws:lb/targetGroup:TargetGroup",
  "aws:lb/targetGroupAttachment:TargetGroupAttachment",
  "aws:lb/listener:Listener",
]);

export interface WorldCall {
  op: "create" | "update" | "delete";
  type: string;
  name: string;
  id?: string;
  inputs: Props;
  olds?: Props;
}

async function callWorld(call: WorldCall): Promise<{ id?: string; outs?: Props }> {
  const url = process.env.GREENLIGHT_STANDINS_URL;
  if (!url)
    throw new Error(`the aws stand-in plays ${call.type} only inside the rehearsal (no GREENLIGHT_STANDINS_URL)`);
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(call),
  });
  const body = (await res.json()) as { id?: string; outs?: Props; error?: string };
  if (!res.ok) throw new Error(body.error ?? `the local world answered ${res.status}`);
  return body;
}

const hex = (n: number) => randomBytes(n).toString("hex");

/** Outputs of a resource with no local effect: an id, its name and an ARN, as AWS would give. */
function inert(r: Resource, i: Props): { id: string; outs: Props } {
  const [, mod, kind] = r.type.split(/[:/]/);
  const arn = (what: string, id: string) => `arn:aws:${mod}:${REGION}:${ACCOUNT}:${what}/${id}`;
  const name = (i.name as string | undefined) ?? `${r.name}-${hex(4)}`;
  const extra: Props = {};
  let id = `${r.name}-${hex(4)}`;
  switch (r.type) {
    case "aws:acm/certificate:Certificate":
      extra.arn = arn("certificate", hex(8));
      extra.domainValidationOptions = [
        {
          domainName: i.domainName,
          resourceRecordName: `_${hex(4)}.${String(i.domainName)}.`,
          resourceRecordType: "CNAME",
          resourceRecordValue: `_${hex(4)}.acm-validations.aws.`,
        },
      ];
      break;
    case "aws:acm/certificateValidation:CertificateValidation":
      extra.certificateArn = i.certificateArn;
      break;
    case "aws:route53/record:Record":
      extra.fqdn = i.name;
      break;
    case "aws:ec2/eip:Eip":
      id = `eipalloc-${hex(8)}`;
      extra.allocationId = id;
      extra.publicIp = "198.51.100.10";
      break;
    case "aws:kms/key:Key":
      id = `${hex(4)}-${hex(2)}-${hex(2)}-${hex(2)}-${hex(6)}`;
      extra.keyId = id;
      extra.arn = arn("key", id);
      break;
    case "aws:iam/role:Role":
    case "aws:iam/instanceProfile:InstanceProfile":
    case "aws:iam/policy:Policy":
      id = name;
      extra.arn = `arn:aws:iam::${ACCOUNT}:${kind === "role" ? "role" : kind === "policy" ? "policy" : "instance-profile"}/${name}`;
      break;
    case "aws:sns/topic:Topic":
      extra.arn = `arn:aws:sns:${REGION}:${ACCOUNT}:${name}`;
      id = String(extra.arn);
      break;
    default:
      extra.arn = arn(kind.toLowerCase(), id);
  }
  return { id, outs: { name, ...extra } };
}

export const awsStandIn: StandInProvider = {
  version: "7.48.0",
  replaces(type) {
    const row = AWS_REPLACES[type];
    if (!row)
      throw new Error(`the aws stand-in does not know which properties of ${type} replace it: add it to replaces.ts`);
    return row.replaces;
  },
  secretOutputs: (type) => (type === "aws:rds/instance:Instance" ? ["password"] : []),
  async create(r, inputs) {
    if (!PLAYED.has(r.type)) return inert(r, inputs);
    const res = await callWorld({ op: "create", type: r.type, name: r.name, inputs });
    return { id: res.id ?? `${r.name}-${hex(4)}`, outs: res.outs ?? {} };
  },
  async update(r, id, olds, news) {
    if (!PLAYED.has(r.type)) return { ...olds, ...news };
    const res = await callWorld({ op: "update", type: r.type, name: r.name, id, inputs: news, olds });
    return { ...olds, ...news, ...(res.outs ?? {}) };
  },
  async delete(r, id, olds) {
    if (!PLAYED.has(r.type)) return;
    await callWorld({ op: "delete", type: r.type, name: r.name, id, inputs: olds, olds });
  },
  async invoke(token) {
    return awsInvoke(token);
  },
};
