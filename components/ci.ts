import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { isGithubRepository } from "./catalog";
import { PROJECT, STACK_TAG } from "./constants";

/** GitHub's OIDC issuer (without https://) and the audience aws-actions/configure-aws-credentials asks for. */
export const GITHUB_OIDC_HOST = "token.actions.githubusercontent.com";
export const GITHUB_OIDC_AUDIENCE = "sts.amazonaws.com";
/** IAM path of the CI roles: outside the `role/<stack>-*` names the deploy role may manage. */
export const CI_ROLE_PATH = "/greenlight-ci/";

export interface CiAccessArgs {
  /** GitHub repository ("owner/name") whose workflows may assume the roles. */
  repository: string;
  /** The stack the roles deploy. The AWS resources they may manage are named after it. */
  stack: string;
  /**
   * Create the account's GitHub OIDC provider in this stack. IAM allows one provider per URL
   * and account, so exactly one stack per account sets this; the others use its well-known ARN.
   * The provider is kept when that stack is destroyed (the other stacks' roles trust it).
   */
  createOidcProvider: boolean;
  /** The provider's ARN, when it was made elsewhere under another ARN (default: the account's). */
  oidcProviderArn?: pulumi.Input<string>;
  /** Bucket of the Pulumi state (`cloud-url: s3://<bucket>`); without it the roles get no state access. */
  stateBucketArn?: pulumi.Input<string>;
  /** Folder of the state in that bucket (`s3://<bucket>/<prefix>`), "" for the bucket's root. */
  stateKeyPrefix?: string;
  /** /<project>/<stack>/ : the SSM path the deploy role may write. */
  parameterPath: string;
  /** The stack's region, and any other region it creates resources in (the backup and media replicas). */
  region: string;
  extraRegions?: string[];
  /** The environment's KMS key: the only key the deploy role may encrypt and decrypt with. */
  kmsKeyArn?: pulumi.Input<string>;
  /**
   * GitHub environment whose jobs may deploy (prod: "production", behind required reviewers).
   * Unset: jobs of pushes to `deployBranch` may deploy.
   */
  deployEnvironment?: string;
  /** Default "main". */
  deployBranch?: string;
  /** The Pulumi project, for the state's paths (default greenlight). */
  project?: string;
  /**
   * The site's DNS name, when the stack has one: the only names (and their ACM validation
   * records, `_*.<domain>`) the deploy role may change in Route 53. Without it, none.
   */
  domain?: string;
}

/**
 * Services whose resources carry the stack's tag (the AWS provider's defaultTags) and whose
 * IAM checks know `aws:ResourceTag` / `aws:RequestTag`. A stack's roles are denied every
 * action on such a resource tagged for another stack, and every request that would tag one so.
 */
export const TAGGED_SERVICES = ["ec2", "elasticloadbalancing", "rds", "elasticache", "acm", "kms", "sns", "cloudwatch"];

const ENVIRONMENT = /^[A-Za-z0-9_.-]{1,255}$/;
const BRANCH = /^[A-Za-z0-9._/-]{1,255}$/;

type Statement = Record<string, unknown>;

/** An IAM trust policy for GitHub's OIDC tokens with exactly this subject, for STS only. */
export function githubTrustPolicy(providerArn: pulumi.Input<string>, subject: string): pulumi.Output<string> {
  return pulumi.jsonStringify({
    Version: "2012-10-17",
    Statement: [
      {
        Effect: "Allow",
        Principal: { Federated: providerArn },
        Action: "sts:AssumeRoleWithWebIdentity",
        Condition: {
          // StringEquals, not StringLike: no wildcard ever widens who may assume the role.
          StringEquals: {
            [`${GITHUB_OIDC_HOST}:aud`]: GITHUB_OIDC_AUDIENCE,
            [`${GITHUB_OIDC_HOST}:sub`]: subject,
          },
        },
      },
    ],
  });
}

/**
 * GitHub Actions' way into AWS for one stack, without stored keys: the account's GitHub OIDC
 * provider (optional, see `createOidcProvider`) and two roles.
 *
 * - deploy: `pulumi up` of this stack. Trusted only for `repo:<repo>:environment:<env>` when
 *   `deployEnvironment` is set (prod: "production", whose reviewers gate every run), else for
 *   `repo:<repo>:ref:refs/heads/<branch>` (qa: pushes to main). GitHub puts the environment in
 *   the token's subject whenever a job names one, so these two never overlap.
 * - preview: `pulumi preview` on pull requests (`repo:<repo>:pull_request`). It reads the state
 *   and what the program looks up (zones, AMIs, hosted zones) and can change nothing, because
 *   any branch's code runs with it.
 *
 * How narrow the deploy role is, and why:
 * - IAM, the way to more privilege, is tight: roles and instance profiles named `<stack>-*`
 *   only, no managed-policy attachment, PassRole only to EC2 and S3, service-linked roles only
 *   for RDS and ELB, and an explicit Deny on the CI roles themselves and the OIDC provider (they
 *   live under the path /greenlight-ci/, outside `role/<stack>-*`), so a workflow can neither
 *   widen its own access nor trust another repository. Changing CI access is an operator's
 *   `pulumi up`. What remains: it may give a `<stack>-*` role any inline policy and pass it to
 *   an instance it starts, so the role is as strong as the account lets `<stack>-*` roles be;
 *   a permissions boundary on those roles (hosts.ts, buckets.ts) would close that.
 * - Names the program controls are pinned: S3 buckets, SNS topics and alarms `<stack>-*`, SSM
 *   parameters under the stack's path, the KMS alias, and the stack's own state objects
 *   (`.pulumi/stacks/<project>/<stack>.json*`, its history, backups and locks). Encrypt and
 *   decrypt only with the environment's key, when it is given. KMS keys are created and
 *   managed (key policies too) only with the stack's tag.
 * - Tags make the rest per stack. Every resource carries `greenlight-stack=<stack>` (the
 *   provider's defaultTags, required by config.ts). Two explicit Denies cover every action of
 *   EC2, ELB, RDS, ACM, KMS, SNS and CloudWatch: on a resource tagged for another stack, and in
 *   a request that tags one for another stack. So qa's roles cannot touch prod's hosts,
 *   database, listener, keys or alarms, even in the same account and region
 *   (test/unit/ciSimulation.test.ts proves it with @cloud-copilot/iam-simulate).
 * - Within that, EC2, ELB, RDS and ACM are allowed service-wide in the stack's regions: their
 *   create calls touch many resource types (subnets, ENIs, option groups, grants, the AMI), so
 *   an enumerated list would fail some `up` half-way on the next provider release. What this
 *   leaves: resources with no greenlight tag at all (another workload's, or an untaggable
 *   association) are not covered by the Denies; keep unrelated workloads in another account.
 * - Route 53: only the stack's own `domain` and its `_*.<domain>` validation records; a
 *   stack without a domain changes no DNS.
 */
export class CiAccess extends pulumi.ComponentResource {
  readonly oidcProviderArn: pulumi.Output<string>;
  readonly deployRole: aws.iam.Role;
  readonly previewRole: aws.iam.Role;
  readonly deploySubject: string;
  readonly previewSubject: string;

  constructor(name: string, args: CiAccessArgs, opts?: pulumi.ComponentResourceOptions) {
    // Checked before registering anything: a refused component leaves no half-made resource.
    const problems: string[] = [];
    if (!isGithubRepository(args.repository))
      problems.push(`repository ${JSON.stringify(args.repository)} is not owner/name`);
    if (!/^[a-z][a-z0-9-]{0,11}$/.test(args.stack))
      problems.push(`stack ${JSON.stringify(args.stack)} is not a stack name`);
    if (args.deployEnvironment !== undefined && !ENVIRONMENT.test(args.deployEnvironment))
      problems.push(`deployEnvironment ${JSON.stringify(args.deployEnvironment)} is not a GitHub environment name`);
    const branch = args.deployBranch ?? "main";
    if (!BRANCH.test(branch) || branch.includes("*"))
      problems.push(`deployBranch ${JSON.stringify(branch)} is not a branch`);
    if (args.createOidcProvider && args.oidcProviderArn !== undefined)
      problems.push("createOidcProvider and oidcProviderArn exclude each other");
    if (!/^\/[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*\/$/.test(args.parameterPath))
      problems.push(`parameterPath ${JSON.stringify(args.parameterPath)} is not /a/b/`);
    if (problems.length) throw new pulumi.RunError(`CiAccess ${name}: ${problems.join("; ")}`);

    super("greenlight:ci:CiAccess", name, {}, opts);
    const parent = { parent: this };
    const partition = aws.getPartitionOutput({}, parent).partition;
    const account = aws.getCallerIdentityOutput({}, parent).accountId;
    const iam = (what: string) => pulumi.interpolate`arn:${partition}:iam::${account}:${what}`;

    const providerArn = iam(`oidc-provider/${GITHUB_OIDC_HOST}`);
    if (args.createOidcProvider) {
      const provider = new aws.iam.OpenIdConnectProvider(
        `${name}-github`,
        // No thumbprint: IAM validates GitHub's certificate against its own trusted CAs.
        { url: `https://${GITHUB_OIDC_HOST}`, clientIdLists: [GITHUB_OIDC_AUDIENCE] },
        { ...parent, retainOnDelete: true },
      );
      this.oidcProviderArn = provider.arn;
    } else {
      this.oidcProviderArn = pulumi.output(args.oidcProviderArn ?? providerArn);
    }

    this.deploySubject = args.deployEnvironment
      ? `repo:${args.repository}:environment:${args.deployEnvironment}`
      : `repo:${args.repository}:ref:refs/heads/${branch}`;
    this.previewSubject = `repo:${args.repository}:pull_request`;

    const role = (kind: "deploy" | "preview", subject: string, hours: number) =>
      new aws.iam.Role(
        `${name}-${kind}`,
        {
          path: CI_ROLE_PATH,
          description: `GitHub Actions (${subject}): ${kind} of stack ${args.stack}`,
          assumeRolePolicy: githubTrustPolicy(this.oidcProviderArn, subject),
          maxSessionDuration: hours * 3600,
          tags: { stack: args.stack, repository: args.repository },
        },
        parent,
      );
    // A first prod `up` (Multi-AZ database, bootstrap) can outlast the one-hour default.
    this.deployRole = role("deploy", this.deploySubject, 2);
    this.previewRole = role("preview", this.previewSubject, 1);

    const regions = [args.region, ...(args.extraRegions ?? [])];
    const inRegions = { StringEquals: { "aws:RequestedRegion": regions } };
    const arnIn = (service: string, region: string, what: string) =>
      pulumi.interpolate`arn:${partition}:${service}:${region}:${account}:${what}`;
    const everyRegion = (service: string, what: string) => regions.map((r) => arnIn(service, r, what));
    const s = args.stack;
    const path = args.parameterPath.replace(/\/$/, "");
    const prefix = args.stateKeyPrefix ? `${args.stateKeyPrefix.replace(/^\/+|\/+$/g, "")}/` : "";
    const project = args.project ?? PROJECT;
    const tag = { ResourceTag: `aws:ResourceTag/${STACK_TAG}`, RequestTag: `aws:RequestTag/${STACK_TAG}` };
    const taggedForStack = (k: "ResourceTag" | "RequestTag") => ({ StringEquals: { [tag[k]]: s } });

    // The DIY backend keeps one stack's state in these objects (`.pulumi/stacks/<project>/
    // <stack>.json` and its .bak/.gz/.attrs, its history, backups and locks; locks may sit
    // under an organisation folder). A role reaches its own stack's, never another's.
    const stateObject = (what: string) => pulumi.interpolate`${args.stateBucketArn}/${prefix}.pulumi/${what}`;
    const ownState = (write: boolean) =>
      write
        ? [
            stateObject(`stacks/${project}/${s}.json*`),
            stateObject(`history/${project}/${s}/*`),
            stateObject(`backups/${project}/${s}/*`),
            stateObject(`locks/*${project}/${s}/*`),
          ]
        : [stateObject(`stacks/${project}/${s}.json*`), stateObject(`history/${project}/${s}/*`)];
    const state = (write: boolean): Statement[] =>
      args.stateBucketArn === undefined
        ? []
        : [
            {
              // Listing shows object names only (which stacks exist), never their content.
              Sid: "StateBucket",
              Effect: "Allow",
              Action: ["s3:ListBucket", "s3:GetBucketLocation"],
              Resource: args.stateBucketArn,
            },
            {
              Sid: "StateMeta",
              Effect: "Allow",
              Action: ["s3:GetObject"],
              Resource: stateObject("meta.yaml"),
            },
            {
              Sid: write ? "StateObjects" : "ReadStateObjects",
              Effect: "Allow",
              Action: write ? ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"] : ["s3:GetObject"],
              Resource: ownState(write),
            },
          ];

    // What the program looks up: AZs, the Debian AMI, the hosted zone.
    const lookups: Statement[] = [
      {
        Sid: "Lookups",
        Effect: "Allow",
        Action: ["ec2:DescribeAvailabilityZones", "ec2:DescribeImages"],
        Resource: "*",
        Condition: inRegions,
      },
      {
        Sid: "HostedZoneLookup",
        Effect: "Allow",
        Action: [
          "route53:ListHostedZones",
          "route53:ListHostedZonesByName",
          "route53:GetHostedZone",
          "route53:ListTagsForResource",
        ],
        Resource: "*",
      },
    ];

    const everyTagged = TAGGED_SERVICES.map((x) => `${x}:*`);
    const deploy: Statement[] = [
      ...state(true),
      ...lookups,
      {
        Sid: "NetworkAndHosts",
        Effect: "Allow",
        Action: ["ec2:*", "elasticloadbalancing:*", "rds:*", "elasticache:*", "acm:*"],
        Resource: "*",
        Condition: inRegions,
      },
      {
        // What makes the grants above per stack: another stack's resources carry its tag.
        Sid: "NeverAnotherStacksResources",
        Effect: "Deny",
        Action: everyTagged,
        Resource: "*",
        Condition: { StringNotEquals: { [tag.ResourceTag]: s }, Null: { [tag.ResourceTag]: "false" } },
      },
      {
        Sid: "NeverTagForAnotherStack",
        Effect: "Deny",
        Action: everyTagged,
        Resource: "*",
        Condition: { StringNotEquals: { [tag.RequestTag]: s }, Null: { [tag.RequestTag]: "false" } },
      },
      ...(args.domain
        ? [
            {
              Sid: "DnsRecordsOfTheDomain",
              Effect: "Allow",
              Action: ["route53:ChangeResourceRecordSets"],
              Resource: pulumi.interpolate`arn:${partition}:route53:::hostedzone/*`,
              Condition: {
                "ForAllValues:StringLike": {
                  "route53:ChangeResourceRecordSetsNormalizedRecordNames": [args.domain, `_*.${args.domain}`],
                },
              },
            },
            {
              Sid: "DnsReads",
              Effect: "Allow",
              Action: ["route53:GetChange", "route53:ListResourceRecordSets"],
              Resource: [
                pulumi.interpolate`arn:${partition}:route53:::hostedzone/*`,
                pulumi.interpolate`arn:${partition}:route53:::change/*`,
              ],
            },
          ]
        : []),
      {
        Sid: "StackBuckets",
        Effect: "Allow",
        Action: ["s3:*"],
        Resource: [
          pulumi.interpolate`arn:${partition}:s3:::${s}-*`,
          pulumi.interpolate`arn:${partition}:s3:::${s}-*/*`,
        ],
      },
      {
        Sid: "StackParameters",
        Effect: "Allow",
        Action: [
          "ssm:PutParameter",
          "ssm:GetParameter",
          "ssm:GetParameters",
          "ssm:DeleteParameter",
          "ssm:DeleteParameters",
          "ssm:AddTagsToResource",
          "ssm:RemoveTagsFromResource",
          "ssm:ListTagsForResource",
        ],
        Resource: everyRegion("ssm", `parameter${path}/*`),
      },
      {
        Sid: "DescribeParameters",
        Effect: "Allow",
        Action: ["ssm:DescribeParameters"],
        Resource: "*",
        Condition: inRegions,
      },
      {
        Sid: "CreateKeys",
        Effect: "Allow",
        Action: ["kms:CreateKey"],
        Resource: "*",
        Condition: { StringEquals: { ...inRegions.StringEquals, ...taggedForStack("RequestTag").StringEquals } },
      },
      { Sid: "ListAliases", Effect: "Allow", Action: ["kms:ListAliases"], Resource: "*", Condition: inRegions },
      {
        Sid: "ManageKeys",
        Effect: "Allow",
        Action: [
          "kms:DescribeKey",
          "kms:GetKeyPolicy",
          "kms:GetKeyRotationStatus",
          "kms:EnableKeyRotation",
          "kms:ListResourceTags",
          "kms:TagResource",
          "kms:UntagResource",
          "kms:UpdateKeyDescription",
          "kms:ScheduleKeyDeletion",
          // The environment key's policy admits CloudWatch (alarms to the encrypted topic).
          "kms:PutKeyPolicy",
        ],
        Resource: everyRegion("kms", "key/*"),
        Condition: taggedForStack("ResourceTag"),
      },
      {
        Sid: "StackKeyAlias",
        Effect: "Allow",
        Action: ["kms:CreateAlias", "kms:DeleteAlias", "kms:UpdateAlias"],
        Resource: everyRegion("kms", `alias${path}`),
      },
      {
        Sid: "StackKeyAliasTarget",
        Effect: "Allow",
        Action: ["kms:CreateAlias", "kms:DeleteAlias", "kms:UpdateAlias"],
        Resource: everyRegion("kms", "key/*"),
        Condition: taggedForStack("ResourceTag"),
      },
      {
        // SecureString parameters are encrypted and read back with the caller's KMS rights.
        Sid: "UseEnvironmentKey",
        Effect: "Allow",
        Action: ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"],
        Resource: args.kmsKeyArn ?? everyRegion("kms", "key/*"),
        ...(args.kmsKeyArn ? {} : { Condition: taggedForStack("ResourceTag") }),
      },
      {
        // RDS encrypts its storage through a grant the caller creates for it.
        Sid: "GrantEnvironmentKeyToAwsServices",
        Effect: "Allow",
        Action: ["kms:CreateGrant"],
        Resource: args.kmsKeyArn ?? everyRegion("kms", "key/*"),
        Condition: {
          Bool: { "kms:GrantIsForAWSResource": "true" },
          ...(args.kmsKeyArn ? {} : taggedForStack("ResourceTag")),
        },
      },
      {
        Sid: "StackAlarms",
        Effect: "Allow",
        Action: [
          "cloudwatch:PutMetricAlarm",
          "cloudwatch:DeleteAlarms",
          "cloudwatch:ListTagsForResource",
          "cloudwatch:TagResource",
          "cloudwatch:UntagResource",
        ],
        Resource: everyRegion("cloudwatch", `alarm:${s}-*`),
      },
      {
        Sid: "DescribeAlarms",
        Effect: "Allow",
        Action: ["cloudwatch:DescribeAlarms"],
        Resource: "*",
        Condition: inRegions,
      },
      { Sid: "StackTopics", Effect: "Allow", Action: ["sns:*"], Resource: everyRegion("sns", `${s}-*`) },
      {
        Sid: "StackRolesAndProfiles",
        Effect: "Allow",
        Action: [
          "iam:CreateRole",
          "iam:DeleteRole",
          "iam:GetRole",
          "iam:UpdateRole",
          "iam:UpdateRoleDescription",
          "iam:UpdateAssumeRolePolicy",
          "iam:TagRole",
          "iam:UntagRole",
          "iam:ListRolePolicies",
          "iam:ListAttachedRolePolicies",
          "iam:GetRolePolicy",
          "iam:PutRolePolicy",
          "iam:DeleteRolePolicy",
          "iam:ListInstanceProfilesForRole",
          "iam:CreateInstanceProfile",
          "iam:DeleteInstanceProfile",
          "iam:GetInstanceProfile",
          "iam:TagInstanceProfile",
          "iam:UntagInstanceProfile",
          "iam:AddRoleToInstanceProfile",
          "iam:RemoveRoleFromInstanceProfile",
        ],
        Resource: [iam(`role/${s}-*`), iam(`instance-profile/${s}-*`)],
      },
      {
        Sid: "PassStackRolesToEc2AndS3",
        Effect: "Allow",
        Action: ["iam:PassRole"],
        Resource: iam(`role/${s}-*`),
        Condition: { StringEquals: { "iam:PassedToService": ["ec2.amazonaws.com", "s3.amazonaws.com"] } },
      },
      {
        Sid: "ServiceLinkedRoles",
        Effect: "Allow",
        Action: ["iam:CreateServiceLinkedRole"],
        Resource: iam("role/aws-service-role/*"),
        Condition: {
          StringEquals: {
            "iam:AWSServiceName": [
              "rds.amazonaws.com",
              "elasticloadbalancing.amazonaws.com",
              "elasticache.amazonaws.com",
            ],
          },
        },
      },
      {
        Sid: "NeverTheCiAccessItself",
        Effect: "Deny",
        Action: ["iam:*"],
        Resource: [iam(`role${CI_ROLE_PATH}*`), iam(`oidc-provider/${GITHUB_OIDC_HOST}`)],
      },
    ];
    const preview: Statement[] = [...state(false), ...lookups];

    new aws.iam.RolePolicy(
      `${name}-deploy`,
      { role: this.deployRole.id, policy: pulumi.jsonStringify({ Version: "2012-10-17", Statement: deploy }) },
      parent,
    );
    new aws.iam.RolePolicy(
      `${name}-preview`,
      { role: this.previewRole.id, policy: pulumi.jsonStringify({ Version: "2012-10-17", Statement: preview }) },
      parent,
    );

    this.registerOutputs({
      oidcProviderArn: this.oidcProviderArn,
      deployRoleArn: this.deployRole.arn,
      previewRoleArn: this.previewRole.arn,
    });
  }
}
