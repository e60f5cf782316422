// What AWS really offers, for config.ts to refuse a type, class or region that does not exist
// (a typo fails `pulumi preview` at once rather than half-way through `pulumi up`).
// test/unit/catalog.test.ts checks the lists against @pulumi/aws's enums (generated from the
// AWS API) wherever those enums cover them.

/**
 * EC2 families greenlight allows (x86_64 only: artifacts carry x86_64 wheels) and their sizes.
 * Source: AWS, "Amazon EC2 instance type specifications", general purpose / compute optimized
 * / memory optimized (https://docs.aws.amazon.com/ec2/latest/instancetypes/gp.html, co.html,
 * mo.html). Bare-metal sizes are left out: they boot for minutes and cost tens of dollars an hour.
 */
const STD = ["large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge"];
export const EC2_FAMILIES: Record<string, readonly string[]> = {
  t3: ["nano", "micro", "small", "medium", "large", "xlarge", "2xlarge"],
  t3a: ["nano", "micro", "small", "medium", "large", "xlarge", "2xlarge"],
  m5: STD,
  m5a: STD,
  m6i: [...STD, "32xlarge"],
  m6a: [...STD, "32xlarge", "48xlarge"],
  m7i: [...STD, "48xlarge"],
  m7a: ["medium", ...STD, "32xlarge", "48xlarge"],
  c5: ["large", "xlarge", "2xlarge", "4xlarge", "9xlarge", "12xlarge", "18xlarge", "24xlarge"],
  c6i: [...STD, "32xlarge"],
  c6a: [...STD, "32xlarge", "48xlarge"],
  c7i: [...STD, "48xlarge"],
  r6i: [...STD, "32xlarge"],
  r7i: [...STD, "48xlarge"],
};
export const EC2_TYPES: ReadonlySet<string> = new Set(
  Object.entries(EC2_FAMILIES).flatMap(([f, sizes]) => sizes.map((s) => `${f}.${s}`)),
);

/**
 * RDS instance classes that run PostgreSQL 14 and 15, by family.
 * Source: AWS, "Supported DB engines for DB instance classes" in the RDS User Guide
 * (https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/Concepts.DBInstanceClass.Support.html).
 * Graviton (g) classes are fine here: the database is not where the wheels run.
 */
const GRAVITON = ["large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge"];
export const RDS_FAMILIES: Record<string, readonly string[]> = {
  "db.t3": ["micro", "small", "medium", "large", "xlarge", "2xlarge"],
  "db.t4g": ["micro", "small", "medium", "large", "xlarge", "2xlarge"],
  "db.m5": STD,
  "db.m6g": GRAVITON,
  "db.m6i": [...STD, "32xlarge"],
  "db.m7g": GRAVITON,
  "db.r5": STD,
  "db.r6g": GRAVITON,
  "db.r6i": [...STD, "32xlarge"],
  "db.r7g": GRAVITON,
};
export const RDS_CLASSES: ReadonlySet<string> = new Set(
  Object.entries(RDS_FAMILIES).flatMap(([f, sizes]) => sizes.map((s) => `${f}.${s}`)),
);

/**
 * ElastiCache node types that run Redis OSS 7, by family (in-transit and at-rest encryption
 * need no particular type). Source: AWS, "Supported node types" in the ElastiCache User Guide
 * (https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/CacheNodes.SupportedTypes.html).
 */
export const CACHE_FAMILIES: Record<string, readonly string[]> = {
  "cache.t3": ["micro", "small", "medium"],
  "cache.t4g": ["micro", "small", "medium"],
  "cache.m6g": ["large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge"],
  "cache.m7g": ["large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge"],
  "cache.r6g": ["large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge"],
  "cache.r7g": ["large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge"],
};
export const CACHE_NODE_TYPES: ReadonlySet<string> = new Set(
  Object.entries(CACHE_FAMILIES).flatMap(([f, sizes]) => sizes.map((s) => `${f}.${s}`)),
);

/**
 * The regions of the `aws` partition (the one greenlight's ARNs are written for: GovCloud,
 * China and the ISO partitions are not supported). Source: AWS, "AWS Regions" in the AWS
 * General Reference (https://docs.aws.amazon.com/general/latest/gr/rande.html#regional-endpoints),
 * as of 2026-11; @pulumi/aws's Region enum lists the same names.
 */
export const AWS_REGIONS: readonly string[] = [
  "af-south-1",
  "ap-east-1",
  "ap-east-2",
  "ap-northeast-1",
  "ap-northeast-2",
  "ap-northeast-3",
  "ap-south-1",
  "ap-south-2",
  "ap-southeast-1",
  "ap-southeast-2",
  "ap-southeast-3",
  "ap-southeast-4",
  "ap-southeast-5",
  "ap-southeast-6",
  "ap-southeast-7",
  "ca-central-1",
  "ca-west-1",
  "eu-central-1",
  "eu-central-2",
  "eu-north-1",
  "eu-south-1",
  "eu-south-2",
  "eu-west-1",
  "eu-west-2",
  "eu-west-3",
  "il-central-1",
  "me-central-1",
  "me-south-1",
  "mx-central-1",
  "sa-east-1",
  "us-east-1",
  "us-east-2",
  "us-west-1",
  "us-west-2",
];

/**
 * GitHub's rules for "owner/name". Owner (user or organisation): 1-39 letters, digits and
 * single hyphens, not starting or ending with one. Repository: 1-100 letters, digits, . _ -,
 * but not "." or "..". Source: GitHub's sign-up and new-repository forms (the username rule
 * is stated at https://github.com/signup; the repository name rule is enforced by
 * https://github.com/new).
 */
export const GITHUB_OWNER = /^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$/;
export const GITHUB_REPO_NAME = /^[A-Za-z0-9._-]{1,100}$/;
export function isGithubRepository(v: string): boolean {
  const parts = v.split("/");
  if (parts.length !== 2) return false;
  const [owner, name] = parts;
  return GITHUB_OWNER.test(owner) && GITHUB_REPO_NAME.test(name) && name !== "." && name !== "..";
}
