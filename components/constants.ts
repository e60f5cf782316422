// Names and formats shared by the program, the remote scripts' callers and the CLIs. Plain
// values only: the CLIs import this without loading the Pulumi SDK.
export const PROJECT = "greenlight";
export const COLOURS = ["blue", "green"] as const;
export type Colour = (typeof COLOURS)[number];
/** Each colour runs on every host as its own slot, behind nginx on its own port. */
export const SLOT_PORTS: Record<Colour, number> = { blue: 8001, green: 8002 };
/**
 * Tags by which tools find resources in `pulumi stack export`, never by their names: a target
 * group's colour, and a listener's role (`live` forwards to the live colour, `test` to the idle
 * one, `redirect` sends HTTP to HTTPS).
 */
export const COLOUR_TAG = "colour";
export const LISTENER_TAG = "greenlight:listener";
export const otherColour = (c: Colour): Colour => (c === "blue" ? "green" : "blue");

/**
 * A value both the config (components/config.ts, the CLIs) and the host scripts check: one
 * definition. `pattern` is anchored and written in the regex subset JavaScript and bash's
 * `[[ =~ ]]` (POSIX ERE) read alike: no \d, \w, lookaheads or lazy quantifiers. `noDotDot`
 * also refuses ".." anywhere (no path traversal; the scripts refuse it as `*..*`).
 * test/unit/values.test.ts holds scripts/remote/*.sh to these: the regex text of each
 * script's check and what lib.sh's check functions accept, run with bash.
 */
export interface ValueRule {
  pattern: RegExp;
  noDotDot: boolean;
  /** For messages: "a release id (letters, digits, . _ -)". */
  what: string;
}

export const VALUES = {
  app: { pattern: /^[a-z][a-z0-9]{1,15}$/, noDotDot: false, what: "an app name" },
  release: {
    pattern: /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/,
    noDotDot: true,
    what: "a release id: letters, digits, . _ - (no ..), starting with a letter or digit",
  },
  key: {
    pattern: /^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}$/,
    noDotDot: true,
    what: "an S3 key: letters, digits, . _ - / (no ..), starting with a letter or digit",
  },
  sha256: { pattern: /^[0-9a-f]{64}$/, noDotDot: false, what: "64 lowercase hex digits" },
  bucket: { pattern: /^[a-z0-9][a-z0-9.-]{1,62}$/, noDotDot: false, what: "a bucket name" },
  parameterPath: { pattern: /^\/[A-Za-z0-9_./-]+\/$/, noDotDot: false, what: "an SSM path ending in /" },
} as const satisfies Record<string, ValueRule>;

export function isValid(rule: ValueRule, v: string): boolean {
  return rule.pattern.test(v) && !(rule.noDotDot && v.includes(".."));
}
export const isReleaseId = (v: string): boolean => isValid(VALUES.release, v);
export const isArtifactKey = (v: string): boolean => isValid(VALUES.key, v);
export const isSha256 = (v: string): boolean => isValid(VALUES.sha256, v);

/** Where backups live in the backup bucket; a restore key must be one of them. */
export const BACKUP_PREFIX = "db/";

/**
 * The tag every resource of a stack carries (the AWS provider's `defaultTags`, set in the
 * stack file as aws:defaultTags and checked by config.ts). The CI roles' tag conditions
 * (components/ci.ts) key on it.
 */
export const STACK_TAG = "greenlight-stack";

/**
 * Characters Python's str.splitlines() splits on (the site reads .env with Python), plus NUL.
 * Any of them in a setting would add a line to .env (a second DATABASE_URL, say).
 */
export const LINE_SEPARATORS = ["\n", "\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\0"];

/** The first line separator in v, as U+XXXX, or undefined. */
export function lineSeparatorIn(v: string): string | undefined {
  for (const ch of v)
    if (LINE_SEPARATORS.includes(ch)) return `U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`;
  return undefined;
}

/**
 * A migration as Django names it, `<app label>.<migration name>` (notes.0002_note_attachment):
 * what package-site lists in an artifact's manifest and config's <colour>Migrations holds.
 */
export const MIGRATION_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,99}\.[A-Za-z0-9_]{1,200}$/;
export const isMigrationName = (v: string): boolean => MIGRATION_NAME.test(v);
