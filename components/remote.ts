// Builds the shell commands greenlight runs on hosts (Kamal's split: this module only builds
// strings and is unit-tested; @pulumi/command and the test rig run them). Each command is
//
//   [sudo -n ]GL_A='v1' GL_B='v2' bash -c '<lib.sh><step>.sh' greenlight-<step>
//
// The script travels byte for byte (single-quoted, so the remote shell expands nothing in
// it), values are quoted assignments in the command text (they reach the script as its
// environment, not through pulumi-command's `environment`, which needs sshd AcceptEnv), and
// no secret is ever among them: scripts read secrets from SSM or shared/.env themselves.
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";

export const STEPS = ["bootstrap", "settings", "fetch", "backup", "migrate", "activate", "cleanup", "restore"] as const;
export type Step = (typeof STEPS)[number];

export const SCRIPT_DIR = path.join(__dirname, "..", "scripts", "remote");

/** What runs on the host for `step`: lib.sh followed by the step's script, exactly as on disk. */
export function scriptText(step: Step): string {
  const read = (f: string) => fs.readFileSync(path.join(SCRIPT_DIR, f), "utf8");
  return read("lib.sh") + read(`${step}.sh`);
}

/** A short, stable id of a step's script: a trigger that re-runs the step when it changes. */
export function scriptId(step: Step): string {
  return createHash("sha256").update(scriptText(step)).digest("hex").slice(0, 16);
}

/** Quotes one word for a POSIX shell: nothing inside is expanded. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

const NAME = /^GL_[A-Z0-9_]+$/;

/**
 * The command text for `step` with `values` as its GL_* variables. Values are quoted, so a
 * release id like `$(reboot)` reaches the script as those eight characters (and the script
 * refuses it). `sudo` runs the step as root (the bootstrap, as the admin user).
 */
export function remoteCommand(step: Step, values: Record<string, string>, opts: { sudo?: boolean } = {}): string {
  const assignments = Object.entries(values).map(([k, v]) => {
    if (!NAME.test(k)) throw new Error(`not a greenlight variable name: ${k}`);
    if (typeof v !== "string" || /[\0\r\n]/.test(v)) throw new Error(`${k} must be a one-line string`);
    return `${k}=${shellQuote(v)}`;
  });
  return [opts.sudo ? "sudo -n" : "", ...assignments, "bash -c", shellQuote(scriptText(step)), `greenlight-${step}`]
    .filter(Boolean)
    .join(" ");
}

/** The command `update` runs when a step's inputs change without a new release: nothing. */
export const NOTHING_TO_REDO = "true # greenlight: same release, nothing to redo";
