// The one place greenlight's configuration is read and validated.
//
// `CONFIG_SCHEMA` declares every key of the `greenlight:` namespace: its type, default,
// description and what it allows. Pulumi.yaml's project-level `config:` block is generated
// from it (`npm run gen:config`, checked by a unit test), so the CLI, the docs and the
// program agree. `parseConfig` is pure (raw strings in, typed config or a ConfigError out)
// and unit-tested without Pulumi; `readConfig` feeds it from the Pulumi runtime.
//
// Pulumi.yaml can type config only as string, integer, boolean or array, so the two
// release slots are flat keys (`blueRelease`, `blueArtifact`, `blueSha256`, ...) rather
// than one `slots:` object: `pulumi config set greenRelease r42`
// then works as users expect, and every key is declared and typed.
import * as fs from "fs";
import * as ipaddr from "ipaddr.js";
import * as pulumi from "@pulumi/pulumi";

export { PROJECT, COLOURS, SLOT_PORTS, otherColour, VALUES, STACK_TAG } from "./constants";
export type { Colour } from "./constants";
import {
  PROJECT,
  COLOURS,
  Colour,
  otherColour,
  VALUES,
  isArtifactKey,
  isReleaseId,
  isSha256,
  isMigrationName,
  BACKUP_PREFIX,
  STACK_TAG,
  lineSeparatorIn,
} from "./constants";
import {
  AWS_REGIONS,
  CACHE_FAMILIES,
  CACHE_NODE_TYPES,
  EC2_FAMILIES,
  EC2_TYPES,
  RDS_CLASSES,
  RDS_FAMILIES,
  isGithubRepository,
} from "./catalog";

/** Generated secrets, named as they appear in SSM and in the hosts' shared/.env. */
export const GENERATED_SECRETS = ["DB_PASSWORD", "DATABASE_URL", "SECRET_KEY", "ADMIN_PATH", "REDIS_URL"] as const;
/** Plain (non-secret) settings the program publishes next to the secrets. */
export const PLAIN_SETTINGS = [
  "DB_HOST",
  "DB_PORT",
  "DB_NAME",
  "DB_USER",
  "ALLOWED_HOSTS",
  "HTTPS",
  "HEALTH_PATH",
  "MEDIA_BUCKET",
  "MEDIA_REGION",
] as const;

/**
 * The config key of the app's plain (non-secret) settings, a map of .env names to values:
 * `pulumi config set --path 'greenlight:settings.EMAIL_HOST' smtp.example.com`. Not in
 * CONFIG_SCHEMA: Pulumi.yaml cannot declare a map. They go to SSM as plain Strings (visible in
 * previews) and into .env like the secrets. ALLOWED_HOSTS is the one greenlight setting a
 * user may extend: its value is added to greenlight's (the load balancer's name or the domain).
 */
export const SETTINGS_KEY = "settings";
/** The greenlight setting whose value `settings` may add to (comma-separated host names). */
export const EXTENDABLE_SETTINGS = ["ALLOWED_HOSTS"] as const;
const SETTING_NAME = /^[A-Z][A-Z0-9_]{0,127}$/;
/**
 * A plain setting whose name looks secret is refused: it belongs in SSM as a SecureString.
 * The policy pack's SECRET_NAME (policy/policies.ts) refuses the same at preview; a unit test
 * holds the two to the same answers.
 */
export const SECRET_LOOKING_SETTING =
  /(^|_)(PASSWORD|PASSWD|SECRET|KEY|TOKEN|DSN|DATABASE_URL|REDIS_URL|CREDENTIALS?)(_|$)/;

export class ConfigError extends pulumi.RunError {
  constructor(readonly problems: string[]) {
    super(
      problems.length === 1
        ? `greenlight configuration: ${problems[0]}`
        : `greenlight configuration has ${problems.length} problems:\n  - ${problems.join("\n  - ")}`,
    );
    this.name = "ConfigError";
  }
}

type Kind = "string" | "integer" | "boolean" | "array";
type Json = string | number | boolean | string[];

interface KeySpec<T extends Json> {
  type: Kind;
  default: T;
  description: string;
  /** Human text for "allowed: ...". */
  allowed: string;
  /** Returns the typed value or a reason (string wrapped in {problem}). */
  parse(raw: string): T | { problem: string };
}

function str(
  description: string,
  def: string,
  allowed: string,
  ok: (v: string) => boolean = () => true,
): KeySpec<string> {
  return {
    type: "string",
    default: def,
    description,
    allowed,
    parse: (raw) => (ok(raw) ? raw : { problem: "not allowed" }),
  };
}

function optionalStr(description: string, allowed: string, ok: (v: string) => boolean): KeySpec<string> {
  return str(description, "", `"" (off) or ${allowed}`, (v) => v === "" || ok(v));
}

function int(description: string, def: number, min: number, max: number): KeySpec<number> {
  return {
    type: "integer",
    default: def,
    description,
    allowed: `an integer from ${min} to ${max}`,
    parse: (raw) => {
      if (!/^-?\d+$/.test(raw.trim())) return { problem: "not an integer" };
      const n = Number(raw.trim());
      return n >= min && n <= max ? n : { problem: "out of range" };
    },
  };
}

function bool(description: string, def: boolean): KeySpec<boolean> {
  return {
    type: "boolean",
    default: def,
    description,
    allowed: "true or false",
    parse: (raw) => (raw === "true" ? true : raw === "false" ? false : { problem: "not a boolean" }),
  };
}

function oneOf<T extends string>(description: string, def: T, values: readonly T[]): KeySpec<string> {
  return str(description, def, values.map((v) => `"${v}"`).join(" or "), (v) => values.includes(v as T));
}

/**
 * Parses a dotted-quad IPv4 CIDR (ipaddr.js); returns [network address as uint32, prefix] or
 * undefined. Host bits set (10.0.0.1/16) is refused: usually a typo.
 */
export function parseCidr(cidr: string): [number, number] | undefined {
  const [addr, bits, extra] = cidr.split("/");
  if (extra !== undefined || bits === undefined || !/^\d{1,2}$/.test(bits)) return undefined;
  if (!ipaddr.IPv4.isValidFourPartDecimal(addr)) return undefined;
  let parsed: [ipaddr.IPv4, number];
  try {
    parsed = ipaddr.IPv4.parseCIDR(cidr);
  } catch {
    return undefined;
  }
  const network = ipaddr.IPv4.networkAddressFromCIDR(cidr);
  if (network.toString() !== parsed[0].toString()) return undefined;
  const b = parsed[0].toByteArray();
  return [((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0, parsed[1]];
}

/** A slot's migrations (npm run release writes them from the artifact's manifest). */
function migrationList(colour: Colour): KeySpec<string[]> {
  return {
    type: "array",
    default: [],
    description:
      `Migrations the ${colour} release carries (npm run release writes them from its artifact's manifest): ` +
      `the ${colour}-check step takes them as a trigger, so pulumi preview names them.`,
    allowed: "a list of up to 5000 distinct migration names <app label>.<name>, e.g. [notes.0001_initial]",
    parse: (raw) => {
      let list: unknown;
      try {
        list = JSON.parse(raw);
      } catch {
        return { problem: "not a list" };
      }
      if (!Array.isArray(list) || list.some((x) => typeof x !== "string")) return { problem: "not a list of strings" };
      const names = list as string[];
      const bad = names.find((n) => !isMigrationName(n));
      if (bad !== undefined) return { problem: `${JSON.stringify(bad)} is not a migration name` };
      const twice = names.find((n, i) => names.indexOf(n) !== i);
      if (twice !== undefined) return { problem: `${JSON.stringify(twice)} is listed twice` };
      if (names.length > 5000) return { problem: `${names.length} names` };
      return names;
    },
  };
}

const PRIVATE_RANGES = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"].map((c) => ipaddr.IPv4.parseCIDR(c));
function isPrivateCidr(c: [number, number]): boolean {
  const addr = ipaddr.IPv4.parse(formatIpv4(c[0]));
  return PRIVATE_RANGES.some((range) => c[1] >= range[1] && addr.match(range));
}

/** A uint32 as dotted quad. */
export function formatIpv4(addr: number): string {
  return ipaddr.fromByteArray([addr >>> 24, (addr >>> 16) & 255, (addr >>> 8) & 255, addr & 255]).toString();
}

const FQDN = /^(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;
const isRegion = (v: string) => AWS_REGIONS.includes(v);
const REGION_ALLOWED = "an AWS region of the aws partition such as eu-west-1 (components/catalog.ts lists them)";
const INSTANCE_ALLOWED =
  `an existing x86_64 type such as t3.small (families ${Object.keys(EC2_FAMILIES).join(", ")}; ` +
  `sizes per family in components/catalog.ts): artifacts carry x86_64 wheels`;
const DB_CLASS_ALLOWED =
  `an RDS class that runs PostgreSQL, such as db.t4g.micro (families ${Object.keys(RDS_FAMILIES).join(", ")}; ` +
  `sizes in components/catalog.ts)`;

const CACHE_NODE_ALLOWED =
  `an ElastiCache node type that runs Redis 7, such as cache.t4g.micro (families ${Object.keys(CACHE_FAMILIES).join(", ")}; ` +
  `sizes in components/catalog.ts)`;
/** greenlight:redis: "" is the stack's default, on for these stacks and off for every other. */
export const REDIS_ON_BY_DEFAULT: readonly string[] = ["prod"];
export const REDIS_VALUES = ["", "on", "off"] as const;

const cidrList: KeySpec<string[]> = {
  type: "array",
  default: [],
  description:
    "IPv4 CIDRs allowed to reach SSH (hosts, or the bastion when privateHosts) and the test listener. " +
    "Your office or VPN, and the machine that runs `pulumi up`.",
  allowed: "a list of IPv4 CIDRs of /16 or narrower, e.g. [203.0.113.10/32]; 0.0.0.0/0 is refused",
  parse: (raw) => {
    let list: unknown;
    try {
      list = JSON.parse(raw);
    } catch {
      return { problem: "not a list" };
    }
    if (!Array.isArray(list) || list.some((x) => typeof x !== "string")) return { problem: "not a list of strings" };
    const seen: [string, [number, number]][] = [];
    for (const c of list as string[]) {
      const parsed = parseCidr(c);
      if (!parsed) return { problem: `"${c}" is not an IPv4 CIDR` };
      if (parsed[1] === 0) return { problem: `"${c}" opens SSH to the whole internet` };
      if (parsed[1] < 16) return { problem: `"${c}" is broader than /16` };
      // A duplicate (or a range inside another) is a copy-paste slip: the same rule twice,
      // or one that does nothing. Security groups refuse duplicate rules half-way through up.
      for (const [other, o] of seen) {
        if (other === c) return { problem: `"${c}" is listed twice` };
        const within = (a: [number, number], b: [number, number]) =>
          a[1] >= b[1] && (a[0] & ((0xffffffff << (32 - b[1])) >>> 0)) >>> 0 === b[0];
        if (within(parsed, o) || within(o, parsed))
          return { problem: `"${c}" and "${other}" overlap (one contains the other)` };
      }
      seen.push([c, parsed]);
    }
    return list as string[];
  },
};

export const CONFIG_SCHEMA = {
  app: str(
    "Name of the site on the hosts: /srv/<app>, supervisor programs <app>-blue and <app>-green.",
    "site",
    "2-16 lowercase letters and digits, starting with a letter",
    (v) => /^[a-z][a-z0-9]{1,15}$/.test(v),
  ),
  hostCount: int("Number of EC2 hosts; each runs both colours.", 1, 1, 4),
  instanceType: str("EC2 instance type of the hosts.", "t3.small", INSTANCE_ALLOWED, (v) => EC2_TYPES.has(v)),
  amiId: optionalStr(
    'AMI of the hosts. "" looks up the newest Debian 12 image once and keeps it for existing hosts; ' +
      "set an id to replace hosts deliberately.",
    "an AMI id such as ami-0123456789abcdef0",
    (v) => /^ami-[0-9a-f]{8,17}$/.test(v),
  ),
  azCount: int("Availability zones to spread subnets (and hosts) over.", 2, 2, 3),
  vpcCidr: str(
    "IPv4 range of the VPC; subnets are carved from it.",
    "10.40.0.0/16",
    "a private IPv4 CIDR (10/8, 172.16/12, 192.168/16) from /16 to /20",
    (v) => {
      const c = parseCidr(v);
      return !!c && c[1] >= 16 && c[1] <= 20 && isPrivateCidr(c);
    },
  ),
  privateHosts: bool("Put hosts in private subnets behind a NAT gateway, reached over SSH through a bastion.", false),
  operatorCidrs: cidrList,
  bastionInstanceType: str("EC2 instance type of the bastion (privateHosts only).", "t3.nano", INSTANCE_ALLOWED, (v) =>
    EC2_TYPES.has(v),
  ),
  domain: optionalStr(
    "Public name of the site. Set it to get an ACM certificate, HTTPS and a Route 53 alias.",
    "a lowercase DNS name such as www.example.com",
    (v) => FQDN.test(v),
  ),
  hostedZone: optionalStr(
    "Route 53 public hosted zone that holds `domain` (required with domain).",
    "a lowercase DNS zone name such as example.com",
    (v) => FQDN.test(v),
  ),
  testListener: bool(
    "Open an ALB listener to the idle colour for smoke tests, reachable from operatorCidrs only.",
    false,
  ),
  testListenerPort: int("Port of the test listener.", 8443, 1024, 65535),
  healthPath: str(
    "Path the ALB and the release health gate request on each slot; it must answer the release id.",
    "/healthz",
    "an absolute path of letters, digits, / . _ -",
    (v) => /^\/[A-Za-z0-9/._-]{0,100}$/.test(v),
  ),
  workers: int("Gunicorn workers per slot.", 2, 1, 16),
  redis: str(
    "Redis (ElastiCache, private, encrypted) for the site's Celery worker and beat, as REDIS_URL in .env; " +
      `"" is the stack's default: on for ${REDIS_ON_BY_DEFAULT.join(", ")}, off for every other stack.`,
    "",
    `"" (the stack's default), "on" or "off"`,
    (v) => (REDIS_VALUES as readonly string[]).includes(v),
  ),
  redisNodeType: str("ElastiCache node type of Redis (redis on only).", "cache.t4g.micro", CACHE_NODE_ALLOWED, (v) =>
    CACHE_NODE_TYPES.has(v),
  ),
  dbInstanceClass: str("RDS instance class.", "db.t4g.micro", DB_CLASS_ALLOWED, (v) => RDS_CLASSES.has(v)),
  dbAllocatedStorage: int("RDS storage in GiB (gp3).", 20, 20, 1000),
  dbEngineVersion: oneOf(
    "PostgreSQL major version. Debian 12's pg_dump is 15, and pg_dump must be at least the server's major version.",
    "15",
    ["14", "15"],
  ),
  dbAllowMajorUpgrade: bool(
    "Let a new dbEngineVersion upgrade the existing database in place (downtime; no way back but a restore). Without it a major change is refused.",
    false,
  ),
  dbMultiAz: bool("Run RDS Multi-AZ (a standby in a second zone).", false),
  dbBackupRetentionDays: int("Days RDS keeps automated backups.", 1, 1, 35),
  dbFinalSnapshot: bool("Take a final RDS snapshot when the database is destroyed.", false),
  deletionProtection: bool(
    "Protect the database and load balancer from deletion and keep non-empty buckets on destroy.",
    false,
  ),
  backupRetentionDays: int("Days the backup bucket keeps each pre-migration backup.", 30, 1, 3650),
  backupReplicaRegion: optionalStr(
    "Replicate the backup and media buckets to this region (deletes are not replicated).",
    "an AWS region (aws partition) other than aws:region, such as eu-central-1",
    isRegion,
  ),
  keepReleases: int("Releases kept on each host by cleanup (a slot's release is always kept).", 5, 2, 50),
  commandTimeoutMinutes: int("Time limit of each remote release step.", 20, 2, 120),
  live: oneOf("Colour the load balancer sends traffic to. Flip it to roll back.", "blue", COLOURS),
  blueRelease: optionalStr("Release id in the blue slot.", VALUES.release.what, isReleaseId),
  blueArtifact: optionalStr("Artifact key (artifact bucket) of the blue release.", VALUES.key.what, isArtifactKey),
  blueSha256: optionalStr("sha256 of the blue artifact.", VALUES.sha256.what, isSha256),
  blueMigrations: migrationList("blue"),
  greenRelease: optionalStr("Release id in the green slot.", VALUES.release.what, isReleaseId),
  greenArtifact: optionalStr("Artifact key (artifact bucket) of the green release.", VALUES.key.what, isArtifactKey),
  greenSha256: optionalStr("sha256 of the green artifact.", VALUES.sha256.what, isSha256),
  greenMigrations: migrationList("green"),
  alarmEmail: optionalStr(
    "Email address that receives the CloudWatch alarms (AWS first mails it a confirmation link).",
    "an email address such as ops@example.com",
    (v) => /^[^@\s]+@[^@\s]+\.[a-z]{2,}$/i.test(v),
  ),
  ciRepository: optionalStr(
    "GitHub repository whose Actions may preview and deploy this stack through OIDC roles (docs/ci.md).",
    "a GitHub owner/name, e.g. acme/site (owner: 1-39 letters, digits, single inner hyphens; name: 1-100 letters, digits, . _ -, not . or ..)",
    isGithubRepository,
  ),
  ciDeployEnvironment: optionalStr(
    'GitHub environment whose jobs may deploy this stack (prod: "production", with required reviewers); "" lets jobs of pushes to main deploy.',
    "a GitHub environment name of letters, digits, _ . -",
    (v) => /^[A-Za-z0-9_.-]{1,100}$/.test(v),
  ),
  ciCreateOidcProvider: bool(
    "Create the AWS account's GitHub OIDC provider in this stack: exactly one stack per account (kept on destroy).",
    false,
  ),
  ciStateBucket: optionalStr(
    "S3 bucket holding the Pulumi state (cloud-url s3://<bucket>): the CI roles may read it, the deploy role write it.",
    "an S3 bucket name (3-63 lowercase letters, digits, . -) outside the names the CI roles manage (<stack>-*)",
    (v) => /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(v) && !v.includes("..") && !/^\d+\.\d+\.\d+\.\d+$/.test(v),
  ),
  restoreBackup: optionalStr(
    "Backup key to restore into the database (runs once per restore request, the key with restoreId; takes a safety backup first).",
    `a backup key under ${BACKUP_PREFIX} (as lastBackup and backups name them); ${VALUES.key.what}`,
    (v) => isArtifactKey(v) && v.startsWith(BACKUP_PREFIX),
  ),
  restoreId: optionalStr(
    "Names a restore request with restoreBackup: a new id restores the same key again; a retried pulumi up of the same request never restores twice.",
    `${VALUES.release.what.replace(/^a release id/, "an id")}, with restoreBackup set`,
    isReleaseId,
  ),
  allowUnsafeMigrations: optionalStr(
    "Release id whose unsafe migrations (not compatible with the serving release: docs/architecture.md, " +
      '"Migration safety") may run anyway, on purpose; every other release with one is refused before the backup.',
    "the release id of blueRelease or greenRelease",
    isReleaseId,
  ),
} as const;

export type ConfigKey = keyof typeof CONFIG_SCHEMA;
type Parsed = { [K in ConfigKey]: (typeof CONFIG_SCHEMA)[K]["default"] };

export interface SlotRelease {
  release: string;
  artifact: string;
  sha256: string;
  /** The migrations the release carries (its manifest's list, through <colour>Migrations). */
  migrations: string[];
}

export interface UserSecret {
  /** Config key, e.g. sentryDsn. */
  key: string;
  /** Name in SSM and in shared/.env, e.g. SENTRY_DSN. */
  name: string;
}

export interface EnvConfig {
  project: string;
  stack: string;
  region: string;
  app: string;
  hostCount: number;
  instanceType: string;
  amiId?: string;
  azCount: number;
  vpcCidr: string;
  privateHosts: boolean;
  operatorCidrs: string[];
  bastionInstanceType: string;
  domain?: { name: string; zone: string };
  testListener?: { port: number };
  healthPath: string;
  workers: number;
  /** Redis (ElastiCache) for the site's worker and beat; undefined when off. */
  redis?: { nodeType: string };
  db: {
    instanceClass: string;
    allocatedStorage: number;
    engineVersion: string;
    multiAz: boolean;
    backupRetentionDays: number;
    finalSnapshot: boolean;
    allowMajorUpgrade: boolean;
  };
  deletionProtection: boolean;
  backups: { retentionDays: number; replicaRegion?: string };
  keepReleases: number;
  commandTimeoutMinutes: number;
  live: Colour;
  idle: Colour;
  slots: Record<Colour, SlotRelease | undefined>;
  restoreBackup?: string;
  /** Names the restore request with restoreBackup (a new id restores the same key again). */
  restoreId?: string;
  /** The one release whose unsafe migrations may run (allowUnsafeMigrations). */
  allowUnsafeMigrations?: string;
  alarmEmail?: string;
  ci?: { repository: string; deployEnvironment?: string; createOidcProvider: boolean; stateBucket: string };
  userSecrets: UserSecret[];
  /** The app's plain settings (greenlight:settings), by .env name, sorted; ALLOWED_HOSTS: additions. */
  settings: Record<string, string>;
  /** SSM path of this environment, with a trailing slash: /greenlight/qa/ */
  parameterPath: string;
}

/** sentryDsn -> SENTRY_DSN */
export function envName(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase();
}

function levenshtein(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++)
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length][b.length];
}

function suggest(key: string): string {
  const best = Object.keys(CONFIG_SCHEMA)
    .map((k) => [k, levenshtein(key.toLowerCase(), k.toLowerCase())] as const)
    .sort((x, y) => x[1] - y[1])[0];
  return best && best[1] <= 3 ? ` Did you mean greenlight:${best[0]}?` : "";
}

/**
 * Validates raw config. `raw` maps full keys ("greenlight:hostCount", "aws:region") to the
 * strings Pulumi hands the program (arrays as JSON). `secretKeys` lists the full keys set with
 * `--secret`: their values never appear in an error, and unknown secret keys become user secrets.
 */
export function parseConfig(
  raw: Record<string, string>,
  secretKeys: ReadonlySet<string>,
  ctx: { stack: string; project?: string; otherStacks?: readonly string[] },
): EnvConfig {
  const project = ctx.project ?? PROJECT;
  const problems: string[] = [];
  const show = (full: string, v: string) => (secretKeys.has(full) ? "[secret]" : JSON.stringify(v));
  const values: Partial<Record<ConfigKey, Json>> = {};

  if (!/^[a-z][a-z0-9-]{0,11}$/.test(ctx.stack)) {
    problems.push(
      `stack name ${JSON.stringify(ctx.stack)} is not allowed; allowed: up to 12 lowercase letters, digits and - (AWS caps load balancer names at 32 characters)`,
    );
  }

  // Names are `<stack>-*` and the CI roles' grants follow them: with stacks "qa" and "qa-eu",
  // qa's roles would also cover every qa-eu-* bucket, role and alarm.
  for (const other of ctx.otherStacks ?? []) {
    if (other !== ctx.stack && (other.startsWith(`${ctx.stack}-`) || ctx.stack.startsWith(`${other}-`))) {
      problems.push(
        `stack name ${JSON.stringify(ctx.stack)} is not allowed next to stack ${JSON.stringify(other)}: one is the other ` +
          `plus "-", so one stack's <stack>-* names (and its CI roles' grants) would cover the other's; allowed: ` +
          `a name that is not another stack's name followed by "-"`,
      );
    }
  }

  for (const [k, spec] of Object.entries(CONFIG_SCHEMA) as [ConfigKey, KeySpec<Json>][]) {
    const full = `${project}:${k}`;
    const v = raw[full];
    if (v === undefined) {
      values[k] = spec.default;
      continue;
    }
    const sep = lineSeparatorIn(v);
    if (sep) {
      problems.push(
        `${full} = ${show(full, v)} is not allowed (contains the line separator ${sep}); allowed: ${spec.allowed}`,
      );
      continue;
    }
    const r = spec.parse(v);
    if (typeof r === "object" && r !== null && !Array.isArray(r)) {
      problems.push(`${full} = ${show(full, v)} is not allowed (${r.problem}); allowed: ${spec.allowed}`);
    } else {
      values[k] = r;
    }
  }

  const region = raw["aws:region"];
  if (region === undefined) {
    problems.push(`aws:region is not set; allowed: an AWS region such as eu-west-1 (pulumi config set aws:region ...)`);
  } else if (!isRegion(region)) {
    problems.push(`aws:region = ${JSON.stringify(region)} is not allowed; allowed: ${REGION_ALLOWED}`);
  }

  // Every resource carries the stack's tag: the CI roles' tag conditions (components/ci.ts)
  // confine a stack's roles to the resources that carry it.
  const wantTags = `{"tags":{"${STACK_TAG}":"${ctx.stack}"}}`;
  const howTags = `pulumi config set --path 'aws:defaultTags.tags.${STACK_TAG}' ${ctx.stack} --stack ${ctx.stack}`;
  const rawTags = raw["aws:defaultTags"];
  let tags: unknown;
  try {
    tags = rawTags === undefined ? undefined : (JSON.parse(rawTags) as { tags?: unknown }).tags;
  } catch {
    tags = undefined;
  }
  const tagValue = tags && typeof tags === "object" ? (tags as Record<string, unknown>)[STACK_TAG] : undefined;
  if (tagValue !== ctx.stack) {
    problems.push(
      `aws:defaultTags = ${rawTags === undefined ? "(not set)" : JSON.stringify(rawTags)} is not allowed ` +
        `(it must tag every resource ${STACK_TAG}=${ctx.stack}); allowed: tags that include ${wantTags} (${howTags})`,
    );
  }

  const userSecrets: UserSecret[] = [];
  const reserved = new Set<string>([...GENERATED_SECRETS, ...PLAIN_SETTINGS]);
  const byName = new Map<string, string>();
  for (const full of Object.keys(raw).sort()) {
    if (!full.startsWith(`${project}:`)) continue;
    const key = full.slice(project.length + 1);
    if (key in CONFIG_SCHEMA || key === SETTINGS_KEY) continue;
    if (!secretKeys.has(full)) {
      problems.push(
        `${full} is not a greenlight setting.${suggest(key)} ` +
          `Set app secrets with --secret (they go to SSM); allowed keys: ${Object.keys(CONFIG_SCHEMA).join(", ")}`,
      );
      continue;
    }
    const name = envName(key);
    if (!/^[a-z][a-zA-Z0-9]{1,62}$/.test(key)) {
      problems.push(`${full} (secret) is not allowed as an app secret name; allowed: camelCase letters and digits`);
    } else if (reserved.has(name)) {
      problems.push(`${full} (secret) would overwrite the generated ${name}; allowed: any other name`);
    } else if (byName.has(name)) {
      problems.push(
        `${full} (secret) and ${project}:${byName.get(name)} (secret) both become the setting ${name}; ` +
          `allowed: one key per setting (pulumi config rm one of them)`,
      );
    } else if (raw[full] === "") {
      problems.push(`${full} = [secret] is not allowed (it is empty); allowed: a non-empty single-line value`);
    } else if (lineSeparatorIn(raw[full])) {
      problems.push(
        `${full} = [secret] is not allowed (contains the line separator ${lineSeparatorIn(raw[full])}); ` +
          `allowed: a non-empty single-line value (no \\n \\r \\v \\f \\x1c-\\x1e \\x85 U+2028 U+2029 NUL)`,
      );
    } else {
      byName.set(name, key);
      userSecrets.push({ key, name });
    }
  }

  const settings = parseSettings(raw, secretKeys, project, reserved, byName, problems);

  if (problems.length) throw new ConfigError(problems);
  const p = values as Parsed;

  // Cross-key rules.
  const slots = {} as Record<Colour, SlotRelease | undefined>;
  for (const c of COLOURS) {
    const release = p[`${c}Release`];
    const artifact = p[`${c}Artifact`];
    const sha256 = p[`${c}Sha256`];
    const migrations = p[`${c}Migrations`];
    if (release === "") {
      if (migrations.length > 0) {
        problems.push(
          `${project}:${c}Migrations is set but ${c}Release is empty; allowed: [] when the slot holds no release ` +
            `(npm run release writes them together)`,
        );
      }
      if (artifact !== "" || sha256 !== "") {
        problems.push(
          `${project}:${c}Release is empty but ${c}Artifact/${c}Sha256 are set; allowed: set all three or none ` +
            `(npm run release writes them together)`,
        );
      }
      slots[c] = undefined;
    } else if (artifact === "" || sha256 === "") {
      problems.push(
        `${project}:${c}Release = ${JSON.stringify(release)} needs ${c}Artifact and ${c}Sha256; ` +
          `allowed: all three set (npm run release writes them together)`,
      );
    } else {
      slots[c] = { release, artifact, sha256, migrations };
    }
  }
  if (slots.blue && slots.green && slots.blue.release === slots.green.release) {
    const [b, g] = [slots.blue, slots.green];
    if (b.sha256 !== g.sha256 || b.artifact !== g.artifact) {
      problems.push(
        `${project}:greenRelease = ${JSON.stringify(g.release)} is also blueRelease, with another artifact ` +
          `(blue ${b.artifact} sha256 ${b.sha256.slice(0, 12)}..., green ${g.artifact} sha256 ${g.sha256.slice(0, 12)}...); ` +
          `allowed: a new id for a new artifact (hosts keep one directory per release id)`,
      );
    }
  }
  const live = p.live as Colour;
  const idle = otherColour(live);
  if (!slots[live] && slots[idle]) {
    problems.push(
      `${project}:live = "${live}" names an empty slot (${project}:${live}Release is not set); ` +
        `allowed: "${idle}", the slot that holds release ${JSON.stringify(slots[idle]!.release)}`,
    );
  }
  if ((p.domain === "") !== (p.hostedZone === "")) {
    problems.push(
      p.domain === ""
        ? `${project}:hostedZone = ${JSON.stringify(p.hostedZone)} is set without ${project}:domain; allowed: both or neither`
        : `${project}:domain = ${JSON.stringify(p.domain)} needs ${project}:hostedZone; allowed: the Route 53 zone that holds it`,
    );
  } else if (p.domain !== "" && p.domain !== p.hostedZone && !p.domain.endsWith(`.${p.hostedZone}`)) {
    problems.push(
      `${project}:domain = ${JSON.stringify(p.domain)} is not in ${project}:hostedZone = ${JSON.stringify(p.hostedZone)}; ` +
        `allowed: a name that ends with .${p.hostedZone}`,
    );
  }
  if (p.backupReplicaRegion !== "" && p.backupReplicaRegion === region) {
    problems.push(
      `${project}:backupReplicaRegion = ${JSON.stringify(p.backupReplicaRegion)} equals aws:region; allowed: another region`,
    );
  }
  // The Pulumi CLI hands the program every default Pulumi.yaml declares as if it were set: only
  // a value other than the default is one the user set.
  if (!p.testListener && p.testListenerPort !== CONFIG_SCHEMA.testListenerPort.default) {
    problems.push(
      `${project}:testListenerPort = ${p.testListenerPort} is set but ${project}:testListener is false, so no listener uses it; ` +
        `allowed: set testListener true, or remove testListenerPort`,
    );
  }
  if (!p.privateHosts && p.bastionInstanceType !== CONFIG_SCHEMA.bastionInstanceType.default) {
    problems.push(
      `${project}:bastionInstanceType = ${JSON.stringify(p.bastionInstanceType)} is set but ${project}:privateHosts is false, so there is no bastion; ` +
        `allowed: set privateHosts true, or remove bastionInstanceType`,
    );
  }
  const redisOn = p.redis === "" ? REDIS_ON_BY_DEFAULT.includes(ctx.stack) : p.redis === "on";
  if (!redisOn && p.redisNodeType !== CONFIG_SCHEMA.redisNodeType.default) {
    problems.push(
      `${project}:redisNodeType = ${JSON.stringify(p.redisNodeType)} is set but Redis is off in stack ${ctx.stack} ` +
        `(${project}:redis = ${JSON.stringify(p.redis)}), so no cache uses it; allowed: set redis "on", or remove redisNodeType`,
    );
  }
  if (p.operatorCidrs.length === 0) {
    problems.push(
      `${project}:operatorCidrs = [] leaves no way to reach the hosts over SSH, which every release needs; ` +
        `allowed: at least one CIDR, e.g. the public address of the machine that runs pulumi up (x.y.z.w/32)`,
    );
  }
  if (p.ciRepository === "") {
    for (const k of ["ciDeployEnvironment", "ciStateBucket"] as const) {
      if (p[k] !== "")
        problems.push(
          `${project}:${k} = ${JSON.stringify(p[k])} is set without ${project}:ciRepository; allowed: both or neither`,
        );
    }
    if (p.ciCreateOidcProvider) problems.push(`${project}:ciCreateOidcProvider = true needs ${project}:ciRepository`);
  } else if (p.ciStateBucket === "") {
    problems.push(
      `${project}:ciRepository = ${JSON.stringify(p.ciRepository)} needs ${project}:ciStateBucket; allowed: the S3 bucket of the Pulumi state`,
    );
  } else {
    // The deploy role of a stack may do anything to buckets named <stack>-* (its artifact and
    // backup buckets): a state bucket under such a name would hand that stack every stack's state.
    const grabbedBy = [ctx.stack, ...(ctx.otherStacks ?? [])].find((st) => p.ciStateBucket.startsWith(`${st}-`));
    if (grabbedBy) {
      problems.push(
        `${project}:ciStateBucket = ${JSON.stringify(p.ciStateBucket)} falls under the ${grabbedBy} deploy role's grant on ` +
          `buckets ${grabbedBy}-* (s3:*), which would let it rewrite every stack's state; ` +
          `allowed: a bucket whose name does not start with a stack name and "-", e.g. acme-pulumi-state`,
      );
    }
  }
  if (p.allowUnsafeMigrations !== "" && !COLOURS.some((c) => slots[c]?.release === p.allowUnsafeMigrations)) {
    const held = COLOURS.filter((c) => slots[c]).map((c) => `${c}Release = ${JSON.stringify(slots[c]!.release)}`);
    problems.push(
      `${project}:allowUnsafeMigrations = ${JSON.stringify(p.allowUnsafeMigrations)} names no release in a slot; ` +
        `allowed: "" or the release id of ${held.length ? held.join(" or ") : "blueRelease or greenRelease"} ` +
        `(it lets that one release's unsafe migrations through)`,
    );
  }
  if (p.restoreId !== "" && p.restoreBackup === "") {
    problems.push(
      `${project}:restoreId = ${JSON.stringify(p.restoreId)} names a restore, but restoreBackup is not set; ` +
        `allowed: "" or an id with restoreBackup (the backup key to restore)`,
    );
  }
  if (problems.length) throw new ConfigError(problems);

  return {
    project,
    stack: ctx.stack,
    region: region!,
    app: p.app,
    hostCount: p.hostCount,
    instanceType: p.instanceType,
    amiId: p.amiId || undefined,
    azCount: p.azCount,
    vpcCidr: p.vpcCidr,
    privateHosts: p.privateHosts,
    operatorCidrs: p.operatorCidrs,
    bastionInstanceType: p.bastionInstanceType,
    domain: p.domain ? { name: p.domain, zone: p.hostedZone } : undefined,
    testListener: p.testListener ? { port: p.testListenerPort } : undefined,
    healthPath: p.healthPath,
    workers: p.workers,
    redis: redisOn ? { nodeType: p.redisNodeType } : undefined,
    db: {
      instanceClass: p.dbInstanceClass,
      allocatedStorage: p.dbAllocatedStorage,
      engineVersion: p.dbEngineVersion,
      multiAz: p.dbMultiAz,
      backupRetentionDays: p.dbBackupRetentionDays,
      finalSnapshot: p.dbFinalSnapshot,
      allowMajorUpgrade: p.dbAllowMajorUpgrade,
    },
    deletionProtection: p.deletionProtection,
    backups: { retentionDays: p.backupRetentionDays, replicaRegion: p.backupReplicaRegion || undefined },
    keepReleases: p.keepReleases,
    commandTimeoutMinutes: p.commandTimeoutMinutes,
    live,
    idle,
    slots,
    restoreBackup: p.restoreBackup || undefined,
    restoreId: (p.restoreBackup && p.restoreId) || undefined,
    allowUnsafeMigrations: p.allowUnsafeMigrations || undefined,
    alarmEmail: p.alarmEmail || undefined,
    ci: p.ciRepository
      ? {
          repository: p.ciRepository,
          deployEnvironment: p.ciDeployEnvironment || undefined,
          createOidcProvider: p.ciCreateOidcProvider,
          stateBucket: p.ciStateBucket,
        }
      : undefined,
    userSecrets,
    settings,
    parameterPath: `/${project}/${ctx.stack}/`,
  };
}

/**
 * greenlight:settings: a map of names (UPPER_SNAKE, as in .env) to one-line, non-empty values
 * (strings, numbers or booleans, written as text). Refused: a name greenlight sets itself (but
 * ALLOWED_HOSTS, which it extends) or that an app secret has, a value with a line separator,
 * and the whole map set with --secret (secrets are keys of their own).
 */
function parseSettings(
  raw: Record<string, string>,
  secretKeys: ReadonlySet<string>,
  project: string,
  reserved: ReadonlySet<string>,
  secretNames: ReadonlyMap<string, string>,
  problems: string[],
): Record<string, string> {
  const full = `${project}:${SETTINGS_KEY}`;
  const text = raw[full];
  const out: Record<string, string> = {};
  if (text === undefined) return out;
  const allowed =
    "a map of UPPER_SNAKE names to non-empty one-line values, e.g. " +
    `pulumi config set --path '${full}.EMAIL_HOST' smtp.example.com`;
  if (secretKeys.has(full)) {
    problems.push(
      `${full} is set as a secret; allowed: plain settings only (they show in previews). ` +
        `Set each secret as its own key with --secret (e.g. ${project}:emailHostPassword)`,
    );
    return out;
  }
  let map: unknown;
  try {
    map = JSON.parse(text);
  } catch {
    map = undefined;
  }
  if (!map || typeof map !== "object" || Array.isArray(map)) {
    problems.push(`${full} = ${JSON.stringify(text)} is not allowed (not a map); allowed: ${allowed}`);
    return out;
  }
  for (const [name, v] of Object.entries(map as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1))) {
    const at = `${full}.${name}`;
    if (!SETTING_NAME.test(name)) {
      problems.push(
        `${at} is not allowed as a setting name; allowed: UPPER_SNAKE letters, digits and _ (as in .env), e.g. EMAIL_HOST`,
      );
      continue;
    }
    if (reserved.has(name) && !(EXTENDABLE_SETTINGS as readonly string[]).includes(name)) {
      problems.push(
        `${at} is set by greenlight itself (${name}); allowed: any other name (greenlight's own: ${[...reserved].join(", ")}; ` +
          `ALLOWED_HOSTS adds to greenlight's)`,
      );
      continue;
    }
    if (SECRET_LOOKING_SETTING.test(name)) {
      const key = name.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
      problems.push(
        `${at} looks like a secret (${name}), and plain settings show in previews and the state; allowed: ` +
          `a secret of its own: pulumi config rm --path '${at}' and pulumi config set --secret ${key} ...`,
      );
      continue;
    }
    if (secretNames.has(name)) {
      problems.push(
        `${at} is also the app secret ${project}:${secretNames.get(name)} (both become ${name} in .env); allowed: one of them`,
      );
      continue;
    }
    if (typeof v !== "string" && typeof v !== "number" && typeof v !== "boolean") {
      problems.push(`${at} = ${JSON.stringify(v)} is not allowed (not a single value); allowed: ${allowed}`);
      continue;
    }
    const value = String(v);
    const sep = lineSeparatorIn(value);
    if (value === "" || sep) {
      problems.push(
        `${at} = ${JSON.stringify(value)} is not allowed (${sep ? `contains the line separator ${sep}` : "it is empty"}); ` +
          `allowed: a non-empty single-line value (pulumi config rm --path '${at}' to drop it)`,
      );
      continue;
    }
    if (name === "ALLOWED_HOSTS" && !/^[A-Za-z0-9.*:[\]-]+(,[A-Za-z0-9.*:[\]-]+)*$/.test(value)) {
      problems.push(
        `${at} = ${JSON.stringify(value)} is not allowed; allowed: host names separated by commas (no spaces), e.g. .example.org,admin.example.com`,
      );
      continue;
    }
    out[name] = value;
  }
  return out;
}

/** Reads the stack's config from the Pulumi runtime and validates it. */
export function readConfig(): EnvConfig {
  const raw = pulumi.runtime.allConfig();
  // isConfigSecret is exported by the SDK's runtime (the SDK's own Config uses it) but marked
  // @internal, so it is missing from the typings.
  const isSecret = (pulumi.runtime as unknown as { isConfigSecret?: (k: string) => boolean }).isConfigSecret;
  if (!isSecret) throw new pulumi.RunError("this @pulumi/pulumi has no runtime.isConfigSecret; use 3.x");
  const secretKeys = new Set(Object.keys(raw).filter((k) => isSecret(k)));
  return parseConfig(raw, secretKeys, {
    stack: pulumi.getStack(),
    project: pulumi.getProject(),
    otherStacks: siblingStacks(process.cwd()),
  });
}

/** The other stacks of this project, from the Pulumi.<stack>.yaml files next to Pulumi.yaml. */
export function siblingStacks(dir: string): string[] {
  try {
    return fs
      .readdirSync(dir)
      .map((f) => /^Pulumi\.([a-z][a-z0-9-]{0,11})\.yaml$/.exec(f)?.[1])
      .filter((x): x is string => x !== undefined && x !== pulumi.getStack());
  } catch {
    return [];
  }
}

/** A user secret's value, as a Pulumi secret. */
export function userSecretValue(s: UserSecret): pulumi.Output<string> {
  return new pulumi.Config().requireSecret(s.key);
}

/** The project-level `config:` block of Pulumi.yaml, generated from CONFIG_SCHEMA. */
export function projectConfigBlock(): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const [k, spec] of Object.entries(CONFIG_SCHEMA) as [string, KeySpec<Json>][]) {
    out[k] = {
      type: spec.type,
      description: `${spec.description} Allowed: ${spec.allowed}.`,
      ...(spec.type === "array" ? { items: { type: "string" } } : {}),
      default: spec.default,
    };
  }
  return out;
}
