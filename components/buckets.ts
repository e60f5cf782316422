import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

export interface SecureBucketArgs {
  kmsKeyArn: pulumi.Input<string>;
  versioned: boolean;
  forceDestroy: boolean;
  /** Lifecycle rules in addition to aborting stale multipart uploads. */
  lifecycle?: aws.types.input.s3.BucketLifecycleConfigurationRule[];
  provider?: pulumi.ProviderResource;
  /** Pulumi refuses to delete or replace the bucket, and a delete leaves it in AWS (prod's backups). */
  keep?: boolean;
}

/**
 * A private bucket: public access blocked, owner-enforced objects, SSE-KMS with the
 * environment's key, a policy that refuses anything but TLS, and a lifecycle.
 */
export class SecureBucket extends pulumi.ComponentResource {
  readonly bucket: aws.s3.Bucket;
  readonly name: pulumi.Output<string>;
  readonly arn: pulumi.Output<string>;
  readonly versioning?: aws.s3.BucketVersioning;

  constructor(name: string, args: SecureBucketArgs, opts?: pulumi.ComponentResourceOptions) {
    super("greenlight:buckets:SecureBucket", name, {}, opts);
    const o = { parent: this, provider: args.provider };
    this.bucket = new aws.s3.Bucket(
      name,
      { forceDestroy: args.forceDestroy },
      { ...o, protect: args.keep ?? false, retainOnDelete: args.keep ?? false },
    );
    this.name = this.bucket.bucket;
    this.arn = this.bucket.arn;
    const bucket = this.bucket.id;

    const pab = new aws.s3.BucketPublicAccessBlock(
      `${name}-public-access`,
      { bucket, blockPublicAcls: true, blockPublicPolicy: true, ignorePublicAcls: true, restrictPublicBuckets: true },
      o,
    );
    new aws.s3.BucketOwnershipControls(
      `${name}-ownership`,
      { bucket, rule: { objectOwnership: "BucketOwnerEnforced" } },
      o,
    );
    new aws.s3.BucketServerSideEncryptionConfiguration(
      `${name}-sse`,
      {
        bucket,
        rules: [
          {
            applyServerSideEncryptionByDefault: { sseAlgorithm: "aws:kms", kmsMasterKeyId: args.kmsKeyArn },
            bucketKeyEnabled: true,
          },
        ],
      },
      o,
    );
    if (args.versioned) {
      this.versioning = new aws.s3.BucketVersioning(
        `${name}-versioning`,
        { bucket, versioningConfiguration: { status: "Enabled" } },
        o,
      );
    }
    new aws.s3.BucketLifecycleConfiguration(
      `${name}-lifecycle`,
      {
        bucket,
        rules: [
          {
            id: "abort-stale-uploads",
            status: "Enabled",
            filter: {},
            abortIncompleteMultipartUpload: { daysAfterInitiation: 7 },
          },
          ...(args.lifecycle ?? []),
        ],
      },
      { ...o, dependsOn: this.versioning ? [this.versioning] : [] },
    );
    new aws.s3.BucketPolicy(
      `${name}-tls-only`,
      {
        bucket,
        policy: pulumi.jsonStringify({
          Version: "2012-10-17",
          Statement: [
            {
              Sid: "DenyInsecureTransport",
              Effect: "Deny",
              Principal: "*",
              Action: "s3:*",
              Resource: [this.bucket.arn, pulumi.interpolate`${this.bucket.arn}/*`],
              Condition: { Bool: { "aws:SecureTransport": "false" } },
            },
          ],
        }),
      },
      // S3 rejects a policy while public access settings are being applied.
      { ...o, dependsOn: [pab] },
    );

    this.registerOutputs({ name: this.name, arn: this.arn });
  }
}

export interface BucketsArgs {
  kmsKeyArn: pulumi.Input<string>;
  backupRetentionDays: number;
  /** Keep buckets with objects on destroy (prod). */
  protect: boolean;
  replicaRegion?: string;
  /** Default tags of the replica region's provider (the stack's tag, as aws:defaultTags gives the default provider). */
  tags?: Record<string, string>;
}

/**
 * Artifacts (content-addressed release archives), backups (versioned, expiring) and media (the
 * site's uploads, shared by every host; versioned, so a backup's media manifest can name the
 * version of each object), with optional replicas of the backups and media in another region.
 */
export class Buckets extends pulumi.ComponentResource {
  readonly artifacts: SecureBucket;
  readonly backups: SecureBucket;
  readonly media: SecureBucket;
  /** The backups' replica in `replicaRegion`. */
  readonly replica?: SecureBucket;
  /** The media bucket's replica in `replicaRegion`. */
  readonly mediaReplica?: SecureBucket;

  constructor(name: string, args: BucketsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("greenlight:buckets:Buckets", name, {}, opts);
    const parent = { parent: this };
    this.artifacts = new SecureBucket(
      `${name}-artifacts`,
      { kmsKeyArn: args.kmsKeyArn, versioned: false, forceDestroy: !args.protect },
      parent,
    );
    const days = args.backupRetentionDays;
    this.backups = new SecureBucket(
      `${name}-backups`,
      {
        kmsKeyArn: args.kmsKeyArn,
        versioned: true,
        forceDestroy: !args.protect,
        keep: args.protect,
        lifecycle: [
          {
            id: "expire-backups",
            status: "Enabled",
            filter: {},
            expiration: { days },
            noncurrentVersionExpiration: { noncurrentDays: 7 },
          },
        ],
      },
      parent,
    );
    // Uploads never expire; a version replaced or deleted is kept as long as a backup is
    // (backupRetentionDays), so every kept backup's media manifest can be restored
    // (scripts/remote/lib.sh media_manifest, restore.sh).
    this.media = new SecureBucket(
      `${name}-media`,
      {
        kmsKeyArn: args.kmsKeyArn,
        versioned: true,
        forceDestroy: !args.protect,
        keep: args.protect,
        lifecycle: [
          {
            id: "expire-replaced-media",
            status: "Enabled",
            filter: {},
            noncurrentVersionExpiration: { noncurrentDays: days },
            expiration: { expiredObjectDeleteMarker: true },
          },
        ],
      },
      parent,
    );

    if (args.replicaRegion) {
      const provider = new aws.Provider(
        `${name}-replica-region`,
        { region: args.replicaRegion as aws.Region, defaultTags: args.tags ? { tags: args.tags } : undefined },
        parent,
      );
      const replicaKey = new aws.kms.Key(
        `${name}-replica-key`,
        { description: "greenlight backup replica", enableKeyRotation: true, deletionWindowInDays: 30 },
        { parent: this, provider },
      );
      const replicaOf = (which: string, lifecycle: aws.types.input.s3.BucketLifecycleConfigurationRule[]) =>
        new SecureBucket(
          `${name}-${which}-replica`,
          { kmsKeyArn: replicaKey.arn, versioned: true, forceDestroy: !args.protect, lifecycle, provider },
          parent,
        );
      this.replica = replicaOf("backups", [
        { id: "expire-backups", status: "Enabled", filter: {}, expiration: { days } },
      ]);
      // Deletes are not replicated, so every upload stays current here; a version replaced in
      // the source is kept as long as the source keeps it, so any kept backup's manifest
      // (its version ids, which replication preserves) can be restored from the replica.
      this.mediaReplica = replicaOf("media", [
        {
          id: "expire-replaced-media",
          status: "Enabled",
          filter: {},
          noncurrentVersionExpiration: { noncurrentDays: days },
        },
      ]);
      const pairs = [
        { which: "backups", source: this.backups, replica: this.replica },
        { which: "media", source: this.media, replica: this.mediaReplica },
      ];
      const role = new aws.iam.Role(
        `${name}-replication`,
        {
          assumeRolePolicy: JSON.stringify({
            Version: "2012-10-17",
            Statement: [{ Effect: "Allow", Principal: { Service: "s3.amazonaws.com" }, Action: "sts:AssumeRole" }],
          }),
        },
        parent,
      );
      // Exactly the two sources and their replicas. No s3:ReplicateDelete: neither rule
      // replicates delete markers, so a delete in a source never reaches its offsite copy.
      const policy = new aws.iam.RolePolicy(
        `${name}-replication`,
        {
          role: role.id,
          policy: pulumi.jsonStringify({
            Version: "2012-10-17",
            Statement: [
              {
                Effect: "Allow",
                Action: ["s3:GetReplicationConfiguration", "s3:ListBucket"],
                Resource: pairs.map((p) => p.source.arn),
              },
              {
                Effect: "Allow",
                Action: ["s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging"],
                Resource: pairs.map((p) => pulumi.interpolate`${p.source.arn}/*`),
              },
              {
                Effect: "Allow",
                Action: ["s3:ReplicateObject", "s3:ReplicateTags"],
                Resource: pairs.map((p) => pulumi.interpolate`${p.replica.arn}/*`),
              },
              { Effect: "Allow", Action: ["kms:Decrypt"], Resource: args.kmsKeyArn },
              { Effect: "Allow", Action: ["kms:Encrypt", "kms:GenerateDataKey"], Resource: replicaKey.arn },
            ],
          }),
        },
        parent,
      );
      for (const { which, source, replica } of pairs) {
        new aws.s3.BucketReplicationConfig(
          `${name}-${which}-replication`,
          {
            bucket: source.bucket.id,
            role: role.arn,
            rules: [
              {
                id: `replicate-${which}`,
                status: "Enabled",
                filter: {},
                deleteMarkerReplication: { status: "Disabled" },
                sourceSelectionCriteria: { sseKmsEncryptedObjects: { status: "Enabled" } },
                destination: { bucket: replica.arn, encryptionConfiguration: { replicaKmsKeyId: replicaKey.arn } },
              },
            ],
          },
          // A version written before the role may act fails to replicate, and S3 never retries it.
          { parent: this, dependsOn: [source.versioning!, replica.versioning!, policy] },
        );
      }
    }

    this.registerOutputs({
      artifactBucket: this.artifacts.name,
      backupBucket: this.backups.name,
      mediaBucket: this.media.name,
      replicaBucket: this.replica?.name,
      mediaReplicaBucket: this.mediaReplica?.name,
    });
  }
}
