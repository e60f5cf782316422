// Builds every release step greenlight runs on a host (Kamal's split: this module only builds
// values and strings and is unit-tested; @pulumi/command, the test rig and the bench run them).
// components/release.ts, test/rig/world.ts and bench/hosts.ts all build their steps here.
//
// The scripts (scripts/remote/*.sh) reach a host once per version: remote.CopyToRemote puts
// the directory in /home/admin/.greenlight/<scripts-id>/remote, and the bootstrap installs it,
// checked against its content address, root-owned in /srv/greenlight-scripts/<scripts-id>/.
// Each step's command is then one short line that names the step, the version and the values:
//
//   bash /srv/greenlight-scripts/<scripts-id>/step.sh fetch GL_APP='site' GL_RELEASE='r1' ...
//   sudo -n bash /home/admin/.greenlight/<scripts-id>/remote/step.sh bootstrap GL_APP='site' ...
//
// Values are quoted words (the remote shell expands nothing in them) and never a secret: the
// scripts read secrets from SSM or shared/.env themselves. step.sh (see its header) enforces
// the step's time limit on the host, keeps the step's output in a log there, records the
// step's result, and prints only the result or a short failure summary.
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { Colour, SLOT_PORTS } from "./constants";

export const STEPS = [
  "bootstrap",
  "settings",
  "fetch",
  "check",
  "backup",
  "migrate",
  "activate",
  "cleanup",
  "restore",
  "maintenance",
  "workers",
] as const;
export type Step = (typeof STEPS)[number];

/** The user cloud-init creates on Debian images (sudo); it copies the scripts and bootstraps. */
export const ADMIN = "admin";
/** The user the bootstrap creates; it runs every other step. */
export const DEPLOY = "deploy";

/**
 * Steps whose output comes from the app's own code (Django's migrate, pg_restore of the app's
 * data): their stderr is a secret output, kept out of the logs. step.sh shows only greenlight's
 * own lines of these steps' logs in a failure message (its `quiet` list).
 */
export const QUIET_STEPS: readonly Step[] = ["check", "migrate", "restore"];

export const SCRIPT_DIR = path.resolve(__dirname, "..", "scripts", "remote");
/**
 * Where the bootstrap installs each version of the scripts, root-owned. (Not under /usr: the
 * test rig's hosts share the machine's /usr; "-" keeps it apart from any app's /srv/<app>.)
 */
export const INSTALL_ROOT = "/srv/greenlight-scripts";
/** Where remote.CopyToRemote puts each version, for the bootstrap to install. */
export const COPY_ROOT = `/home/${ADMIN}/.greenlight`;

/** The files a version of the scripts is made of: every *.sh, then every *.py (each in C order). */
export function scriptFiles(dir: string = SCRIPT_DIR): string[] {
  const files = fs.readdirSync(dir);
  const byName = (a: string, b: string) => (Buffer.from(a) < Buffer.from(b) ? -1 : 1);
  return [".sh", ".py"].flatMap((ext) => files.filter((f) => f.endsWith(ext)).sort(byName));
}

/**
 * The content address of the scripts in `dir`: every *.sh, then every *.py (the migration
 * check), by name in C order, as "<name>\n<size>\n<content>", sha256, 16 hex digits. lib.sh's
 * scripts_id computes the same on the host, and the bootstrap installs nothing that does not match.
 */
export function scriptsId(dir: string = SCRIPT_DIR): string {
  const h = createHash("sha256");
  for (const f of scriptFiles(dir)) {
    const content = fs.readFileSync(path.join(dir, f));
    h.update(`${f}\n${content.length}\n`);
    h.update(content);
  }
  return h.digest("hex").slice(0, 16);
}

/**
 * What one step runs besides lib.sh, step.sh and its own script (the bootstrap: what it installs
 * outside the scripts' directory, so that a change of it prepares the host again).
 */
const STEP_EXTRA: Partial<Record<Step, string[]>> = {
  check: ["migration_check.py"],
  bootstrap: ["background-boot.sh"],
};

/** A short, stable id of what one step runs (lib.sh, step.sh and its script): a trigger. */
export function scriptId(step: Step, dir: string = SCRIPT_DIR): string {
  const h = createHash("sha256");
  for (const f of ["lib.sh", "step.sh", `${step}.sh`, ...(STEP_EXTRA[step] ?? [])]) {
    h.update(fs.readFileSync(path.join(dir, f)));
  }
  return h.digest("hex").slice(0, 16);
}

/** The remotePath of remote.CopyToRemote for version `id`: the directory lands in `<it>/remote`. */
export function scriptsCopyPath(id: string = scriptsId()): string {
  return `${COPY_ROOT}/${id}`;
}

/** Quotes one word for a POSIX shell: nothing inside is expanded. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** One step on one host, as built here: what runs, as whom, with which values. */
export interface StepCall {
  step: Step;
  /** The SSH user: the bootstrap runs as the admin (through sudo), everything else as deploy. */
  user: typeof ADMIN | typeof DEPLOY;
  values: Record<string, string>;
}

export interface Common {
  app: string;
  parameterPath: string;
  region: string;
}

const common = (c: Common) => ({ GL_APP: c.app, GL_PARAMETER_PATH: c.parameterPath, GL_REGION: c.region });
/** Who runs `step`: the admin for the bootstrap, deploy for everything else. */
export const stepUser = (step: Step): StepCall["user"] => (step === "bootstrap" ? ADMIN : DEPLOY);
const deploy = (step: Step, values: Record<string, string>): StepCall => ({ step, user: stepUser(step), values });

/**
 * Why a step runs inside a maintenance window ("release r5", "restore db/...dump"): such a step
 * turns the mode on on its host again before it changes anything (a retried step never runs
 * with the site open), and its failure message says the site stays in maintenance mode.
 */
export interface InWindow {
  maintenance?: string;
}
const inWindow = (a: InWindow): Record<string, string> => (a.maintenance ? { GL_MAINTENANCE: a.maintenance } : {});
const media = (a: { mediaBucket?: string }): Record<string, string> =>
  a.mediaBucket ? { GL_MEDIA_BUCKET: a.mediaBucket } : {};

/** Each step's values, built once: the program, the rig and the bench call these. */
export const steps = {
  bootstrap: (a: {
    app: string;
    deployKey: string;
    vpcCidr: string;
    pgMajor: string;
    healthPath: string;
  }): StepCall => ({
    step: "bootstrap",
    user: stepUser("bootstrap"),
    values: {
      GL_APP: a.app,
      GL_DEPLOY_KEY: a.deployKey.trim(),
      GL_VPC_CIDR: a.vpcCidr,
      GL_BLUE_PORT: String(SLOT_PORTS.blue),
      GL_GREEN_PORT: String(SLOT_PORTS.green),
      GL_PG_MAJOR: a.pgMajor,
      GL_HEALTH_PATH: a.healthPath,
      GL_BOOTSTRAP_ID: scriptId("bootstrap"),
      GL_SCRIPTS_ID: scriptsId(),
    },
  }),
  settings: (a: Common & { healthPath: string; healthTimeout?: number }): StepCall =>
    deploy("settings", {
      ...common(a),
      GL_HEALTH_PATH: a.healthPath,
      GL_BLUE_PORT: String(SLOT_PORTS.blue),
      GL_GREEN_PORT: String(SLOT_PORTS.green),
      ...(a.healthTimeout !== undefined ? { GL_HEALTH_TIMEOUT: String(a.healthTimeout) } : {}),
    }),
  fetch: (
    a: Common & {
      slot: Colour;
      release: string;
      artifactBucket: string;
      artifactKey: string;
      sha256: string;
      workers: number;
    },
  ): StepCall =>
    deploy("fetch", {
      ...common(a),
      GL_SLOT: a.slot,
      GL_RELEASE: a.release,
      GL_ARTIFACT_BUCKET: a.artifactBucket,
      GL_ARTIFACT_KEY: a.artifactKey,
      GL_SHA256: a.sha256,
      GL_WORKERS: String(a.workers),
    }),
  /** `mediaBucket`: the backup also lists the media bucket's objects (the dump's media manifest). */
  backup: (
    a: Common & InWindow & { slot: Colour; release: string; backupBucket: string; mediaBucket?: string },
  ): StepCall =>
    deploy("backup", {
      ...common(a),
      GL_SLOT: a.slot,
      GL_RELEASE: a.release,
      GL_BACKUP_BUCKET: a.backupBucket,
      ...media(a),
      ...inWindow(a),
    }),
  /**
   * The migration safety check of a release on the first host, before its backup
   * (check.sh, migration_check.py), against the release the other slot runs on that host (the
   * one that serves until this one goes live, and again after a rollback: read there, so a
   * release to the other slot changes nothing here). `allowUnsafe`: this release is the one
   * allowUnsafeMigrations names. `stack` only goes into the refusal's advice.
   */
  check: (a: { app: string; slot: Colour; release: string; stack: string; allowUnsafe: boolean }): StepCall =>
    deploy("check", {
      GL_APP: a.app,
      GL_SLOT: a.slot,
      GL_RELEASE: a.release,
      GL_STACK: a.stack,
      ...(a.allowUnsafe ? { GL_ALLOW_UNSAFE: "1" } : {}),
    }),
  migrate: (a: InWindow & { app: string; slot: Colour; release: string }): StepCall =>
    deploy("migrate", { GL_APP: a.app, GL_SLOT: a.slot, GL_RELEASE: a.release, ...inWindow(a) }),
  activate: (
    a: InWindow & { app: string; slot: Colour; release: string; healthPath: string; healthTimeout?: number },
  ): StepCall =>
    deploy("activate", {
      GL_APP: a.app,
      GL_SLOT: a.slot,
      GL_RELEASE: a.release,
      GL_PORT: String(SLOT_PORTS[a.slot]),
      GL_HEALTH_PATH: a.healthPath,
      ...(a.healthTimeout !== undefined ? { GL_HEALTH_TIMEOUT: String(a.healthTimeout) } : {}),
      ...inWindow(a),
    }),
  cleanup: (a: { app: string; keep: number }): StepCall =>
    deploy("cleanup", { GL_APP: a.app, GL_KEEP: String(a.keep) }),
  /**
   * One restore request: backup `backupKey`, named by `restoreId` when config gives one
   * (restoreId). step.sh records its result per request (restoreRequest), so a retried step
   * of the same request prints what it restored, and a new request (another key or id) runs.
   * `mediaBucket`: media goes back to the backup's manifest too (and the safety backup lists it first).
   */
  restore: (
    a: Common & InWindow & { backupBucket: string; backupKey: string; restoreId?: string; mediaBucket?: string },
  ): StepCall =>
    deploy("restore", {
      ...common(a),
      GL_BACKUP_BUCKET: a.backupBucket,
      GL_BACKUP_KEY: a.backupKey,
      ...(a.restoreId ? { GL_RESTORE_ID: a.restoreId } : {}),
      ...media(a),
      ...inWindow(a),
    }),
  /**
   * The background processes of one host (workers.sh) move to the live release: `stop` (warm
   * shutdown of the worker, and beat) on every host, then `start` on every host, beat only
   * where `beat` (the first host: one beat per environment). `off` is the delete of a start
   * step (Redis switched off, or the step replaced by a newer release's): it stops them only
   * while the host's record (/srv/<app>/background.json) still names this slot and release.
   */
  workers: (a: {
    app: string;
    slot: Colour;
    release: string;
    mode: "stop" | "start" | "off";
    beat?: boolean;
  }): StepCall =>
    deploy(
      "workers",
      // stop names no release: its command is the same for every release, so a preview shows
      // only its new triggers.
      a.mode === "stop"
        ? { GL_APP: a.app, GL_MODE: "stop" }
        : {
            GL_APP: a.app,
            GL_SLOT: a.slot,
            GL_RELEASE: a.release,
            GL_MODE: a.mode,
            ...(a.mode === "start" && a.beat ? { GL_BEAT: "1" } : {}),
          },
    ),
  /** Maintenance mode on (with why) or off on one host (maintenance.sh). */
  maintenance: (a: { app: string; mode: "on" | "off"; reason?: string }): StepCall =>
    deploy("maintenance", {
      GL_APP: a.app,
      GL_MODE: a.mode,
      ...(a.mode === "on" ? { GL_REASON: a.reason ?? "" } : {}),
    }),
};

const NAME = /^GL_[A-Z0-9_]+$/;
/** pulumi-command's error carries the whole command: this keeps it (and a PR preview) short. */
export const MAX_COMMAND = 600;

/**
 * The command that runs `call` on its host with a hard limit of `timeoutSeconds` (step.sh
 * passes it to coreutils timeout): one line under MAX_COMMAND characters. A release id like
 * `$(reboot)` reaches the script as those eight characters (and the script refuses it).
 */
export function createCommand(call: StepCall, opts: { timeoutSeconds: number; scriptsId?: string }): string {
  const id = opts.scriptsId ?? scriptsId();
  const values = { ...call.values, GL_TIMEOUT: String(opts.timeoutSeconds) };
  const words = Object.entries(values).map(([k, v]) => {
    if (!NAME.test(k)) throw new Error(`not a greenlight variable name: ${k}`);
    if (typeof v !== "string" || /[\0\r\n]/.test(v)) throw new Error(`${k} must be a one-line string`);
    return `${k}=${shellQuote(v)}`;
  });
  const runner =
    call.step === "bootstrap"
      ? `sudo -n bash ${scriptsCopyPath(id)}/remote/step.sh`
      : `bash ${INSTALL_ROOT}/${id}/step.sh`;
  const command = [runner, call.step, ...words].join(" ");
  if (command.length >= MAX_COMMAND) {
    throw new Error(`the ${call.step} command is ${command.length} characters, over ${MAX_COMMAND}: ${command}`);
  }
  return command;
}

/**
 * A restore request's name in its record: the first 16 hex digits of the sha256 of the backup
 * key, and "\n" and the restore id when there is one. step.sh computes the same on the host.
 */
export function restoreRequest(backupKey: string, restoreId?: string): string {
  return createHash("sha256")
    .update(restoreId ? `${backupKey}\n${restoreId}` : backupKey)
    .digest("hex")
    .slice(0, 16);
}

/**
 * Where step.sh records the result of `call` on its host: per slot and release for a release's
 * steps, per request (backup key and restore id) for a restore.
 */
export function recordPath(call: StepCall): string {
  const v = call.values;
  const request = call.step === "restore" ? restoreRequest(v.GL_BACKUP_KEY ?? "", v.GL_RESTORE_ID) : undefined;
  const name = [v.GL_SLOT, v.GL_RELEASE, call.step, request, v.GL_MODE].filter(Boolean).join(".");
  if (!/^[a-z][a-z0-9]{1,15}$/.test(v.GL_APP ?? "") || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) {
    throw new Error(`no record name for ${call.step} with app ${v.GL_APP} and ${name}`);
  }
  return `/srv/${v.GL_APP}/steps/${name}.json`;
}

/**
 * The `update` of a step that must not run again for the same release (an input changed, such
 * as a script version or a connection, but not the release): it prints the result the step
 * recorded when it ran, so its stdout (which pulumi-command replaces with the update's) and the
 * stack outputs built from it keep their values. Fails, saying so, when there is no record.
 */
export function updateCommand(call: StepCall): string {
  if (call.step === "bootstrap") throw new Error("the bootstrap has no recorded result: its update runs it again");
  const file = recordPath(call); // letters, digits and . _ - / only: safe in double quotes
  // A restore done before records were per request left restore.json, naming its key (a key is
  // letters, digits and . _ - / only): the same request without an id prints that one.
  const v = call.values;
  const legacy =
    call.step === "restore" && !v.GL_RESTORE_ID && /^[A-Za-z0-9._/-]+$/.test(v.GL_BACKUP_KEY ?? "")
      ? ` || { grep -qF '"restored":"${v.GL_BACKUP_KEY}"' ${path.posix.dirname(file)}/restore.json 2>/dev/null && cat ${path.posix.dirname(file)}/restore.json; }`
      : "";
  return (
    `cat ${file} 2>/dev/null${legacy} || { echo "greenlight ${call.step}: no recorded result ${file} on $(hostname):` +
    ` it cannot report it again; replace the step to run it anew (pulumi up --replace <its urn>)" >&2; exit 1; }`
  );
}

/**
 * What `npm run rollback` runs on each host (as deploy) before it flips the listener: the
 * slot's port asked for the health path, as activate.sh's gate asks it; prints the body (the
 * release id), fails when the slot does not answer 2xx.
 */
export function healthProbeCommand(port: number, healthPath: string): string {
  if (!Number.isInteger(port) || port < 1024 || port > 65535) throw new Error(`not a slot port: ${port}`);
  if (!/^\/[A-Za-z0-9/._-]{0,100}$/.test(healthPath)) throw new Error(`not a health path: ${healthPath}`);
  return `curl -fsS --max-time 5 ${shellQuote(`http://127.0.0.1:${port}${healthPath}`)}`;
}
