// Reading and writing a stack's release slots in Pulumi.<stack>.yaml. Pure (text in, text
// out) so the release and rollback commands are unit-tested without Pulumi or AWS. The `yaml`
// package edits the document in place, so the user's comments and key order survive.
import * as fs from "fs";
import * as path from "path";
import { isMap, parseDocument } from "yaml";
import {
  COLOURS,
  Colour,
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
    slots[c] = release ? { release, artifact: get(`${c}Artifact`), sha256: get(`${c}Sha256`) } : undefined;
  }
  return { live, slots };
}

/** Sets greenlight:<key> values, keeping everything else (comments included) as it was. */
export function writeConfig(text: string, values: Record<string, string>): string {
  const doc = config(text);
  if (!isMap(doc.get("config"))) doc.set("config", doc.createNode({}));
  for (const [k, v] of Object.entries(values)) doc.setIn(["config", key(k)], v);
  return doc.toString();
}

export interface ReleasePlan {
  slot: Colour;
  previousLive?: { colour: Colour; release: string };
  replaces?: string;
  /** The replaced release never went live (its `pulumi up` failed before the cutover). */
  neverLive?: string;
  values: Record<string, string>;
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
    const colour = (r.outputs?.tags as Record<string, string> | undefined)?.colour as Colour;
    if (COLOURS.includes(colour) && typeof r.outputs?.arn === "string") groups.set(r.outputs.arn, colour);
  }
  for (const r of resources) {
    if (r.type !== "aws:lb/listener:Listener" || /-alb-test$/.test(r.urn ?? "")) continue;
    const actions = (r.outputs?.defaultActions ?? []) as { type?: string; targetGroupArn?: string }[];
    const forward = actions.find((a) => a.type === "forward");
    if (forward?.targetGroupArn && groups.has(forward.targetGroupArn)) return groups.get(forward.targetGroupArn);
  }
  return undefined;
}

/**
 * Where a new release goes: into the idle slot, which becomes live. The very first release
 * goes into the live slot (both are empty). Refuses to re-release what is already live.
 *
 * `serving` is the colour the load balancer really forwards to (servingColour). When it is
 * not the configured live colour, the last release never went live (its `pulumi up`
 * failed): the new release replaces it in that slot, and the serving slot is left alone.
 */
export function planRelease(state: StackState, next: Slot, serving?: Colour): ReleasePlan {
  if (!isReleaseId(next.release)) {
    throw new CliError(`release id "${next.release}" is not allowed; allowed: ${VALUES.release.what} (up to 64)`);
  }
  if (!isSha256(next.sha256)) throw new CliError(`"${next.sha256}" is not a sha256`);
  if (!isArtifactKey(next.artifact)) throw new CliError(`"${next.artifact}" is not an artifact key`);
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
        live: state.live,
      },
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
      live: slot,
    },
  };
}

/** Rollback: the other slot becomes live. It must hold a release. */
export function planRollback(state: StackState): {
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
  return { from: state.live, to, release: target.release, values: { live: to } };
}

/** Artifacts are content-addressed: the key is the archive's sha256. */
export function artifactKey(sha256: string): string {
  return `releases/${sha256}.tar.gz`;
}
