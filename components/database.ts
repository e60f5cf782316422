import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";

export interface DatabaseArgs {
  subnetIds: pulumi.Input<string>[];
  securityGroupId: pulumi.Input<string>;
  kmsKeyArn: pulumi.Input<string>;
  password: pulumi.Input<string>;
  /** Database and owner name (the app's name). */
  dbName: string;
  instanceClass: string;
  allocatedStorage: number;
  /** Major version, e.g. "15". */
  engineVersion: string;
  multiAz: boolean;
  backupRetentionDays: number;
  deletionProtection: boolean;
  finalSnapshot: boolean;
}

/**
 * RDS PostgreSQL in the private subnets: never public, encrypted with the environment's key,
 * TLS required, automated backups, UTF8 / UTC / read committed.
 */
export class Database extends pulumi.ComponentResource {
  readonly instance: aws.rds.Instance;
  readonly address: pulumi.Output<string>;
  readonly port: pulumi.Output<number>;
  readonly endpoint: pulumi.Output<string>;

  constructor(name: string, args: DatabaseArgs, opts?: pulumi.ComponentResourceOptions) {
    super("greenlight:database:Database", name, {}, opts);
    const parent = { parent: this };
    const subnets = new aws.rds.SubnetGroup(`${name}-subnets`, { subnetIds: args.subnetIds }, parent);
    const params = new aws.rds.ParameterGroup(
      `${name}-params`,
      {
        family: `postgres${args.engineVersion}`,
        description: "greenlight: UTF8, UTC, read committed, TLS only",
        parameters: [
          { name: "client_encoding", value: "UTF8" },
          { name: "timezone", value: "UTC" },
          { name: "default_transaction_isolation", value: "read committed" },
          { name: "rds.force_ssl", value: "1" },
          { name: "log_min_duration_statement", value: "1000" },
        ],
      },
      parent,
    );
    // A final snapshot needs a name no earlier destroy used.
    const snapshotSuffix = args.finalSnapshot
      ? new random.RandomId(`${name}-final-snapshot`, { byteLength: 4 }, parent).hex
      : undefined;

    this.instance = new aws.rds.Instance(
      `${name}-postgres`,
      {
        engine: "postgres",
        engineVersion: args.engineVersion,
        autoMinorVersionUpgrade: true,
        allowMajorVersionUpgrade: false,
        instanceClass: args.instanceClass,
        allocatedStorage: args.allocatedStorage,
        storageType: "gp3",
        storageEncrypted: true,
        kmsKeyId: args.kmsKeyArn,
        dbName: args.dbName,
        username: args.dbName,
        password: pulumi.secret(args.password),
        dbSubnetGroupName: subnets.name,
        vpcSecurityGroupIds: [args.securityGroupId],
        parameterGroupName: params.name,
        publiclyAccessible: false,
        multiAz: args.multiAz,
        backupRetentionPeriod: args.backupRetentionDays,
        backupWindow: "02:00-03:00",
        maintenanceWindow: "sun:03:30-sun:04:30",
        copyTagsToSnapshot: true,
        deletionProtection: args.deletionProtection,
        skipFinalSnapshot: !args.finalSnapshot,
        finalSnapshotIdentifier: snapshotSuffix ? pulumi.interpolate`${name}-final-${snapshotSuffix}` : undefined,
        iamDatabaseAuthenticationEnabled: false,
        performanceInsightsEnabled: false,
        enabledCloudwatchLogsExports: ["postgresql"],
        applyImmediately: !args.deletionProtection,
      },
      parent,
    );
    this.address = this.instance.address;
    this.port = this.instance.port;
    this.endpoint = this.instance.endpoint;
    this.registerOutputs({ address: this.address, port: this.port });
  }
}
