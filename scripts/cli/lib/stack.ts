// Reading and writing a stack's release slots in Pulumi.<stack>.yaml. Pure (text in, text
// out) so the release and rollback commands are unit-tested without Pulumi or AWS. The `yaml`
// package edits the document in place, so the user's comments and key order survive.
import * as fs from "fs";
import * as path from "path";
import { isMap, parseDocument } from "yaml";
import {
  COLOURS,
  COLOUR_TAG,
  Colour,
  LISTENER_TAG,
  VALUES,
  isArtifactKey,
  isReleaseId,
  isSha256,
  otherColour,
} from "../../../components/constants";

export type { Colour };

/** An error for the user: printed as one line, no stack trace. */
export class CliError extends Error {}

export interface Slot {
  release: string;
  artifact: string;
  sha256: string;
  /** The migrations the release carries (its artifact's manifest): greenlight:<colour>Migrations. */
  migrations?: string[];
}

export interface StackState {
  live: Colour;
  slots: Record<Colour, Slot | undefined>;
}

export function stackFile(stack: string, dir: string): string {
  if (!/^[a-z][a-z0-9-]{0,11}$/.test(stack)) throw new CliError(`"${stack}" is not a stack name`);
  const file = path.join(dir, `Pulumi.${stack}.yaml`);
  if (!fs.existsSync(file)) {
    const known = fs
      .readdirSync(dir)
      .map((f) => /^Pulumi\.([a-z][a-z0-9-]*)\.yaml$/.exec(f)?.[1])
      .filter(Boolean);
    throw new CliError(
      `unknown stack "${stack}": there is no ${path.basename(file)} (known stacks: ${known.join(", ") || "none"})`,
    );
  }
  return file;
}

function config(text: string) {
  const doc = parseDocument(text);
  if (doc.errors.length) throw new CliError(`the stack file does not parse: ${doc.errors[0].message}`);
  return doc;
}

const key = (k: string) => `greenlight:${k}`;

export function readState(text: string): StackState {
  const doc = config(text);
  const get = (k: string) => {
    const v = doc.getIn(["config", key(k)]);
    return v === undefined || v === null ? "" : String(v);
  };
  const live = (get("live") || "blue") as Colour;
  if (!COLOURS.includes(live)) throw new CliError(`greenlight:live is "${live}"; allowed: blue or green`);
  const slots = {} as Record<Colour, Slot | undefined>;
  for (const c of COLOURS) {
    const release = get(`${c}Release`);
    const listed = doc.getIn(["config", key(`${c}Migrations`)]) as { toJSON?: () => unknown } | undefined;
    const migrations = listed?.toJSON?.();
    slots[c] = release
      ? {
          release,
          artifact: get(`${c}Artifact`),
          sha256: get(`${c}Sha256`),
          ...(Array.isArray(migrations) ? { migrations: migrations.map(String) } : {}),
        }
      : undefined;
  }
  return { live, slots };
}

/** Sets greenlight:<key> values, keeping everything else (comments included) as it was. */
export function writeConfig(text: string, values: Record<string, string | string[]>): string {
  const doc = config(text);
  if (!isMap(doc.get("config"))) doc.set("config", doc.createNode({}));
  for (const [k, v] of Object.entries(values)) {
    // A list as a flow sequence on one line: [notes.0001_initial, notes.0002_note_attachment].
    const node = Array.isArray(v) ? doc.createNode(v, { flow: true }) : v;
    doc.setIn(["config", key(k)], node);
  }
  return doc.toString();
}

export interface ReleasePlan {
  slot: Colour;
  previousLive?: { colour: Colour; release: string };
  replaces?: string;
  /** The replaced release never went live (its `pulumi up` failed before the cutover). */
  neverLive?: string;
  /** The new release's migrations that the release it follows (previousLive) does not carry. */
  newMigrations?: string[];
  values: Record<string, string | string[]>;
}

/** A resource of the stack's state (`pulumi stack export`), as far as we read it. */
export interface DeployedResource {
  type: string;
  urn?: string;
  outputs?: Record<string, unknown>;
}

/**
 * The colour the load balancer really forwards to, read from the stack's state: the listener
 * that forwards (not the redirect, not the test listener) and the colour tag of its target
 * group. After a failed `pulumi up` this is still the old colour, whatever the config says.
 */
export function servingColour(resources: DeployedResource[]): Colour | undefined {
  const groups = new Map<string, Colour>();
  for (const r of resources) {
    if (r.type !== "aws:lb/targetGroup:TargetGroup") continue;
    const colour = (r.outputs?.tags as Record<string, string> | undefined)?.[COLOUR_TAG] as Colour;
    if (COLOURS.includes(colour) && typeof r.outputs?.arn === "string") groups.set(r.outputs.arn, colour);
  }
  for (const r of resources) {
    if (r.type !== "aws:lb/listener:Listener") continue;
    if ((r.outputs?.tags as Record<string, string> | undefined)?.[LISTENER_TAG] !== "live") continue;
    const actions = (r.outputs?.defaultActions ?? []) as { type?: string; targetGroupArn?: string }[];
    const forward = actions.find((a) => a.type === "forward");
    if (forward?.targetGroupArn && groups.has(forward.targetGroupArn)) return groups.get(forward.targetGroupArn);
  }
  return undefined;
}

/** The migrations `next` carries that `prev` does not (undefined when either list is unknown). */
function newSince(next: Slot, prev: Slot): string[] | undefined {
  if (!next.migrations || !prev.migrations) return undefined;
  const had = new Set(prev.migrations);
  return next.migrations.filter((m) => !had.has(m));
}

/**
 * Where a new release goes: into the idle slot, which becomes live. The very first release
 * goes into the live slot (both are empty). Refuses to re-release what is already live.
 *
 * `serving` is the colour the load balancer really forwards to (servingColour). When it is
 * not the configured live colour, the last release never went live (its `pulumi up`
 * failed): the new release replaces it in that slot, and the serving slot is left alone.
 */
export function planRelease(state: StackState, next: Slot, serving?: Colour, unreadable?: string): ReleasePlan {
  if (!isReleaseId(next.release)) {
    throw new CliError(`release id "${next.release}" is not allowed; allowed: ${VALUES.release.what} (up to 64)`);
  }
  if (!isSha256(next.sha256)) throw new CliError(`"${next.sha256}" is not a sha256`);
  if (!isArtifactKey(next.artifact)) throw new CliError(`"${next.artifact}" is not an artifact key`);
  // With both slots full, only the state tells which one the load balancer serves: after a
  // failed `pulumi up` the config's idle slot may be the serving one, and writing there would
  // restart the live slot. Guessing is not allowed.
  if (unreadable !== undefined && state.slots.blue && state.slots.green) {
    throw new CliError(
      `cannot tell which colour the load balancer serves (${unreadable}), and both slots hold releases ` +
        `(blue ${state.slots.blue.release}, green ${state.slots.green.release}): the new release could go into the ` +
        `serving slot. Make \`pulumi stack export --stack <stack>\` work (Pulumi CLI, backend login, passphrase) and run again`,
    );
  }
  if (serving && serving !== state.live && state.slots[state.live] && state.slots[serving]) {
    const pending = state.slots[state.live]!;
    return {
      slot: state.live,
      previousLive: { colour: serving, release: state.slots[serving]!.release },
      replaces: pending.release,
      neverLive: pending.release,
      values: {
        [`${state.live}Release`]: next.release,
        [`${state.live}Artifact`]: next.artifact,
        [`${state.live}Sha256`]: next.sha256,
        [`${state.live}Migrations`]: next.migrations ?? [],
        live: state.live,
      },
      newMigrations: newSince(next, state.slots[serving]!),
    };
  }
  const live = state.slots[state.live];
  if (live && live.release === next.release) {
    if (live.sha256 !== next.sha256) {
      throw new CliError(`release id "${next.release}" is live with another artifact; release ids are immutable`);
    }
    throw new CliError(`release "${next.release}" is already live in ${state.live}`);
  }
  const slot = live ? otherColour(state.live) : state.live;
  const replaced = state.slots[slot];
  return {
    slot,
    previousLive: live ? { colour: state.live, release: live.release } : undefined,
    replaces: replaced?.release,
    values: {
      [`${slot}Release`]: next.release,
      [`${slot}Artifact`]: next.artifact,
      [`${slot}Sha256`]: next.sha256,
      [`${slot}Migrations`]: next.migrations ?? [],
      live: slot,
    },
    newMigrations: live ? newSince(next, live) : next.migrations,
  };
}

/**
 * The release the hosts of the stack's state really run in `colour`: every `<colour>-activate-<i>`
 * step in the state ran for it (a step whose `pulumi up` failed is not in the state, or still
 * carries the previous release's triggers). Undefined if none ran, or the hosts disagree.
 */
export function activatedRelease(resources: DeployedResource[], colour: Colour): Omit<Slot, "artifact"> | undefined {
  const steps = resources.filter(
    (r) => r.type === "command:remote:Command" && new RegExp(`-release-${colour}-activate-\\d+$`).test(r.urn ?? ""),
  );
  const ran = new Set(
    steps.map((r) => {
      const t = (r.outputs?.triggers ?? []) as unknown[];
      return `${String(t[0])} ${String(t[1])}`;
    }),
  );
  if (steps.length === 0 || ran.size !== 1) return undefined;
  const [release, sha256] = [...ran][0].split(" ");
  return { release, sha256 };
}

/**
 * Rollback: the other slot becomes live. It must hold a release, and the stack's state must
 * show that release activated (health-gated) on every host: otherwise `pulumi up` would not be
 * one listener change but a fetch, a backup and a migration of a release that never ran.
 * `deployed` is what `pulumi stack export` gave (the CLI always passes it, readable or not);
 * only an in-process caller that is itself the engine (the rehearsal) may leave it out.
 */
export function planRollback(
  state: StackState,
  deployed?: { resources?: DeployedResource[]; unreadable?: string },
): {
  from: Colour;
  to: Colour;
  release: string;
  values: Record<string, string>;
} {
  const to = otherColour(state.live);
  const target = state.slots[to];
  if (!target) {
    throw new CliError(`slot ${to} is empty: there is no earlier release to roll back to`);
  }
  if (deployed === undefined) return { from: state.live, to, release: target.release, values: { live: to } };
  if (deployed.unreadable !== undefined || deployed.resources === undefined) {
    throw new CliError(
      `cannot read the stack's state (${deployed.unreadable ?? "no resources"}), so cannot tell whether release ${target.release} ` +
        `in ${to} ever ran on the hosts; refusing to roll back blind. Make \`pulumi stack export --stack <stack>\` work and run again`,
    );
  }
  const ran = activatedRelease(deployed.resources, to);
  if (!ran || ran.release !== target.release || ran.sha256 !== target.sha256) {
    throw new CliError(
      `slot ${to} holds release ${target.release}, but the hosts ` +
        (ran ? `were last activated in ${to} with ${ran.release}` : `never activated it in ${to}`) +
        ` (its pulumi up failed or has not run): rolling back to it would fetch, back up and migrate instead of ` +
        `serving a release that already answered its health check. Run pulumi up first, or release again`,
    );
  }
  return { from: state.live, to, release: target.release, values: { live: to } };
}

/**
 * Rollback's last check, on what each host answered (lib/health.ts): the target colour must
 * serve its release on every host right now, or the listener would move to a colour that
 * fails. `unreadable` says why the hosts could not even be listed.
 */
export function refuseUnhealthy(
  to: Colour,
  release: string,
  answers: { host: string; ok: boolean; why?: string }[],
  unreadable?: string,
): void {
  const next = `Nothing was changed. See why on that host (supervisorctl status, the slot's log in /var/log/<app>/${to}.log), or release again`;
  if (unreadable !== undefined) {
    throw new CliError(
      `cannot check that ${to} (release ${release}) is healthy on the hosts: ${unreadable}; refusing to roll back blind. ` +
        "Make `pulumi stack output --show-secrets --stack <stack>` work (Pulumi CLI, backend login, passphrase) and run again",
    );
  }
  const bad = answers.filter((a) => !a.ok);
  if (bad.length === 0 && answers.length > 0) return;
  throw new CliError(
    `${to} (release ${release}) is not healthy on every host, so the load balancer must not move to it: ` +
      bad.map((a) => `host ${a.host}: slot ${to} ${a.why ?? "failed"}`).join("; ") +
      `. ${next}`,
  );
}

/** Artifacts are content-addressed: the key is the archive's sha256. */
export function artifactKey(sha256: string): string {
  return `releases/${sha256}.tar.gz`;
}
