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
  /** greenlight:dbAllowMajorUpgrade: let a new engineVersion major upgrade the existing database in place. */
  allowMajorUpgrade: boolean;
  /** prod: Pulumi refuses to delete or replace the instance, and a delete leaves it in AWS. */
  protect: boolean;
  /** The config keys behind dbName and engineVersion, for messages. Default greenlight:app, greenlight:dbEngineVersion. */
  keys?: { name: string; engineVersion: string; allowMajorUpgrade: string };
}

/**
 * Why a change to the database is refused. `existing` is what the engine reports for the
 * instance: for ignored inputs it keeps the values the database was made with.
 */
export function databaseChangeProblems(
  wanted: { dbName: string; engineVersion: string; allowMajorUpgrade: boolean },
  existing: { dbName: string; username: string; engineVersion: string },
  keys = {
    name: "greenlight:app",
    engineVersion: "greenlight:dbEngineVersion",
    allowMajorUpgrade: "greenlight:dbAllowMajorUpgrade",
  },
): string[] {
  const problems: string[] = [];
  if (existing.dbName !== wanted.dbName || existing.username !== wanted.dbName) {
    problems.push(
      `${keys.name} = ${JSON.stringify(wanted.dbName)} would replace the database, which exists as database ` +
        `${JSON.stringify(existing.dbName)} owned by ${JSON.stringify(existing.username)}: RDS renames neither, ` +
        `so a new, empty instance would take its place; allowed: ${JSON.stringify(existing.dbName)} (the existing name)`,
    );
  }
  const was = Number(existing.engineVersion.split(".")[0]);
  const now = Number(wanted.engineVersion.split(".")[0]);
  if (now < was) {
    problems.push(
      `${keys.engineVersion} = ${JSON.stringify(wanted.engineVersion)} is older than the database's PostgreSQL ${was}, ` +
        `which RDS cannot downgrade; allowed: ${JSON.stringify(String(was))}`,
    );
  } else if (now > was && !wanted.allowMajorUpgrade) {
    problems.push(
      `${keys.engineVersion} = ${JSON.stringify(wanted.engineVersion)} would upgrade the database from PostgreSQL ${was} ` +
        `(minutes of downtime, no way back but a restore); allowed: ${JSON.stringify(String(was))}, or set ` +
        `${keys.allowMajorUpgrade} true to upgrade on purpose (take a backup first)`,
    );
  }
  return problems;
}

/**
 * RDS PostgreSQL in the private subnets: never public, encrypted with the environment's key,
 * TLS required, automated backups, UTF8 / UTC / read committed.
 *
 * Once the database exists, nothing in the config may replace it or its data. RDS can change
 * neither `dbName` nor `username` in place, so both are `ignoreChanges`: the engine then keeps
 * the values the instance was made with and reports them as its outputs, which is how the
 * program knows what exists (for a new instance they are the configured ones). The same goes
 * for the engine's major version (and the parameter group's family) unless `allowMajorUpgrade`.
 * `name` carries the check: it fails, with the key, the value and what is allowed, when the
 * config differs from what exists, and the database's settings (DB_NAME, DATABASE_URL) are
 * built from it, so such a `pulumi up` (and its preview) fails instead of going on without it.
 */
export class Database extends pulumi.ComponentResource {
  readonly instance: aws.rds.Instance;
  readonly address: pulumi.Output<string>;
  readonly port: pulumi.Output<number>;
  readonly endpoint: pulumi.Output<string>;
  /** The database's name and owner, once checked against what exists (see above). */
  readonly name: pulumi.Output<string>;

  constructor(name: string, args: DatabaseArgs, opts?: pulumi.ComponentResourceOptions) {
    super("greenlight:database:Database", name, {}, opts);
    const parent = { parent: this };
    const keep: pulumi.CustomResourceOptions = { protect: args.protect, retainOnDelete: args.protect };
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
      // A new family is a new group, which an instance of the old major cannot use.
      { ...parent, ignoreChanges: args.allowMajorUpgrade ? [] : ["family"] },
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
        allowMajorVersionUpgrade: args.allowMajorUpgrade,
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
      {
        ...parent,
        ...keep,
        ignoreChanges: ["dbName", "username", ...(args.allowMajorUpgrade ? [] : ["engineVersion"])],
      },
    );
    const wanted = {
      dbName: args.dbName,
      engineVersion: args.engineVersion,
      allowMajorUpgrade: args.allowMajorUpgrade,
    };
    this.name = pulumi
      .all([this.instance.dbName, this.instance.username, this.instance.engineVersion])
      .apply(([dbName, username, engineVersion]) => {
        const problems = databaseChangeProblems(wanted, { dbName, username, engineVersion }, args.keys);
        if (problems.length) throw new DatabaseChangeRefused(problems);
        return dbName;
      });
    this.address = this.instance.address;
    this.port = this.instance.port;
    this.endpoint = this.instance.endpoint;
    this.registerOutputs({ address: this.address, port: this.port });
  }
}

export class DatabaseChangeRefused extends pulumi.RunError {
  constructor(readonly problems: string[]) {
    super(`greenlight configuration: ${problems.join("; ")}`);
    this.name = "DatabaseChangeRefused";
  }
}
