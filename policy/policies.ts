// greenlight's own guardrails, as CrossGuard policies. `policy/index.ts` serves them as the
// "greenlight" pack (`pulumi preview --stack qa --policy-pack policy`); the tests run each one
// on hand-made resources and on everything the real program registers for qa and prod.
//
// How a policy sees a resource (@pulumi/policy 1.21, server.js / deserialize.js):
// - resource policies get the resource's *inputs*; stack policies get every resource's
//   *outputs* (during a preview: the inputs plus unknown computed values).
// - secrets arrive unwrapped: `connection` of a remote command, which the SDK wraps in a
//   secret, is a plain object here. So a message must never quote a value it inspected.
// - reading an unknown value (an id during preview) throws UnknownValueError; the server turns
//   that into an advisory "can't run during preview" for the whole validation. Stack policies
//   here read ids through `known()` so one unknown id does not silence the policy for every
//   other resource.
import * as aws from "@pulumi/aws";
import * as command from "@pulumi/command";
import type { Resource } from "@pulumi/pulumi";
import {
  Policies,
  PolicyResource,
  ReportViolation,
  ResourceValidation,
  ResourceValidationArgs,
  ResourceValidationPolicy,
  StackValidationArgs,
  StackValidationPolicy,
  validateResourceOfType,
} from "@pulumi/policy";
import * as policySdk from "@pulumi/policy";

// Exported at runtime since 1.21 but stripped from the typings (@internal).
const { UnknownValueError } = policySdk as unknown as { UnknownValueError: new (...args: never[]) => Error };

// ---------------------------------------------------------------------------------------------
// Helpers

const UNKNOWN = Symbol("unknown");
type Known<T> = T | typeof UNKNOWN;

/** Evaluates `f`, or returns UNKNOWN when it touches a value that is unknown during preview. */
function known<T>(f: () => T): Known<T> {
  try {
    return f();
  } catch (e) {
    if (e instanceof UnknownValueError || (e as { unknownTypeSentinel?: unknown })?.unknownTypeSentinel !== undefined) {
      return UNKNOWN;
    }
    throw e;
  }
}

/** `urn:pulumi:<stack>::<project>::<type>::<name>` */
export function urnParts(urn: string): { stack: string; project: string } {
  const m = /^urn:pulumi:([^:]+)::([^:]+)::/.exec(urn);
  return m ? { stack: m[1], project: m[2] } : { stack: "", project: "" };
}

// The shape `args.isType()` takes.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type ResourceClass = { new (...rest: any[]): Resource };
const typeName = (c: ResourceClass) => (c as unknown as { __pulumiType: string }).__pulumiType;

/**
 * One validation per resource class. The server catches "not applicable" per validation, so a
 * policy covering several classes reports on whichever one matches.
 */
function forTypes<P>(
  classes: ResourceClass[],
  check: (props: P, args: ResourceValidationArgs, report: ReportViolation) => void,
): ResourceValidation[] {
  return classes.map(
    (c): ResourceValidation =>
      (args, report) =>
        args.isType(c) ? check(args.props as P, args, report) : args.notApplicable(`only for ${typeName(c)}`),
  );
}

const WORLD_V4 = "0.0.0.0/0";
const WORLD_V6 = "::/0";

type Protocol = "tcp" | "udp" | "icmp" | "all" | "other";
function protocol(p: unknown): Protocol {
  const s = String(p ?? "").toLowerCase();
  if (s === "tcp" || s === "6") return "tcp";
  if (s === "udp" || s === "17") return "udp";
  if (s === "icmp" || s === "1" || s === "icmpv6" || s === "58") return "icmp";
  if (s === "-1" || s === "all") return "all";
  return "other";
}

/** An inbound permission, whatever resource shape it came from. */
interface Ingress {
  protocol: Protocol;
  fromPort?: number;
  toPort?: number;
  sources: string[];
}

function coversPort(r: Ingress, port: number): boolean {
  if (r.protocol === "all") return true;
  if (r.protocol !== "tcp") return false;
  const from = r.fromPort ?? 0;
  const to = r.toPort ?? 65535;
  return from <= port && port <= to;
}

function describeRule(r: Ingress): string {
  const ports = r.protocol === "all" ? "all traffic" : `${r.protocol} ${r.fromPort}-${r.toPort}`;
  return `${ports} from ${r.sources.join(", ")}`;
}

/** CIDR prefix length, or undefined when not a CIDR. */
function prefixOf(cidr: string): { v6: boolean; prefix: number } | undefined {
  const m = /^([0-9a-fA-F:.]+)\/(\d{1,3})$/.exec(cidr.trim());
  return m ? { v6: m[1].includes(":"), prefix: Number(m[2]) } : undefined;
}

/** Broader than an operator's network: IPv4 wider than /16, IPv6 wider than /48. */
function tooBroadForSsh(cidr: string): boolean {
  const p = prefixOf(cidr);
  if (!p) return false;
  return p.v6 ? p.prefix < 48 : p.prefix < 16;
}

type SgInline = {
  protocol?: string;
  fromPort?: number;
  toPort?: number;
  cidrBlocks?: string[];
  ipv6CidrBlocks?: string[];
};

function inlineIngress(rules: SgInline[] | undefined): Ingress[] {
  return (rules ?? []).map((r) => ({
    protocol: protocol(r.protocol),
    fromPort: r.fromPort,
    toPort: r.toPort,
    sources: [...(r.cidrBlocks ?? []), ...(r.ipv6CidrBlocks ?? [])],
  }));
}

/** Every inbound CIDR permission of the resource under validation (any of the four SG shapes). */
function ingressOf(args: ResourceValidationArgs): Ingress[] {
  const p = args.props as Record<string, unknown>;
  switch (args.type) {
    case "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
      return [
        {
          protocol: protocol(p.ipProtocol),
          fromPort: p.fromPort as number | undefined,
          toPort: p.toPort as number | undefined,
          sources: [p.cidrIpv4, p.cidrIpv6].filter((s): s is string => typeof s === "string" && s !== ""),
        },
      ];
    case "aws:ec2/securityGroupRule:SecurityGroupRule":
      if (p.type !== "ingress") return [];
      return inlineIngress([p as SgInline]);
    case "aws:ec2/securityGroup:SecurityGroup":
    case "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup":
      return inlineIngress(p.ingress as SgInline[] | undefined);
    default:
      return args.notApplicable(`not a security group rule: ${args.type}`);
  }
}

/** Applies `check` to the inbound rules of any of the four security-group shapes. */
function sgValidation(
  check: (rules: Ingress[], args: ResourceValidationArgs, report: ReportViolation) => void,
): ResourceValidation {
  return (args, report) => check(ingressOf(args), args, report);
}

const BUCKET_TYPES = ["aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2"];
const PAB_TYPE = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock";
const SSE_TYPES = [
  "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
  "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
];
const BUCKET_POLICY_TYPE = "aws:s3/bucketPolicy:BucketPolicy";
const LB_TYPES = ["aws:lb/loadBalancer:LoadBalancer", "aws:alb/loadBalancer:LoadBalancer"];
const LISTENER_TYPES = ["aws:lb/listener:Listener", "aws:alb/listener:Listener"];

/**
 * The resources among `candidates` that `res.props[prop]` points at. Preferred: the engine's
 * property dependencies (known even when the id is not, i.e. during a preview); else equality of
 * the known value with one of the candidates' id properties; else, when the value is unknown,
 * the resource's plain dependencies.
 */
function referencedBy(
  res: PolicyResource,
  prop: string,
  candidates: PolicyResource[],
  idProps: string[],
): PolicyResource[] {
  const viaProperty = (res.propertyDependencies?.[prop] ?? []).filter((d) => candidates.includes(d));
  if (viaProperty.length) return viaProperty;
  const value = known(() => res.props[prop] as unknown);
  if (value === UNKNOWN) return (res.dependencies ?? []).filter((d) => candidates.includes(d));
  if (value === undefined || value === null || value === "") return [];
  return candidates.filter((c) => idProps.some((k) => known(() => c.props[k] as unknown) === value));
}

function ofTypes(args: StackValidationArgs, types: string[]): PolicyResource[] {
  return args.resources.filter((r) => types.includes(r.type));
}

/** The bucket each companion resource (PAB, SSE, policy) configures. */
function companionsByBucket(args: StackValidationArgs, types: string[]): Map<PolicyResource, PolicyResource[]> {
  const buckets = ofTypes(args, BUCKET_TYPES);
  const map = new Map<PolicyResource, PolicyResource[]>(buckets.map((b) => [b, []]));
  for (const c of ofTypes(args, types)) {
    for (const b of referencedBy(c, "bucket", buckets, ["bucket", "id"])) map.get(b)!.push(c);
  }
  return map;
}

type PolicyStatement = {
  Effect?: string;
  Principal?: unknown;
  Action?: string | string[];
  Condition?: Record<string, Record<string, unknown>>;
};

/** True when the policy document denies every S3 action to everyone over plain HTTP. */
export function deniesInsecureTransport(policy: unknown): boolean {
  let doc: unknown = policy;
  if (typeof policy === "string") {
    try {
      doc = JSON.parse(policy);
    } catch {
      return false;
    }
  }
  const statements = (doc as { Statement?: PolicyStatement | PolicyStatement[] })?.Statement;
  return [statements ?? []].flat().some((s) => {
    const everyone = s.Principal === "*" || (s.Principal as { AWS?: unknown })?.AWS === "*";
    const allActions = [s.Action ?? []].flat().includes("s3:*");
    const insecure = s.Condition?.Bool?.["aws:SecureTransport"];
    return s.Effect === "Deny" && everyone && allActions && String(insecure) === "false";
  });
}

// ---------------------------------------------------------------------------------------------
// Network

export const sgNoWorldIngress: ResourceValidationPolicy = {
  name: "sg-no-world-ingress",
  description:
    "Nothing is reachable from the whole internet (0.0.0.0/0 or ::/0) except TCP 80 and 443, the load balancer's listeners.",
  enforcementLevel: "mandatory",
  severity: "critical",
  validateResource: sgValidation((rules, _args, report) => {
    for (const r of rules) {
      const world = r.sources.filter((s) => s === WORLD_V4 || s === WORLD_V6);
      if (!world.length) continue;
      const web = r.protocol === "tcp" && r.fromPort === r.toPort && (r.fromPort === 80 || r.fromPort === 443);
      if (!web) {
        report(
          `${describeRule(r)} opens more than HTTP/HTTPS to the internet; allowed from ${world.join(", ")}: ` +
            `TCP 80 or TCP 443 only (one port per rule)`,
        );
      }
    }
  }),
};

export const sgNoWorldSsh: ResourceValidationPolicy = {
  name: "sg-no-world-ssh",
  description:
    "SSH (22) is never open to the internet: only operator networks of /16 or narrower (IPv6 /48) or a security group such as the bastion's.",
  enforcementLevel: "mandatory",
  severity: "critical",
  validateResource: sgValidation((rules, _args, report) => {
    for (const r of rules) {
      if (!coversPort(r, 22)) continue;
      const broad = r.sources.filter(tooBroadForSsh);
      if (broad.length) {
        report(
          `${describeRule(r)} exposes SSH (22) to ${broad.join(", ")}; allowed: operator CIDRs of /16 or narrower ` +
            `(greenlight:operatorCidrs) or the bastion's security group`,
        );
      }
    }
  }),
};

// ---------------------------------------------------------------------------------------------
// Database

export const rdsNotPublic: ResourceValidationPolicy = {
  name: "rds-not-public",
  description: "RDS instances are never publicly accessible; only the hosts' security group reaches them.",
  enforcementLevel: "mandatory",
  severity: "critical",
  validateResource: validateResourceOfType(aws.rds.Instance, (db, _args, report) => {
    if (db.publiclyAccessible === true) {
      report("publiclyAccessible is true; allowed: false (the database lives in private subnets)");
    }
  }),
};

export const rdsStorageEncrypted: ResourceValidationPolicy = {
  name: "rds-storage-encrypted",
  description: "RDS storage is encrypted at rest.",
  enforcementLevel: "mandatory",
  severity: "high",
  validateResource: validateResourceOfType(aws.rds.Instance, (db, _args, report) => {
    // Read replicas inherit encryption from their source and reject the flag.
    if (db.replicateSourceDb) return;
    if (db.storageEncrypted !== true) {
      report("storageEncrypted is not true; allowed: true (with the environment's KMS key)");
    }
  }),
};

// ---------------------------------------------------------------------------------------------
// Cache (Redis on ElastiCache)

export const cacheNotPublic: ResourceValidationPolicy = {
  name: "cache-not-public",
  description:
    "ElastiCache runs in the VPC's private subnets (a subnet group) behind a security group of its own; never a bare cluster.",
  enforcementLevel: "mandatory",
  severity: "critical",
  validateResource: [
    validateResourceOfType(aws.elasticache.ReplicationGroup, (rg, _args, report) => {
      if (!rg.subnetGroupName) {
        report("subnetGroupName is not set (the default VPC's subnets); allowed: the database's private subnets");
      }
      if (!rg.securityGroupIds || rg.securityGroupIds.length === 0) {
        report("securityGroupIds is empty (the VPC's default group); allowed: a group that admits the hosts only");
      }
    }),
    validateResourceOfType(aws.elasticache.Cluster, (c, _args, report) => {
      if (!c.replicationGroupId) {
        report(
          "a cache cluster outside a replication group cannot encrypt Redis or require AUTH; allowed: aws.elasticache.ReplicationGroup",
        );
      }
    }),
  ],
};

export const cacheEncrypted: ResourceValidationPolicy = {
  name: "cache-encrypted",
  description: "ElastiCache Redis is encrypted at rest (with a KMS key) and in transit, and requires an AUTH token.",
  enforcementLevel: "mandatory",
  severity: "high",
  validateResource: validateResourceOfType(aws.elasticache.ReplicationGroup, (rg, _args, report) => {
    if (rg.atRestEncryptionEnabled !== true) {
      report("atRestEncryptionEnabled is not true; allowed: true (with the environment's KMS key)");
    } else if (!rg.kmsKeyId) {
      report("kmsKeyId is not set (AWS's own key); allowed: the environment's KMS key");
    }
    if (rg.transitEncryptionEnabled !== true) report("transitEncryptionEnabled is not true; allowed: true (TLS)");
    if (!rg.authToken && (!rg.userGroupIds || rg.userGroupIds.length === 0)) {
      report("neither authToken nor userGroupIds is set: anyone on the network may use it; allowed: an AUTH token");
    }
  }),
};

export const rdsBackupsRetained: ResourceValidationPolicy = {
  name: "rds-backups-retained",
  description: "RDS keeps automated backups for at least `minRetentionDays` days (default 1), set explicitly.",
  enforcementLevel: "mandatory",
  severity: "high",
  configSchema: { properties: { minRetentionDays: { type: "integer", minimum: 1, maximum: 35, default: 1 } } },
  validateResource: validateResourceOfType(aws.rds.Instance, (db, args, report) => {
    if (db.replicateSourceDb) return;
    const min = args.getConfig<{ minRetentionDays?: number }>().minRetentionDays ?? 1;
    const days = db.backupRetentionPeriod;
    if (days === undefined || days === null) {
      report(`backupRetentionPeriod is not set; allowed: ${min} or more days, set explicitly`);
    } else if (days < min) {
      report(`backupRetentionPeriod is ${days}; allowed: ${min} or more days`);
    }
  }),
};

/** Stacks whose databases must survive a careless destroy. "*" protects every stack. */
function isProtectedStack(args: ResourceValidationArgs): boolean {
  const list = args.getConfig<{ protectedStacks?: string[] }>().protectedStacks ?? ["prod"];
  const { stack } = urnParts(args.urn);
  return list.includes("*") || list.includes(stack);
}

export const rdsProtectedStack: ResourceValidationPolicy = {
  name: "rds-protected-stack",
  description:
    'In protected stacks (policy config `protectedStacks`, default ["prod"]; "*" for all) RDS has deletion protection and takes a named final snapshot.',
  enforcementLevel: "mandatory",
  severity: "high",
  configSchema: {
    properties: { protectedStacks: { type: "array", items: { type: "string" }, default: ["prod"] } },
  },
  validateResource: validateResourceOfType(aws.rds.Instance, (db, args, report) => {
    if (!isProtectedStack(args)) {
      return args.notApplicable(`stack ${urnParts(args.urn).stack} is not in protectedStacks`);
    }
    const stack = urnParts(args.urn).stack;
    if (db.deletionProtection !== true) {
      report(
        `deletionProtection is not true in protected stack ${stack}; allowed: true (greenlight:deletionProtection)`,
      );
    }
    if (db.skipFinalSnapshot === true) {
      report(`skipFinalSnapshot is true in protected stack ${stack}; allowed: false (greenlight:dbFinalSnapshot)`);
    } else if (!db.finalSnapshotIdentifier) {
      report(`finalSnapshotIdentifier is not set in protected stack ${stack}; a destroy would fail or lose the data`);
    }
  }),
};

// ---------------------------------------------------------------------------------------------
// Hosts

export const ec2Imdsv2: ResourceValidationPolicy = {
  name: "ec2-imdsv2-required",
  description: "EC2 instances accept only IMDSv2 (session tokens), which blocks SSRF-style credential theft.",
  enforcementLevel: "mandatory",
  severity: "high",
  validateResource: validateResourceOfType(aws.ec2.Instance, (i, _args, report) => {
    const md = i.metadataOptions;
    if (md?.httpEndpoint === "disabled") return;
    if (md?.httpTokens !== "required") {
      report(`metadataOptions.httpTokens is ${JSON.stringify(md?.httpTokens ?? "unset")}; allowed: "required"`);
    }
  }),
};

export const ec2VolumesEncrypted: ResourceValidationPolicy = {
  name: "ec2-volumes-encrypted",
  description: "EC2 root volumes (and any extra EBS volumes) are encrypted, independent of the account default.",
  enforcementLevel: "mandatory",
  severity: "high",
  validateResource: validateResourceOfType(aws.ec2.Instance, (i, _args, report) => {
    if (i.rootBlockDevice?.encrypted !== true) {
      report("rootBlockDevice.encrypted is not true; allowed: true");
    }
    (i.ebsBlockDevices ?? []).forEach((d, n) => {
      if (d.encrypted !== true) report(`ebsBlockDevices[${n}] (${d.deviceName}) is not encrypted; allowed: encrypted`);
    });
  }),
};

// ---------------------------------------------------------------------------------------------
// Buckets

const PAB_FLAGS = ["blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"] as const;

export const s3PublicAccessBlockFlags: ResourceValidationPolicy = {
  name: "s3-public-access-block-flags",
  description: "Every S3 public access block sets all four flags.",
  enforcementLevel: "mandatory",
  severity: "critical",
  validateResource: validateResourceOfType(aws.s3.BucketPublicAccessBlock, (pab, _args, report) => {
    const off = PAB_FLAGS.filter((f) => pab[f] !== true);
    if (off.length) report(`${off.join(", ")} not true; allowed: all four flags true`);
  }),
};

/*
 * Buckets and their settings are separate resources in @pulumi/aws 7 (the old inline settings
 * are deprecated, and AWS reports SSE-S3 on every bucket anyway), so "this bucket is private,
 * encrypted and TLS-only" is a stack policy: it pairs each bucket with the resources whose
 * `bucket` input points at it. The pairing uses property dependencies, which the engine knows
 * during a preview when the bucket's id is still unknown, and falls back on comparing the known
 * id. Counting buckets against public access blocks would pass a stack where one bucket has two
 * blocks and another none.
 */
function bucketCompanionPolicy(
  name: string,
  description: string,
  types: string[],
  ok: (companion: PolicyResource) => Known<boolean>,
  missing: string,
  inline?: (bucket: PolicyResource) => Known<boolean>,
): StackValidationPolicy {
  return {
    name,
    description,
    enforcementLevel: "mandatory",
    severity: "high",
    validateStack: (args, report) => {
      const map = companionsByBucket(args, types);
      if (!map.size) return args.notApplicable("no S3 buckets");
      for (const [bucket, companions] of map) {
        if (inline && inline(bucket) === true) continue;
        const verdicts = companions.map(ok);
        // A companion still unknown during preview is judged at `up`, when its value is known.
        if (verdicts.some((v) => v === true || v === UNKNOWN)) continue;
        report(`bucket ${bucket.name}: ${missing}`, bucket.urn);
      }
    },
  };
}

export const s3BucketPublicAccessBlocked = bucketCompanionPolicy(
  "s3-bucket-public-access-blocked",
  "Every S3 bucket has its own public access block with all four flags.",
  [PAB_TYPE],
  (pab) => known(() => PAB_FLAGS.every((f) => pab.props[f] === true)),
  "no BucketPublicAccessBlock with all four flags points at it; allowed: one with " + PAB_FLAGS.join(", "),
);

const SSE_ALGORITHMS = ["aws:kms", "aws:kms:dsse"];
export const s3BucketEncrypted = bucketCompanionPolicy(
  "s3-bucket-sse-kms",
  "Every S3 bucket has a server-side encryption configuration with a KMS key (aws:kms or aws:kms:dsse).",
  SSE_TYPES,
  (sse) =>
    known(() =>
      [sse.props.rules ?? []]
        .flat()
        .some((r: { applyServerSideEncryptionByDefault?: { sseAlgorithm?: string } }) =>
          SSE_ALGORITHMS.includes(r?.applyServerSideEncryptionByDefault?.sseAlgorithm ?? ""),
        ),
    ),
  `no BucketServerSideEncryptionConfiguration with ${SSE_ALGORITHMS.join(" or ")} points at it`,
);

export const s3BucketTlsOnly = bucketCompanionPolicy(
  "s3-bucket-tls-only",
  "Every S3 bucket's policy denies all S3 actions when aws:SecureTransport is false.",
  [BUCKET_POLICY_TYPE],
  (p) => known(() => deniesInsecureTransport(p.props.policy)),
  'no bucket policy denies s3:* to "*" when aws:SecureTransport is "false"',
  (bucket) => known(() => deniesInsecureTransport(bucket.props.policy)),
);

/**
 * The media bucket (the site's uploads, a `<name>-media` bucket) and its offsite replica
 * (`<name>-media-replica`, with backupReplicaRegion): versioned, so each backup's media manifest
 * can name the version of every upload and a restore can put it back, from either, and no
 * lifecycle rule that expires current objects (uploads are the users' data; replaced versions may
 * expire). Their public access block, encryption and TLS-only policy are the rules above, as for
 * every bucket.
 */
const VERSIONING_TYPES = ["aws:s3/bucketVersioning:BucketVersioning", "aws:s3/bucketVersioningV2:BucketVersioningV2"];
const LIFECYCLE_TYPES = [
  "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
  "aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2",
];
const isMediaBucket = (b: PolicyResource) => /-media(-replica)?$/.test(b.name);
export const s3MediaBucketVersioned: StackValidationPolicy = {
  name: "s3-media-bucket-versioned",
  description:
    "The media bucket (<name>-media) and its replica (<name>-media-replica) are versioned and no lifecycle rule expires their current objects: backups name upload versions.",
  enforcementLevel: "mandatory",
  severity: "high",
  validateStack: (args, report) => {
    const versioning = companionsByBucket(args, VERSIONING_TYPES);
    const lifecycles = companionsByBucket(args, LIFECYCLE_TYPES);
    const media = [...versioning.keys()].filter(isMediaBucket);
    if (!media.length) return args.notApplicable("no media bucket");
    for (const bucket of media) {
      const on = versioning
        .get(bucket)!
        .map((v) => known(() => (v.props.versioningConfiguration as { status?: string } | undefined)?.status))
        .some((status) => status === "Enabled" || status === UNKNOWN);
      if (!on) report(`bucket ${bucket.name}: no BucketVersioning with status "Enabled" points at it`, bucket.urn);
      for (const lc of lifecycles.get(bucket) ?? []) {
        const rules = known(() => (lc.props.rules ?? []) as { id?: string; expiration?: Record<string, unknown> }[]);
        if (rules === UNKNOWN) continue;
        for (const r of rules) {
          const e = r.expiration ?? {};
          if (e.days !== undefined || e.date !== undefined) {
            report(
              `bucket ${bucket.name}: lifecycle rule ${r.id ?? "?"} expires uploads (expiration ${JSON.stringify(e)}); allowed: noncurrentVersionExpiration and expiredObjectDeleteMarker only`,
              bucket.urn,
            );
          }
        }
      }
    }
  },
};

/**
 * An EC2 instance role (what the hosts and the site run with) never destroys object versions:
 * no s3:DeleteObjectVersion (nor a wildcard that covers it). With versioned backup and media
 * buckets, a compromised host can then hide a backup or an upload, never destroy one.
 */
const grantsVersionDelete = (action: string) =>
  ["s3:deleteobjectversion", "s3:*", "*", "s3:delete*", "s3:deleteobject*"].includes(action.toLowerCase());
export const iamHostsKeepVersions: StackValidationPolicy = {
  name: "iam-hosts-keep-versions",
  description:
    "A role EC2 instances assume is not allowed s3:DeleteObjectVersion: hosts can hide objects, never destroy versions.",
  enforcementLevel: "mandatory",
  severity: "high",
  validateStack: (args, report) => {
    const roles = ofTypes(args, ["aws:iam/role:Role"]).filter((r) =>
      known(() => String(r.props.assumeRolePolicy ?? "").includes("ec2.amazonaws.com")),
    );
    if (!roles.length) return args.notApplicable("no EC2 instance role");
    for (const rp of ofTypes(args, ["aws:iam/rolePolicy:RolePolicy"])) {
      if (!referencedBy(rp, "role", roles, ["id", "name"]).length) continue;
      const doc = known(() => {
        const p = rp.props.policy;
        return (typeof p === "string" ? JSON.parse(p) : p) as { Statement?: unknown };
      });
      if (doc === UNKNOWN || !doc) continue;
      for (const st of [doc.Statement ?? []].flat() as { Effect?: string; Action?: string | string[] }[]) {
        const bad = [st.Action ?? []].flat().filter(grantsVersionDelete);
        if (st.Effect === "Allow" && bad.length) {
          report(
            `role policy ${rp.name} allows ${bad.join(", ")}; allowed: s3:DeleteObject (a delete marker) only`,
            rp.urn,
          );
        }
      }
    }
  },
};

// ---------------------------------------------------------------------------------------------
// Parameters

export const ssmUnderStackPath: ResourceValidationPolicy = {
  name: "ssm-parameter-under-stack-path",
  description:
    "SSM parameters live under /<project>/<stack>/, the only path the environment's hosts may read (policy config `pathTemplate`).",
  enforcementLevel: "mandatory",
  severity: "medium",
  configSchema: { properties: { pathTemplate: { type: "string", default: "/{project}/{stack}/" } } },
  validateResource: validateResourceOfType(aws.ssm.Parameter, (p, args, report) => {
    const { project, stack } = urnParts(args.urn);
    const template = args.getConfig<{ pathTemplate?: string }>().pathTemplate ?? "/{project}/{stack}/";
    const path = template.replace("{project}", project).replace("{stack}", stack);
    if (typeof p.name !== "string" || !p.name.startsWith(path)) {
      report(`name ${JSON.stringify(p.name ?? "(auto-named)")} is outside ${path}; allowed: ${path}<NAME>`);
    }
  }),
};

/** Names that look like they hold a secret: a whole `_`/`-`/`.` separated word of the last segment. */
export const SECRET_NAME =
  /(^|[_.-])(PASSWORD|PASSWD|SECRET|KEY|TOKEN|DSN|DATABASE_URL|REDIS_URL|CREDENTIALS?)([_.-]|$)/i;

export const ssmSecretsAreSecure: ResourceValidationPolicy = {
  name: "ssm-secret-securestring",
  description: `SSM parameters whose names look secret (${SECRET_NAME.source}) are SecureString.`,
  enforcementLevel: "mandatory",
  severity: "critical",
  validateResource: validateResourceOfType(aws.ssm.Parameter, (p, _args, report) => {
    const last = String(p.name ?? "")
      .split("/")
      .pop()!;
    if (SECRET_NAME.test(last) && p.type !== "SecureString") {
      report(`${p.name} looks like a secret but its type is ${p.type}; allowed: SecureString`);
    }
  }),
};

// ---------------------------------------------------------------------------------------------
// Load balancer

type ListenerProps = {
  protocol?: string;
  port?: number;
  sslPolicy?: string;
  defaultActions?: { type?: string; redirect?: { protocol?: string } }[];
};

export const TLS13_POLICY_PREFIX = "ELBSecurityPolicy-TLS13-";

export const albTls13: ResourceValidationPolicy = {
  name: "alb-https-tls13",
  description: `HTTPS/TLS listeners use a TLS 1.3 security policy (${TLS13_POLICY_PREFIX}*).`,
  enforcementLevel: "mandatory",
  severity: "high",
  validateResource: forTypes<ListenerProps>([aws.lb.Listener, aws.alb.Listener], (l, _args, report) => {
    if (l.protocol !== "HTTPS" && l.protocol !== "TLS") return;
    if (!String(l.sslPolicy ?? "").startsWith(TLS13_POLICY_PREFIX)) {
      report(
        `${l.protocol} listener on ${l.port} uses ${JSON.stringify(l.sslPolicy ?? "the default policy")}; ` +
          `allowed: ${TLS13_POLICY_PREFIX}*`,
      );
    }
  }),
};

function redirectsToHttps(l: ListenerProps): boolean {
  const actions = l.defaultActions ?? [];
  return actions.length > 0 && actions.every((a) => a.type === "redirect" && a.redirect?.protocol === "HTTPS");
}

export const albHttpRedirects: StackValidationPolicy = {
  name: "alb-http-redirects-to-https",
  description: "On a load balancer with an HTTPS listener, every HTTP listener on port 80 redirects to HTTPS.",
  enforcementLevel: "mandatory",
  severity: "high",
  validateStack: (args, report) => {
    const lbs = ofTypes(args, LB_TYPES);
    if (!lbs.length) return args.notApplicable("no load balancers");
    const byLb = new Map<PolicyResource, PolicyResource[]>(lbs.map((lb) => [lb, []]));
    for (const l of ofTypes(args, LISTENER_TYPES)) {
      for (const lb of referencedBy(l, "loadBalancerArn", lbs, ["arn", "id"])) byLb.get(lb)!.push(l);
    }
    for (const [lb, listeners] of byLb) {
      // Field by field: a new listener's own arn is unknown during preview, its protocol is not.
      const https = listeners.some((l) => known(() => l.props.protocol) === "HTTPS");
      if (!https) continue;
      for (const l of listeners) {
        if (known(() => l.props.protocol) !== "HTTP" || known(() => l.props.port) !== 80) continue;
        const ok = known(() => redirectsToHttps(l.props as ListenerProps));
        if (ok === false) {
          report(
            `listener ${l.name} (HTTP:80 on ${lb.name}) does not redirect to HTTPS although ${lb.name} has an HTTPS listener`,
            l.urn,
          );
        }
      }
    }
  },
};

export const albDropInvalidHeaders: ResourceValidationPolicy = {
  name: "alb-drop-invalid-header-fields",
  description: "Application load balancers drop invalid HTTP header fields (request smuggling).",
  enforcementLevel: "mandatory",
  severity: "medium",
  validateResource: forTypes<{ loadBalancerType?: string; dropInvalidHeaderFields?: boolean }>(
    [aws.lb.LoadBalancer, aws.alb.LoadBalancer],
    (lb, _args, report) => {
      if ((lb.loadBalancerType ?? "application") !== "application") return;
      if (lb.dropInvalidHeaderFields !== true) report("dropInvalidHeaderFields is not true; allowed: true");
    },
  ),
};

// ---------------------------------------------------------------------------------------------
// Remote commands

type ConnectionProps = { host?: string; hostKey?: string; proxy?: { host?: string; hostKey?: string } };

export const remoteHostKeyPinned: ResourceValidationPolicy = {
  name: "remote-command-host-key-pinned",
  description:
    "Remote commands and copies pin the SSH host key of the host and of the proxy (bastion); without it @pulumi/command accepts any key.",
  enforcementLevel: "mandatory",
  severity: "critical",
  validateResource: forTypes<{ connection?: ConnectionProps }>(
    [command.remote.Command, command.remote.CopyToRemote, command.remote.CopyFile],
    (r, _args, report) => {
      const c = r.connection ?? {};
      // Only the fact is reported: a policy sees the (secret) connection in clear text.
      if (typeof c.hostKey !== "string" || c.hostKey.trim() === "") {
        report("connection.hostKey is not set; allowed: the host's public key (known_hosts format)");
      }
      if (c.proxy && (typeof c.proxy.hostKey !== "string" || c.proxy.hostKey.trim() === "")) {
        report("connection.proxy.hostKey is not set; allowed: the bastion's public key");
      }
    },
  ),
};

/**
 * A secret spelled out in a command: key material, or an assignment of one of the app's secret
 * settings to a literal value. `grep '^DB_PASSWORD=' shared/.env` or `DB_PASSWORD="$x"` name the
 * setting without carrying its value, and the remote scripts must be able to do that.
 */
const SECRET_IN_TEXT: { label: string; pattern: RegExp }[] = [
  { label: "-----BEGIN (key material)", pattern: /-----BEGIN/ },
  ...["PASSWORD", "SECRET_KEY", "DATABASE_URL"].map((k) => ({
    label: `${k}= followed by a literal value`,
    pattern: new RegExp(`${k}=["']?(?![\\s"'$/;|&)]|$)`, "i"),
  })),
];

export const remoteCommandNoSecrets: ResourceValidationPolicy = {
  name: "remote-command-no-secrets",
  description:
    "Remote commands carry no secret: no `environment` map, and create/update/delete contain no key material or secret assignments (secrets go through stdin or SSM).",
  enforcementLevel: "mandatory",
  severity: "critical",
  validateResource: validateResourceOfType(command.remote.Command, (c, _args, report) => {
    if (c.environment !== undefined && c.environment !== null) {
      report(
        `environment is set (${Object.keys(c.environment).join(", ") || "empty"}); allowed: no environment map ` +
          `(pass secrets through stdin or read them from shared/.env)`,
      );
    }
    for (const field of ["create", "update", "delete"] as const) {
      const text = c[field];
      if (typeof text !== "string") continue;
      // The message names what was found, never the text around it: it may be the secret.
      for (const { label, pattern } of SECRET_IN_TEXT) {
        if (pattern.test(text)) report(`${field} contains ${label}; allowed: secrets through stdin or SSM only`);
      }
    }
  }),
};

// ---------------------------------------------------------------------------------------------

export const policies: Policies = [
  sgNoWorldIngress,
  sgNoWorldSsh,
  rdsNotPublic,
  rdsStorageEncrypted,
  rdsBackupsRetained,
  rdsProtectedStack,
  cacheNotPublic,
  cacheEncrypted,
  ec2Imdsv2,
  ec2VolumesEncrypted,
  s3PublicAccessBlockFlags,
  s3BucketPublicAccessBlocked,
  s3BucketEncrypted,
  s3BucketTlsOnly,
  s3MediaBucketVersioned,
  iamHostsKeepVersions,
  ssmUnderStackPath,
  ssmSecretsAreSecure,
  albTls13,
  albHttpRedirects,
  albDropInvalidHeaders,
  remoteHostKeyPinned,
  remoteCommandNoSecrets,
];
