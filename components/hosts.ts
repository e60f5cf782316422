import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { stringify } from "yaml";
import type * as command from "@pulumi/command";
import { BACKUP_PREFIX } from "./constants";

/** Debian's AWS account: the publisher of the official Debian 12 AMIs. */
export const DEBIAN_AMI_OWNER = "136693071363";
/** The user cloud-init creates on Debian images; it has sudo and runs the bootstrap. */
export const ADMIN_USER = "admin";
/** The user the bootstrap creates; it owns /srv/<app> and runs every release step. */
export const DEPLOY_USER = "deploy";

export interface HostsArgs {
  hostCount: number;
  instanceType: string;
  /** Pinned AMI; when unset the newest Debian 12 image is looked up and kept (ignoreChanges). */
  amiId?: string;
  subnetIds: pulumi.Input<string>[];
  securityGroupId: pulumi.Input<string>;
  /** Public subnets and a public address (qa) or private subnets behind a bastion (prod). */
  publicAddress: boolean;
  bastion?: { subnetId: pulumi.Input<string>; securityGroupId: pulumi.Input<string>; instanceType: string };
  region: string;
  /** /<project>/<stack>/ : the only SSM path the hosts may read. */
  parameterPath: string;
  kmsKeyArn: pulumi.Input<string>;
  artifactBucketArn: pulumi.Input<string>;
  backupBucketArn: pulumi.Input<string>;
  mediaBucketArn: pulumi.Input<string>;
  dialErrorLimit: number;
}

export interface Host {
  index: number;
  instance: aws.ec2.Instance;
  /** What SSH dials: the public IP, or the private IP through the bastion. */
  address: pulumi.Output<string>;
  /** Public half of the host's generated SSH host key, as in known_hosts ("ssh-ed25519 AAAA..."). */
  hostKey: pulumi.Output<string>;
}

/** The AMI lookup: official Debian 12, x86_64, HVM, EBS-backed, newest. */
export function debianAmi(parent: pulumi.Resource): pulumi.Output<string> {
  return aws.ec2.getAmiOutput(
    {
      mostRecent: true,
      owners: [DEBIAN_AMI_OWNER],
      filters: [
        { name: "name", values: ["debian-12-amd64-*"] },
        { name: "architecture", values: ["x86_64"] },
        { name: "virtualization-type", values: ["hvm"] },
        { name: "root-device-type", values: ["ebs"] },
      ],
    },
    { parent },
  ).id;
}

/**
 * On the bastion, the deploy key may only forward connections (ProxyJump / -W, which is all
 * the release steps and `ssh -J` use): no shell, no command, so no sudo.
 */
export const JUMP_ONLY = 'restrict,port-forwarding,command="/usr/sbin/nologin"';

/**
 * cloud-init user data. It only installs the generated host key (and removes every other
 * host key, so the pinned one is the only one sshd can offer) and authorises keys for the
 * admin user (sudo): on hosts the admin key only; on the bastion also the deploy key, for
 * jumping only (JUMP_ONLY, listed first). The deploy key is never an admin key. Nothing else
 * goes here: on an existing instance a user-data change means a stop and start, so it must
 * stay stable; the bootstrap does the rest over SSH.
 */
export function userData(
  hostPrivateKey: string,
  hostPublicKey: string,
  adminPublicKey: string,
  jumpPublicKey?: string,
): string {
  return (
    "#cloud-config\n" +
    stringify({
      ssh_deletekeys: true,
      ssh_genkeytypes: [],
      ssh_keys: { ed25519_private: hostPrivateKey, ed25519_public: hostPublicKey.trim() },
      ssh_authorized_keys: [...(jumpPublicKey ? [`${JUMP_ONLY} ${jumpPublicKey.trim()}`] : []), adminPublicKey.trim()],
      ssh_pwauth: false,
      disable_root: true,
    })
  );
}

/**
 * The hosts' instance-role policy: what the host scripts call (scripts/remote/lib.sh: SSM
 * reads, artifact downloads, streamed backups and their cleanup, restores) and what the site
 * calls (its uploads in the media bucket), and no more. Pure,
 * so the tests' S3/SSM stand-in enforces the very same document (test/rig/awsStandIn.ts).
 */
export function hostPolicy(a: {
  partition: string;
  account: string;
  region: string;
  /** /<project>/<stack>/ */
  parameterPath: string;
  kmsKeyArn: string;
  artifactBucketArn: string;
  backupBucketArn: string;
  mediaBucketArn: string;
}): { Version: string; Statement: Record<string, unknown>[] } {
  const path = a.parameterPath.replace(/\/$/, "");
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "ReadThisEnvironmentsParameters",
        Effect: "Allow",
        Action: ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"],
        Resource: [
          `arn:${a.partition}:ssm:${a.region}:${a.account}:parameter${path}`,
          `arn:${a.partition}:ssm:${a.region}:${a.account}:parameter${path}/*`,
        ],
      },
      {
        Sid: "DecryptThroughSsmAndS3Only",
        Effect: "Allow",
        Action: ["kms:Decrypt"],
        Resource: a.kmsKeyArn,
        Condition: {
          StringEquals: {
            "kms:ViaService": [`ssm.${a.region}.amazonaws.com`, `s3.${a.region}.amazonaws.com`],
          },
        },
      },
      {
        Sid: "EncryptBackupsThroughS3Only",
        Effect: "Allow",
        Action: ["kms:GenerateDataKey"],
        Resource: a.kmsKeyArn,
        Condition: { StringEquals: { "kms:ViaService": `s3.${a.region}.amazonaws.com` } },
      },
      {
        Sid: "ReadArtifacts",
        Effect: "Allow",
        Action: ["s3:GetObject"],
        Resource: `${a.artifactBucketArn}/*`,
      },
      {
        // With ListBucket a missing key is a 404 ("no such artifact/backup"), not a 403
        // that reads like a broken role. Names only; the objects need the grants here.
        Sid: "ListArtifactsAndBackups",
        Effect: "Allow",
        Action: ["s3:ListBucket"],
        Resource: [a.artifactBucketArn, a.backupBucketArn],
      },
      {
        // Backups and restores (scripts/remote/lib.sh take_backup, restore.sh) under db/:
        // a streamed (multipart) upload that fails is aborted, a backup that fails its
        // check is deleted. The bucket is versioned and the role has no
        // DeleteObjectVersion, so a host can hide a backup but never destroy one.
        Sid: "WriteAndRestoreBackups",
        Effect: "Allow",
        Action: ["s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
        Resource: `${a.backupBucketArn}/${BACKUP_PREFIX}*`,
      },
      {
        // The site's uploads (django-storages as the app user) and the backup's media manifest
        // and its restore (lib.sh media_manifest, restore.sh): list the keys and their
        // versions, read a version to copy it back. No DeleteObjectVersion: the bucket is
        // versioned, so a host can hide an upload (a delete marker), never destroy one.
        Sid: "ListMedia",
        Effect: "Allow",
        Action: ["s3:ListBucket", "s3:ListBucketVersions"],
        Resource: a.mediaBucketArn,
      },
      {
        Sid: "ReadAndWriteMedia",
        Effect: "Allow",
        Action: ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
        Resource: `${a.mediaBucketArn}/*`,
      },
    ],
  };
}

/**
 * The EC2 hosts (and the bastion): Debian 12, IMDSv2 only, encrypted roots, a role that may
 * read only this environment's SSM path, the artifacts and the backups. SSH host keys and the
 * deploy key are generated here and pinned in every connection.
 */
export class Hosts extends pulumi.ComponentResource {
  readonly hosts: Host[] = [];
  /** Runs every release step as `deploy` (no sudo but its own slots); jumps through the bastion. */
  readonly deployKey: tls.PrivateKey;
  /** `admin` (sudo) on every host and the bastion: the bootstrap, and operators. */
  readonly adminKey: tls.PrivateKey;
  readonly bastion?: { instance: aws.ec2.Instance; address: pulumi.Output<string>; hostKey: pulumi.Output<string> };
  readonly role: aws.iam.Role;
  readonly policy: aws.iam.RolePolicy;
  private readonly args: HostsArgs;

  constructor(name: string, args: HostsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("greenlight:hosts:Hosts", name, {}, opts);
    this.args = args;
    const parent = { parent: this };

    this.deployKey = new tls.PrivateKey(`${name}-deploy-key`, { algorithm: "ED25519" }, parent);
    this.adminKey = new tls.PrivateKey(`${name}-admin-key`, { algorithm: "ED25519" }, parent);

    const partition = aws.getPartitionOutput({}, parent).partition;
    const account = aws.getCallerIdentityOutput({}, parent).accountId;
    this.role = new aws.iam.Role(
      `${name}-role`,
      {
        description: `greenlight hosts of ${args.parameterPath}`,
        assumeRolePolicy: JSON.stringify({
          Version: "2012-10-17",
          Statement: [{ Effect: "Allow", Principal: { Service: "ec2.amazonaws.com" }, Action: "sts:AssumeRole" }],
        }),
      },
      parent,
    );
    this.policy = new aws.iam.RolePolicy(
      `${name}-policy`,
      {
        role: this.role.id,
        policy: pulumi
          .all([partition, account, args.kmsKeyArn, args.artifactBucketArn, args.backupBucketArn, args.mediaBucketArn])
          .apply(([p, acct, kmsKeyArn, artifactBucketArn, backupBucketArn, mediaBucketArn]) =>
            JSON.stringify(
              hostPolicy({
                partition: p,
                account: acct,
                region: args.region,
                parameterPath: args.parameterPath,
                kmsKeyArn,
                artifactBucketArn,
                backupBucketArn,
                mediaBucketArn,
              }),
            ),
          ),
      },
      parent,
    );
    const profile = new aws.iam.InstanceProfile(`${name}-profile`, { role: this.role.name }, parent);

    const ami = args.amiId ?? debianAmi(this);
    // Without a pinned id, the id looked up when a host was created stays with it: a newer
    // Debian image never replaces hosts by surprise. Setting greenlight:amiId replaces them.
    const amiOpts: pulumi.CustomResourceOptions = args.amiId ? {} : { ignoreChanges: ["ami"] };

    const machine = (
      id: string,
      /** Which machine this is, as a tag (`h0`, `h1`, ..., `bastion`): what tools find it by. */
      role: string,
      instanceType: string,
      subnetId: pulumi.Input<string>,
      sg: pulumi.Input<string>,
      publicIp: boolean,
      withRole: boolean,
      more: pulumi.CustomResourceOptions,
      bastion = false,
    ) => {
      const hostKey = new tls.PrivateKey(`${id}-host-key`, { algorithm: "ED25519" }, parent);
      const instance = new aws.ec2.Instance(
        id,
        {
          ami,
          instanceType,
          subnetId,
          vpcSecurityGroupIds: [sg],
          associatePublicIpAddress: publicIp,
          iamInstanceProfile: withRole ? profile.name : undefined,
          metadataOptions: { httpTokens: "required", httpEndpoint: "enabled", httpPutResponseHopLimit: 1 },
          rootBlockDevice: { encrypted: true, volumeType: "gp3", volumeSize: 20, deleteOnTermination: true },
          userData: pulumi.secret(
            pulumi
              .all([
                hostKey.privateKeyOpenssh,
                hostKey.publicKeyOpenssh,
                this.adminKey.publicKeyOpenssh,
                this.deployKey.publicKeyOpenssh,
              ])
              .apply(([priv, pub, admin, deploy]) => userData(priv, pub, admin, bastion ? deploy : undefined)),
          ),
          userDataReplaceOnChange: false,
          tags: { Name: id, "greenlight:host": role },
        },
        { parent: this, ...amiOpts, ...more },
      );
      return {
        instance,
        address: publicIp ? instance.publicIp : instance.privateIp,
        hostKey: hostKey.publicKeyOpenssh.apply((k) => k.trim()),
      };
    };

    if (args.bastion) {
      this.bastion = machine(
        `${name}-bastion`,
        "bastion",
        args.bastion.instanceType,
        args.bastion.subnetId,
        args.bastion.securityGroupId,
        true,
        false,
        {},
        true,
      );
    }
    for (let i = 0; i < args.hostCount; i++) {
      const m = machine(
        `${name}-${i}`,
        `h${i}`,
        args.instanceType,
        args.subnetIds[i % args.subnetIds.length],
        args.securityGroupId,
        args.publicAddress,
        true,
        // One host after another: a replacement (new AMI) never takes all hosts at once.
        i > 0 ? { dependsOn: [this.hosts[i - 1].instance] } : {},
      );
      this.hosts.push({ index: i, ...m });
    }

    this.registerOutputs({
      hosts: this.hosts.map((h) => ({ id: h.instance.id, address: h.address })),
      bastion: this.bastion?.address,
    });
  }

  /**
   * How `@pulumi/command` reaches host `i` as `user`: pinned host key, the admin key for
   * ADMIN_USER and the deploy key for anyone else, the bastion as proxy for private hosts
   * (jumped with the deploy key, which may only forward there), and dial limits (fresh
   * instances refuse SSH for a while).
   */
  connection(i: number, user: string): pulumi.Output<command.types.input.remote.ConnectionArgs> {
    const h = this.hosts[i];
    const limits = { dialErrorLimit: this.args.dialErrorLimit, perDialTimeout: 15 };
    const b = this.bastion;
    return pulumi.secret(
      pulumi
        .all([
          h.address,
          h.hostKey,
          (user === ADMIN_USER ? this.adminKey : this.deployKey).privateKeyOpenssh,
          this.deployKey.privateKeyOpenssh,
          b?.address ?? "",
          b?.hostKey ?? "",
        ])
        .apply(([host, hostKey, privateKey, jumpKey, bastionHost, bastionKey]) => ({
          host,
          port: 22,
          user,
          privateKey,
          hostKey,
          ...limits,
          ...(b
            ? {
                proxy: {
                  host: bastionHost,
                  port: 22,
                  user: ADMIN_USER,
                  privateKey: jumpKey,
                  hostKey: bastionKey,
                  ...limits,
                },
              }
            : {}),
        })),
    );
  }
}
