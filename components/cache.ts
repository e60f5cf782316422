import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { SECRET_SPECIALS } from "./secrets";
import { REDIS_PORT } from "./securityGroups";

export interface CacheArgs {
  /** The database's private subnets: the cache sits beside it, never in a public subnet. */
  subnetIds: pulumi.Input<string>[];
  /** The cache's own group: 6379 from the hosts' group only (securityGroups.ts). */
  securityGroupId: pulumi.Input<string>;
  /** The environment's key: the cache's data at rest and its snapshots. */
  kmsKeyArn: pulumi.Input<string>;
  nodeType: string;
  /** Days of daily snapshots (0: none). */
  snapshotRetentionDays: number;
}

/** Redis OSS major.minor the cache runs (Debian 12's redis-server, which the local hosts run, is 7.0). */
export const REDIS_ENGINE_VERSION = "7.1";

/**
 * Redis on ElastiCache for the site's Celery broker (and anything else it caches): one
 * node in the database's private subnets, reachable only from the hosts' security group,
 * encrypted at rest (the environment's KMS key) and in transit (TLS, AUTH with a token from
 * @pulumi/random). The token never leaves Pulumi's secrets but inside `url`, which the
 * environment publishes as the SSM SecureString REDIS_URL, so it reaches the site only in
 * the rendered .env (like DATABASE_URL).
 */
export class Cache extends pulumi.ComponentResource {
  readonly replicationGroup: aws.elasticache.ReplicationGroup;
  /** rediss://:<token>@<primary endpoint>:6379/0?ssl_cert_reqs=required: a secret. */
  readonly url: pulumi.Output<string>;
  readonly address: pulumi.Output<string>;
  /** The one node's cache cluster id: the CloudWatch dimension of its metrics (alarms.ts). */
  readonly clusterId: pulumi.Output<string>;

  constructor(name: string, args: CacheArgs, opts?: pulumi.ComponentResourceOptions) {
    super("greenlight:cache:Cache", name, {}, opts);
    const parent = { parent: this };

    // ElastiCache's AUTH token: 16-128 printable characters without / " @; ours are letters,
    // digits and -_.~ (URL-safe, .env-safe).
    const token = new random.RandomPassword(
      `${name}-auth-token`,
      { length: 64, special: true, overrideSpecial: SECRET_SPECIALS, minLower: 2, minUpper: 2, minNumeric: 2 },
      parent,
    );
    const subnets = new aws.elasticache.SubnetGroup(
      `${name}-subnets`,
      { description: "greenlight Redis: the database's private subnets", subnetIds: args.subnetIds },
      parent,
    );
    this.replicationGroup = new aws.elasticache.ReplicationGroup(
      `${name}-redis`,
      {
        description: "greenlight Redis: Celery broker of the site",
        engine: "redis",
        engineVersion: REDIS_ENGINE_VERSION,
        nodeType: args.nodeType,
        numCacheClusters: 1,
        port: REDIS_PORT,
        subnetGroupName: subnets.name,
        securityGroupIds: [args.securityGroupId],
        atRestEncryptionEnabled: true,
        kmsKeyId: args.kmsKeyArn,
        transitEncryptionEnabled: true,
        authToken: token.result,
        autoMinorVersionUpgrade: true,
        snapshotRetentionLimit: args.snapshotRetentionDays,
        // volatile-lru: only keys with a TTL are ever evicted, never the broker's queues.
        parameterGroupName: "default.redis7",
        applyImmediately: false,
      },
      { ...parent, additionalSecretOutputs: ["authToken"] },
    );
    this.address = this.replicationGroup.primaryEndpointAddress;
    this.clusterId = this.replicationGroup.memberClusters.apply((m) => [...(m ?? [])].sort()[0] ?? "");
    this.url = pulumi.secret(
      pulumi.interpolate`rediss://:${token.result}@${this.address}:${this.replicationGroup.port}/0?ssl_cert_reqs=required`,
    );
    this.registerOutputs({ address: this.address });
  }
}
