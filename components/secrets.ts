import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";

/**
 * Characters generated secrets may use besides letters and digits: RFC 3986's "unreserved"
 * set. None of them needs quoting in a URL (DATABASE_URL), a .env line or a shell word, so
 * none of `= ' " \ $ @ : / ? # %` can ever appear.
 */
export const SECRET_SPECIALS = "-_.~";

export interface SecretsArgs {
  /** /<project>/<stack>/ */
  parameterPath: string;
  /** User secrets from `pulumi config set --secret`, already named as in .env. */
  userSecrets: { name: string; value: pulumi.Input<string> }[];
  deletionProtection: boolean;
}

/**
 * The environment's KMS key, the generated secrets (DB password, Django SECRET_KEY, admin URL
 * path) and the user's secrets, each stored as an SSM SecureString under the environment's
 * path. Hosts read that path with their instance role; no secret travels any other way.
 */
export class Secrets extends pulumi.ComponentResource {
  readonly kmsKey: aws.kms.Key;
  readonly dbPassword: pulumi.Output<string>;
  /** The generated admin URL path (ADMIN_PATH): the admin answers at /<it>/. A secret. */
  readonly adminPath: pulumi.Output<string>;
  readonly parameters: aws.ssm.Parameter[];

  constructor(name: string, args: SecretsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("greenlight:secrets:Secrets", name, {}, opts);
    const parent = { parent: this };

    const partition = aws.getPartitionOutput({}, parent).partition;
    const account = aws.getCallerIdentityOutput({}, parent).accountId;
    this.kmsKey = new aws.kms.Key(
      `${name}-key`,
      {
        description: `greenlight ${args.parameterPath}: SSM parameters, buckets, database, alarm topic`,
        enableKeyRotation: true,
        deletionWindowInDays: args.deletionProtection ? 30 : 7,
        policy: pulumi.jsonStringify({
          Version: "2012-10-17",
          Statement: [
            {
              // The default key policy: IAM policies of the account decide (the hosts' role
              // may decrypt only through SSM and S3).
              Sid: "AccountIamPolicies",
              Effect: "Allow",
              Principal: { AWS: pulumi.interpolate`arn:${partition}:iam::${account}:root` },
              Action: "kms:*",
              Resource: "*",
            },
            {
              // CloudWatch publishes alarms to the encrypted SNS topic only with this.
              Sid: "CloudWatchAlarmsToEncryptedTopic",
              Effect: "Allow",
              Principal: { Service: "cloudwatch.amazonaws.com" },
              Action: ["kms:Decrypt", "kms:GenerateDataKey*"],
              Resource: "*",
              Condition: { StringEquals: { "aws:SourceAccount": account } },
            },
          ],
        }),
      },
      // Without the key nothing it encrypted (database, backups, secrets) can be read again.
      { ...parent, protect: args.deletionProtection, retainOnDelete: args.deletionProtection },
    );
    new aws.kms.Alias(
      `${name}-key-alias`,
      { name: `alias${args.parameterPath.replace(/\/$/, "")}`, targetKeyId: this.kmsKey.keyId },
      parent,
    );

    const password = (id: string, length: number) =>
      new random.RandomPassword(
        `${name}-${id}`,
        { length, special: true, overrideSpecial: SECRET_SPECIALS, minLower: 2, minUpper: 2, minNumeric: 2 },
        parent,
      );
    const dbPassword = password("db-password", 32);
    const secretKey = password("django-secret-key", 64);
    const adminPath = new random.RandomString(
      `${name}-admin-path`,
      { length: 20, special: false, upper: false },
      parent,
    );
    this.dbPassword = pulumi.secret(dbPassword.result);
    this.adminPath = pulumi.secret(adminPath.result);

    const put = (envName: string, value: pulumi.Input<string>) =>
      ssmParameter(this, name, args.parameterPath, envName, value, this.kmsKey.arn);
    this.parameters = [
      put("DB_PASSWORD", dbPassword.result),
      put("SECRET_KEY", secretKey.result),
      put("ADMIN_PATH", adminPath.result),
      ...args.userSecrets.map((s) => put(s.name, s.value)),
    ];

    this.registerOutputs({ parameterPath: args.parameterPath, kmsKeyArn: this.kmsKey.arn });
  }
}

/**
 * One setting under the environment's SSM path. With a key it is a SecureString encrypted
 * with the environment's key; without, a plain String whose value is `insecureValue`, so that
 * previews show it (the provider marks `value` secret whatever it holds).
 */
function ssmParameter(
  parent: pulumi.Resource,
  prefix: string,
  path: string,
  envName: string,
  value: pulumi.Input<string>,
  kmsKeyArn?: pulumi.Input<string>,
): aws.ssm.Parameter {
  return new aws.ssm.Parameter(
    `${prefix}-${envName.toLowerCase().replace(/_/g, "-")}`,
    {
      name: `${path}${envName}`,
      type: kmsKeyArn ? "SecureString" : "String",
      tier: "Standard",
      ...(kmsKeyArn ? { value: pulumi.secret(value) } : { insecureValue: value }),
      keyId: kmsKeyArn,
      description: `greenlight: ${envName} of ${path}`,
    },
    { parent },
  );
}

export interface AppSettingsArgs {
  parameterPath: string;
  kmsKeyArn: pulumi.Input<string>;
  /** Settings anyone with the environment's role may read (hosts, ports, names). */
  plain: Record<string, pulumi.Input<string>>;
  /** Settings derived from secrets (DATABASE_URL). */
  secure: Record<string, pulumi.Input<string>>;
}

/** The app's non-generated settings, published next to the secrets once the database exists. */
export class AppSettings extends pulumi.ComponentResource {
  readonly parameters: aws.ssm.Parameter[];

  constructor(name: string, args: AppSettingsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("greenlight:secrets:AppSettings", name, {}, opts);
    this.parameters = [
      ...Object.entries(args.plain).map(([k, v]) => ssmParameter(this, name, args.parameterPath, k, v)),
      ...Object.entries(args.secure).map(([k, v]) =>
        ssmParameter(this, name, args.parameterPath, k, v, args.kmsKeyArn),
      ),
    ];
    this.registerOutputs({ names: this.parameters.map((p) => p.name) });
  }
}
