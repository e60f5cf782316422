import { createHash } from "crypto";
import * as pulumi from "@pulumi/pulumi";
import { Alarms } from "./alarms";
import { Buckets } from "./buckets";
import { Cache } from "./cache";
import { CiAccess } from "./ci";
import { COLOURS, EnvConfig, STACK_TAG, userSecretValue } from "./config";
import { Database } from "./database";
import { DEPLOY_USER, Hosts } from "./hosts";
import { LoadBalancer } from "./loadBalancer";
import { Network } from "./network";
import { Release } from "./release";
import { sshConfig } from "./ops";
import { AppSettings, Secrets } from "./secrets";
import { SecurityGroups } from "./securityGroups";

export interface EnvironmentArgs {
  config: EnvConfig;
}

export interface HostOutput {
  id: string;
  address: string;
  ssh: string;
}

/**
 * One whole environment (a stack): network, security groups, secrets, buckets, database,
 * hosts and the load balancer, wired as docs/architecture.md describes. `index.ts` builds one of these
 * and exports `outputs`.
 */
export class Environment extends pulumi.ComponentResource {
  readonly network: Network;
  readonly securityGroups: SecurityGroups;
  readonly secrets: Secrets;
  readonly buckets: Buckets;
  readonly database: Database;
  readonly cache?: Cache;
  readonly hosts: Hosts;
  readonly release: Release;
  readonly loadBalancer: LoadBalancer;
  readonly alarms: Alarms;
  readonly ci?: CiAccess;
  readonly outputs: Record<string, pulumi.Input<unknown>>;

  constructor(name: string, args: EnvironmentArgs, opts?: pulumi.ComponentResourceOptions) {
    super("greenlight:environment:Environment", name, {}, opts);
    const cfg = args.config;
    const parent = { parent: this };

    this.network = new Network(
      `${name}-net`,
      { cidr: cfg.vpcCidr, azCount: cfg.azCount, nat: cfg.privateHosts, region: cfg.region },
      parent,
    );
    this.securityGroups = new SecurityGroups(
      `${name}-sg`,
      {
        vpcId: this.network.vpcId,
        operatorCidrs: cfg.operatorCidrs,
        privateHosts: cfg.privateHosts,
        https: cfg.domain !== undefined,
        testListenerPort: cfg.testListener?.port,
        cache: cfg.redis !== undefined,
      },
      parent,
    );
    this.secrets = new Secrets(
      `${name}-secrets`,
      {
        parameterPath: cfg.parameterPath,
        userSecrets: cfg.userSecrets.map((s) => ({ name: s.name, value: userSecretValue(s) })),
        deletionProtection: cfg.deletionProtection,
      },
      parent,
    );
    const kmsKeyArn = this.secrets.kmsKey.arn;
    this.buckets = new Buckets(
      `${name}-buckets`,
      {
        kmsKeyArn,
        backupRetentionDays: cfg.backups.retentionDays,
        protect: cfg.deletionProtection,
        replicaRegion: cfg.backups.replicaRegion,
        // The replica region's provider is explicit, so it does not read aws:defaultTags.
        tags: { [STACK_TAG]: cfg.stack },
      },
      parent,
    );
    this.database = new Database(
      `${name}-db`,
      {
        subnetIds: this.network.privateSubnetIds,
        securityGroupId: this.securityGroups.db.id,
        kmsKeyArn,
        password: this.secrets.dbPassword,
        dbName: cfg.app,
        instanceClass: cfg.db.instanceClass,
        allocatedStorage: cfg.db.allocatedStorage,
        engineVersion: cfg.db.engineVersion,
        multiAz: cfg.db.multiAz,
        backupRetentionDays: cfg.db.backupRetentionDays,
        deletionProtection: cfg.deletionProtection,
        finalSnapshot: cfg.db.finalSnapshot,
        allowMajorUpgrade: cfg.db.allowMajorUpgrade,
        protect: cfg.deletionProtection,
      },
      parent,
    );
    const db = this.database;
    if (cfg.redis) {
      this.cache = new Cache(
        `${name}-cache`,
        {
          subnetIds: this.network.privateSubnetIds,
          securityGroupId: this.securityGroups.cache!.id,
          kmsKeyArn,
          nodeType: cfg.redis.nodeType,
          snapshotRetentionDays: cfg.deletionProtection ? 7 : 0,
        },
        parent,
      );
    }
    const settings = new AppSettings(
      `${name}-settings`,
      {
        parameterPath: cfg.parameterPath,
        kmsKeyArn,
        plain: {
          DB_HOST: db.address,
          DB_PORT: db.port.apply(String),
          // Checked against the database that exists (Database.name): a rename fails here.
          DB_NAME: db.name,
          DB_USER: db.name,
          // The app's plain settings (greenlight:settings; config.ts keeps them off greenlight's names).
          ...cfg.settings,
          // Django checks the Host header; without a domain the site answers on the ALB's name.
          // greenlight:settings.ALLOWED_HOSTS adds names of its own.
          ALLOWED_HOSTS: [cfg.domain ? cfg.domain.name : `.${cfg.region}.elb.amazonaws.com`, cfg.settings.ALLOWED_HOSTS]
            .filter(Boolean)
            .join(","),
          HTTPS: cfg.domain ? "on" : "off",
          HEALTH_PATH: cfg.healthPath,
          // The site's uploads, shared by every host (django-storages; the hosts' role).
          MEDIA_BUCKET: this.buckets.media.name,
          MEDIA_REGION: cfg.region,
        },
        secure: {
          DATABASE_URL: pulumi.interpolate`postgres://${db.name}:${this.secrets.dbPassword}@${db.address}:${db.port}/${db.name}?sslmode=require`,
          // The site's Celery broker: TLS with the cache's AUTH token (components/cache.ts).
          ...(this.cache ? { REDIS_URL: this.cache.url } : {}),
        },
      },
      parent,
    );

    this.hosts = new Hosts(
      `${name}-host`,
      {
        hostCount: cfg.hostCount,
        instanceType: cfg.instanceType,
        amiId: cfg.amiId,
        subnetIds: cfg.privateHosts ? this.network.privateSubnetIds : this.network.publicSubnetIds,
        securityGroupId: this.securityGroups.hosts.id,
        publicAddress: !cfg.privateHosts,
        bastion: this.securityGroups.bastion
          ? {
              subnetId: this.network.publicSubnetIds[0],
              securityGroupId: this.securityGroups.bastion.id,
              instanceType: cfg.bastionInstanceType,
            }
          : undefined,
        region: cfg.region,
        parameterPath: cfg.parameterPath,
        kmsKeyArn,
        artifactBucketArn: this.buckets.artifacts.arn,
        backupBucketArn: this.buckets.backups.arn,
        mediaBucketArn: this.buckets.media.arn,
        dialErrorLimit: 60,
      },
      parent,
    );

    this.release = new Release(
      `${name}-release`,
      {
        config: cfg,
        hosts: this.hosts,
        artifactBucket: this.buckets.artifacts.name,
        backupBucket: this.buckets.backups.name,
        mediaBucket: this.buckets.media.name,
        vpcCidr: cfg.vpcCidr,
        ready: [
          db.instance,
          ...(this.cache ? [this.cache.replicationGroup] : []),
          ...this.secrets.parameters,
          ...settings.parameters,
        ],
        settingsDigest: pulumi
          .all(
            [...this.secrets.parameters, ...settings.parameters].map((p) =>
              // A plain setting's value is its insecureValue (secrets.ts).
              pulumi.all([p.name, p.value, p.insecureValue]).apply(([n, v, iv]) => [n, v ?? iv] as const),
            ),
          )
          .apply((pairs) =>
            createHash("sha256")
              .update(
                pairs
                  .map(([n, v]) => `${n}=${v}`)
                  .sort()
                  .join("\n"),
              )
              .digest("hex"),
          ),
      },
      parent,
    );

    this.loadBalancer = new LoadBalancer(
      `${name}-alb`,
      {
        vpcId: this.network.vpcId,
        subnetIds: this.network.publicSubnetIds,
        securityGroupId: this.securityGroups.alb.id,
        instanceIds: this.hosts.hosts.map((h) => h.instance.id),
        live: cfg.live,
        healthPath: cfg.healthPath,
        domain: cfg.domain,
        testListenerPort: cfg.testListener?.port,
        deletionProtection: cfg.deletionProtection,
        cutoverAfter: this.release.cutoverAfter(cfg.live),
        testAfter: this.release.activations(cfg.idle),
      },
      parent,
    );
    // Maintenance mode (if this update opened a window) ends once the new colour is live.
    this.release.endMaintenance([this.loadBalancer.forward]);
    // The workers (and beat) move to the live release once it is live (docs/architecture.md).
    if (this.cache) this.release.switchWorkers([this.loadBalancer.forward]);

    this.alarms = new Alarms(
      `${name}-alarms`,
      {
        kmsKeyArn,
        email: cfg.alarmEmail,
        region: cfg.region,
        albArnSuffix: this.loadBalancer.alb.arnSuffix,
        targetGroupArnSuffixes: {
          blue: this.loadBalancer.targetGroups.blue.arnSuffix,
          green: this.loadBalancer.targetGroups.green.arnSuffix,
        },
        // Never `live`: a rollback must change no alarm.
        releasedColours: COLOURS.filter((c) => cfg.slots[c] !== undefined),
        dbInstanceIdentifier: db.instance.identifier,
        dbAllocatedStorageGib: cfg.db.allocatedStorage,
        cacheClusterId: this.cache?.clusterId,
      },
      parent,
    );
    if (cfg.ci) {
      this.ci = new CiAccess(
        `${name}-ci`,
        {
          repository: cfg.ci.repository,
          stack: cfg.stack,
          createOidcProvider: cfg.ci.createOidcProvider,
          stateBucketArn: `arn:aws:s3:::${cfg.ci.stateBucket}`,
          parameterPath: cfg.parameterPath,
          region: cfg.region,
          extraRegions: cfg.backups.replicaRegion ? [cfg.backups.replicaRegion] : [],
          kmsKeyArn,
          deployEnvironment: cfg.ci.deployEnvironment,
          project: cfg.project,
          domain: cfg.domain?.name,
        },
        parent,
      );
    }

    const bastion = this.hosts.bastion;
    const keyFile = `greenlight-${cfg.stack}.key`;
    const knownHostsFile = `greenlight-${cfg.stack}.known_hosts`;
    // Through a bastion, plain `ssh -J` would not offer the key to the jump host: the sshConfig
    // output (written to greenlight-<stack>.ssh_config, README) carries it for both hops.
    const sshLine = (i: number, address: string, bastionAddress?: string) =>
      bastionAddress
        ? `ssh -F greenlight-${cfg.stack}.ssh_config ${cfg.stack}-${i}`
        : `ssh -i ${keyFile} -o UserKnownHostsFile=${knownHostsFile} -o StrictHostKeyChecking=yes ${DEPLOY_USER}@${address}`;
    const hostsOut: pulumi.Output<HostOutput[]> = pulumi.all(
      this.hosts.hosts.map((h, i) =>
        pulumi
          .all([h.instance.id, h.address, bastion?.address ?? ""])
          .apply(([id, address, b]) => ({ id, address, ssh: sshLine(i, address, b || undefined) })),
      ),
    );
    const knownHosts = pulumi
      .all([
        ...this.hosts.hosts.map((h) => pulumi.interpolate`${h.address} ${h.hostKey}`),
        ...(bastion ? [pulumi.interpolate`${bastion.address} ${bastion.hostKey}`] : []),
      ])
      .apply((lines) => lines.join("\n") + "\n");
    // `ssh -F <file> <stack>-0`: ProxyJump through the bastion with the same key (README).
    const sshConfigText = pulumi
      .all([pulumi.all(this.hosts.hosts.map((h) => h.address)), bastion?.address ?? ""])
      .apply(([addresses, b]) => sshConfig({ stack: cfg.stack, hosts: addresses, bastion: b || undefined }));

    const releases = Object.fromEntries(COLOURS.map((c) => [c, cfg.slots[c] ?? null]));
    this.outputs = {
      url: this.loadBalancer.url,
      liveColour: cfg.live,
      idleColour: cfg.idle,
      liveRelease: cfg.slots[cfg.live]?.release ?? null,
      releases,
      hosts: hostsOut,
      bastion: bastion?.address,
      knownHosts,
      sshConfig: sshConfigText,
      adminPath: this.secrets.adminPath,
      sshPrivateKey: pulumi.secret(this.hosts.deployKey.privateKeyOpenssh),
      adminSshPrivateKey: pulumi.secret(this.hosts.adminKey.privateKeyOpenssh),
      dbEndpoint: db.endpoint,
      redisEndpoint: this.cache?.address,
      parameterPath: cfg.parameterPath,
      artifactBucket: this.buckets.artifacts.name,
      backupBucket: this.buckets.backups.name,
      mediaBucket: this.buckets.media.name,
      region: cfg.region,
      lastBackup: this.release.lastBackup,
      backups: this.release.backups,
      migrations: this.release.migrations,
      sshIngressSecurityGroupId: (this.securityGroups.bastion ?? this.securityGroups.hosts).id,
      alarmTopic: this.alarms.topic.arn,
      ciDeployRoleArn: this.ci?.deployRole.arn,
      ciPreviewRoleArn: this.ci?.previewRole.arn,
    };
    this.registerOutputs(this.outputs);
  }
}
