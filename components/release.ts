import * as pulumi from "@pulumi/pulumi";
import { remote } from "@pulumi/command";
import { COLOURS, Colour, EnvConfig } from "./config";
import { Hosts } from "./hosts";
import {
  ADMIN,
  Common,
  QUIET_STEPS,
  SCRIPT_DIR,
  STEPS,
  Step,
  StepCall,
  createCommand,
  scriptId,
  scriptsCopyPath,
  stepUser,
  steps,
  updateCommand,
} from "./remote";

export interface ReleaseArgs {
  config: EnvConfig;
  hosts: Hosts;
  artifactBucket: pulumi.Input<string>;
  backupBucket: pulumi.Input<string>;
  /** The site's uploads: each backup lists it (its media manifest), each restore puts it back. */
  mediaBucket: pulumi.Input<string>;
  vpcCidr: string;
  /** What must exist before a step reads the database or SSM (the database, the parameters). */
  ready: pulumi.Resource[];
  /** A digest of every setting's value (secret): a change re-renders .env on every host. */
  settingsDigest: pulumi.Input<string>;
}

export interface SlotSteps {
  fetch: remote.Command[];
  check: remote.Command;
  backup: remote.Command;
  migrate: remote.Command;
  activate: remote.Command[];
}

/**
 * The release graph, as `@pulumi/command` steps over SSH, in its phases:
 *
 *   scripts-<i>             the scripts' version reaches host i (remote.CopyToRemote)
 *   bootstrap-<i>           host after host: installs them, prepares the host
 *   settings-<i>            host after host, when a setting or secret changes (gated reloads)
 *   maintenance-on-<i>      every host, when the update breaks compatibility on purpose (the
 *                           release allowUnsafeMigrations names) or restores a backup: nginx
 *                           answers 503 + Retry-After to all but the health path
 *   restore                 first host, when restoreBackup (with restoreId) names a new request
 *   <colour>-fetch-<i>      the slot, on every host, after its bootstrap
 *   <colour>-check          first host, after its fetch: the migration safety check
 *   <colour>-backup         first host, after every fetch of the colour and the check
 *   <colour>-migrate        first host, after the backup
 *   <colour>-activate-<i>   every host, after the migrate
 *   cleanup-<i>             every host, after its activations
 *   maintenance-off-<i>     every host, after the restore, every activation and the cutover
 *                           (Release.endMaintenance): the mode ends once the new colour is live
 *
 * A maintenance window runs: on (every host) -> backup (or the restore's safety dump) ->
 * migrate (or restore) -> activate -> cutover (after the restore too) -> off. The off steps exist whenever the stack
 * holds a release and are triggered by the window's reason ("" when there is none), so an update
 * that no longer declares a window (a failed maintenance release replaced or given up) ends
 * the mode too. Pulumi runs nothing after a failed step: a failure inside the window leaves the
 * mode on, and the failed step's message says so and how it ends (scripts/remote/step.sh).
 *
 * Each step's command is built in components/remote.ts. A slot's steps are triggered by the
 * slot's release id and sha256 (and the host's instance id), so they run once per release and
 * again only on a replaced host; any other change (a new script version, a connection) runs
 * their `update`, which prints the result they recorded, so the outputs keep their values. The
 * load balancer's forwarding listener depends on every activation of the live colour: a failure
 * anywhere stops the graph before the cutover. Flipping `live` changes no step here.
 */
export class Release extends pulumi.ComponentResource {
  readonly scripts: remote.CopyToRemote[] = [];
  readonly bootstraps: remote.Command[] = [];
  readonly settings: remote.Command[] = [];
  readonly slots: Partial<Record<Colour, SlotSteps>> = {};
  readonly restore?: remote.Command;
  readonly cleanups: remote.Command[] = [];
  readonly maintenanceOn: remote.Command[] = [];
  readonly maintenanceOff: remote.Command[] = [];
  readonly workersStop: remote.Command[] = [];
  readonly workersStart: remote.Command[] = [];
  readonly lastBackup: pulumi.Output<Record<string, unknown> | null>;
  readonly migrations: pulumi.Output<Record<string, unknown>>;
  readonly backups: pulumi.Output<Record<string, unknown>>;

  private readonly name: string;
  private readonly args: ReleaseArgs;
  private readonly common: Common;
  private readonly fetches: Partial<Record<Colour, remote.Command[]>> = {};

  constructor(name: string, args: ReleaseArgs, opts?: pulumi.ComponentResourceOptions) {
    super("greenlight:release:Release", name, {}, opts);
    this.name = name;
    this.args = args;
    const cfg = args.config;
    this.common = { app: cfg.app, parameterPath: cfg.parameterPath, region: cfg.region };

    this.bootstrap();
    this.renderSettings();
    for (const colour of COLOURS) this.fetchSlot(colour);
    this.beginMaintenance();
    this.restore = this.restoreBackup();
    for (const colour of COLOURS) this.slot(colour);
    this.cleanup();

    const perColour = (pick: (s: SlotSteps) => remote.Command) =>
      pulumi
        .all(
          COLOURS.filter((c) => this.slots[c]).map((c) =>
            parseResult(pick(this.slots[c]!).stdout).apply((v) => [c, v] as const),
          ),
        )
        .apply((entries) => Object.fromEntries(entries) as Record<string, Record<string, unknown>>);
    this.backups = perColour((s) => s.backup);
    // What migrate applied (release, applied), with the check's report of them (pending,
    // verdict, allowed, plan...): one entry per colour.
    this.migrations = pulumi
      .all([perColour((s) => s.check), perColour((s) => s.migrate)])
      .apply(([checked, migrated]) =>
        Object.fromEntries(Object.entries(migrated).map(([c, m]) => [c, { ...(checked[c] ?? {}), ...m }] as const)),
      );
    this.lastBackup = this.backups.apply((b): Record<string, unknown> | null => {
      const all = Object.values(b as Record<string, Record<string, unknown>>).filter(
        (x) => typeof x.takenAt === "string",
      );
      all.sort((x, y) => String(y.takenAt).localeCompare(String(x.takenAt)));
      return all[0] ?? null;
    });

    this.registerOutputs({ lastBackup: this.lastBackup, migrations: this.migrations, backups: this.backups });
  }

  /** The release that breaks compatibility on purpose (allowUnsafeMigrations), by colour. */
  private maintenanceSlot(colour: Colour): string | undefined {
    const cfg = this.args.config;
    const slot = cfg.slots[colour];
    return slot && cfg.allowUnsafeMigrations === slot.release ? `release ${slot.release}` : undefined;
  }

  /** Why this update runs under maintenance mode ("release r5, restore db/...dump"), or "". */
  maintenanceReason(): string {
    const cfg = this.args.config;
    const reasons = COLOURS.map((c) => this.maintenanceSlot(c)).filter((r): r is string => !!r);
    if (cfg.restoreBackup) reasons.push(`restore ${cfg.restoreBackup}`);
    return reasons.join(", ");
  }

  /**
   * Maintenance mode on, on every host, before the window's first step (a maintenance release's
   * backup, a restore's safety dump). Triggered by what the window is for, so it runs once per
   * maintenance release or restore key, and again on a replaced host.
   */
  private beginMaintenance(): void {
    const reason = this.maintenanceReason();
    if (!reason) return;
    const cfg = this.args.config;
    const windowed = COLOURS.filter((c) => this.maintenanceSlot(c)).map((c) => cfg.slots[c]!);
    const call = steps.maintenance({ app: cfg.app, mode: "on", reason });
    this.args.hosts.hosts.forEach((h, i) => {
      this.maintenanceOn.push(
        this.step(`maintenance-on-${i}`, i, call, {
          triggers: [reason, ...windowed.flatMap((s) => [s.release, s.sha256]), h.instance.id],
          // After every fetch of the window's releases: the slow part stays out of the window.
          dependsOn: [
            this.bootstraps[i],
            ...COLOURS.filter((c) => this.maintenanceSlot(c)).flatMap((c) => this.fetches[c]!),
          ],
          updateIsNoop: true,
        }),
      );
    });
  }

  /**
   * Maintenance mode off, on every host, once the window is over: after the restore, every
   * activation and `after` (the listener's cutover). Called once, by the environment, when the
   * listener exists. Nothing when the stack holds no release yet.
   */
  endMaintenance(after: pulumi.Resource[]): void {
    const cfg = this.args.config;
    if (this.maintenanceOff.length || (!COLOURS.some((c) => cfg.slots[c]) && !this.restore)) return;
    const reason = this.maintenanceReason();
    const call = steps.maintenance({ app: cfg.app, mode: "off" });
    const activations = COLOURS.flatMap((c) => this.slots[c]?.activate ?? []);
    this.args.hosts.hosts.forEach((h, i) => {
      this.maintenanceOff.push(
        this.step(`maintenance-off-${i}`, i, call, {
          triggers: [reason, h.instance.id],
          dependsOn: [
            this.bootstraps[i],
            ...this.maintenanceOn,
            ...(this.restore ? [this.restore] : []),
            ...activations,
            ...after,
          ],
          updateIsNoop: true,
        }),
      );
    });
  }

  /**
   * The background processes (greenlight.json's worker and beat) move to the live release once
   * `after` (the listener's cutover) is done: `workers-stop-<i>` on every host (a warm
   * shutdown: running tasks finish, within the programs' stopwaitsecs), then, once every host
   * has stopped, `workers-start-<i>` (beat on the first host only). Triggered by the live colour
   * and its release, so a release and a rollback run them, after the listener has moved (its
   * move waits for none of this). Called once, by the environment, when the stack has Redis.
   *
   * `workers-start-<i>` has a `delete`: workers.sh `off` with its slot and release. It runs when
   * the stack switches Redis off (the step leaves the graph: the workers stop) and when a newer
   * release's step replaces it (created first, so the host's record names the newer release and
   * the old step's delete changes nothing). Each start also leaves the record a reboot starts
   * from (supervisor's <app>-background-boot, bootstrap.sh).
   */
  switchWorkers(after: pulumi.Resource[]): void {
    const cfg = this.args.config;
    const slot = cfg.slots[cfg.live];
    if (this.workersStop.length || !slot) return;
    const hosts = this.args.hosts.hosts;
    const triggers = (i: number) => [cfg.live, slot.release, slot.sha256, hosts[i].instance.id];
    const call = (mode: "stop" | "start" | "off", i: number) =>
      steps.workers({ app: cfg.app, slot: cfg.live, release: slot.release, mode, beat: i === 0 });
    hosts.forEach((_, i) => {
      this.workersStop.push(
        this.step(`workers-stop-${i}`, i, call("stop", i), {
          triggers: triggers(i),
          dependsOn: [...this.activations(cfg.live), ...after],
          updateIsNoop: true,
        }),
      );
    });
    hosts.forEach((_, i) => {
      this.workersStart.push(
        this.step(`workers-start-${i}`, i, call("start", i), {
          triggers: triggers(i),
          dependsOn: [...this.workersStop],
          updateIsNoop: true,
          delete: call("off", i),
        }),
      );
    });
  }

  /** Activations of a colour: what the cutover to it waits for. */
  activations(colour: Colour): remote.Command[] {
    return this.slots[colour]?.activate ?? [];
  }

  /**
   * What the cutover to `colour` waits for: its activations, and the restore of the same update,
   * so that a rollback to the release that matches the restored schema (the usual companion of a
   * restore) moves the listener inside the maintenance window, once the data is restored: never
   * before, when that release would serve the schema it cannot use.
   */
  cutoverAfter(colour: Colour): remote.Command[] {
    return [...this.activations(colour), ...(this.restore ? [this.restore] : [])];
  }

  /**
   * The scripts' version reaches each host (a copy per version, content-addressed), and the
   * bootstrap installs it and prepares the host, host after host: a broken bootstrap stops at
   * the first. A new version of any script re-runs the bootstrap's install (its update); the
   * host is prepared again only when the bootstrap's own scripts or values changed.
   */
  private bootstrap(): void {
    const cfg = this.args.config;
    this.args.hosts.hosts.forEach((h, i) => {
      const copy = new remote.CopyToRemote(
        `${this.name}-scripts-${i}`,
        {
          connection: this.args.hosts.connection(i, ADMIN),
          source: new pulumi.asset.FileArchive(SCRIPT_DIR),
          remotePath: scriptsCopyPath(),
          triggers: [h.instance.id],
        },
        { parent: this },
      );
      this.scripts.push(copy);
      const call = pulumi
        .all([this.args.hosts.deployKey.publicKeyOpenssh, this.args.vpcCidr])
        .apply(([deployKey, vpcCidr]) =>
          steps.bootstrap({
            app: cfg.app,
            deployKey,
            vpcCidr,
            pgMajor: cfg.db.engineVersion,
            healthPath: cfg.healthPath,
          }),
        );
      this.bootstraps.push(
        this.step(`bootstrap-${i}`, i, call, {
          triggers: [scriptId("bootstrap"), h.instance.id],
          dependsOn: [copy, ...(i > 0 ? [this.bootstraps[i - 1]] : [])],
        }),
      );
    });
  }

  /**
   * A rotated secret or a changed setting reaches every host, host after host: .env is rendered
   * again and the running slots reload one by one, each gated on its health path; a setting
   * that stops the app booting puts the previous .env back and stops at the first host. The
   * digest is secret; it only says "changed".
   */
  private renderSettings(): void {
    const call = steps.settings({ ...this.common, healthPath: this.args.config.healthPath });
    this.args.hosts.hosts.forEach((h, i) => {
      this.settings.push(
        this.step(`settings-${i}`, i, call, {
          triggers: [this.args.settingsDigest, h.instance.id],
          dependsOn: [this.bootstraps[i], ...(i > 0 ? [this.settings[i - 1]] : []), ...this.args.ready],
          updateIsNoop: true,
        }),
      );
    });
  }

  /**
   * Only a new restore request restores (restoreBackup, with restoreId when set): a replaced
   * host or a changed connection must never repeat it, and a retried create of the same request
   * (the SSH connection dropped) prints the result restore.sh recorded for it on the host.
   */
  private restoreBackup(): remote.Command | undefined {
    const key = this.args.config.restoreBackup;
    if (!key) return undefined;
    const restoreId = this.args.config.restoreId;
    const call = pulumi.all([this.args.backupBucket, this.args.mediaBucket]).apply(([backupBucket, mediaBucket]) =>
      steps.restore({
        ...this.common,
        backupBucket,
        mediaBucket,
        backupKey: key,
        restoreId,
        maintenance: `restore ${key}`,
      }),
    );
    // Under maintenance mode on every host: no write is acknowledged between the safety dump and
    // the restore, so the restore discards none that the safety dump does not hold.
    return this.step("restore", 0, call, {
      // [key] alone without an id: a stack that restored before restoreId existed restores nothing anew.
      triggers: restoreId ? [key, restoreId] : [key],
      dependsOn: [this.bootstraps[0], ...this.args.ready, ...this.maintenanceOn],
      updateIsNoop: true,
    });
  }

  /** A colour's fetch, on every host (before any maintenance window begins). */
  private fetchSlot(colour: Colour): void {
    const cfg = this.args.config;
    const slot = cfg.slots[colour];
    if (!slot) return;
    const hosts = this.args.hosts.hosts;
    const triggers = (i: number) => [slot.release, slot.sha256, hosts[i].instance.id];
    const release = { app: cfg.app, slot: colour, release: slot.release };
    this.fetches[colour] = hosts.map((_, i) =>
      this.step(
        `${colour}-fetch-${i}`,
        i,
        pulumi.output(this.args.artifactBucket).apply((artifactBucket) =>
          steps.fetch({
            ...this.common,
            ...release,
            artifactBucket,
            artifactKey: slot.artifact,
            sha256: slot.sha256,
            workers: cfg.workers,
          }),
        ),
        { triggers: triggers(i), dependsOn: [this.bootstraps[i], ...this.args.ready], updateIsNoop: true },
      ),
    );
  }

  /** One colour's release: fetch everywhere, backup and migrate once, activate everywhere. */
  private slot(colour: Colour): void {
    const cfg = this.args.config;
    const slot = cfg.slots[colour];
    if (!slot) return;
    const hosts = this.args.hosts.hosts;
    const triggers = (i: number) => [slot.release, slot.sha256, hosts[i].instance.id];
    const release = { app: cfg.app, slot: colour, release: slot.release };
    // A release that breaks compatibility on purpose: its backup, migrate and activations run
    // inside the maintenance window, which begins on every host after every fetch.
    const maintenance = this.maintenanceSlot(colour);
    const inWindow = maintenance ? { ...release, maintenance } : release;
    const fetch = this.fetches[colour]!;
    // The migration safety check, before anything is written, against the release the other
    // slot runs on the host (check.sh reads it there). The release's migrations (its manifest's
    // list) are a trigger, so the preview's diff names them.
    const check = this.step(
      `${colour}-check`,
      0,
      steps.check({ ...release, stack: cfg.stack, allowUnsafe: cfg.allowUnsafeMigrations === slot.release }),
      {
        triggers: [...triggers(0), slot.migrations],
        dependsOn: [fetch[0], ...this.args.ready],
        updateIsNoop: true,
      },
    );
    const backup = this.step(
      `${colour}-backup`,
      0,
      pulumi
        .all([this.args.backupBucket, this.args.mediaBucket])
        .apply(([backupBucket, mediaBucket]) =>
          steps.backup({ ...this.common, ...inWindow, backupBucket, mediaBucket }),
        ),
      {
        triggers: triggers(0),
        dependsOn: [
          ...fetch,
          check,
          ...(this.restore ? [this.restore] : []),
          ...(maintenance ? this.maintenanceOn : []),
        ],
        updateIsNoop: true,
      },
    );
    const migrate = this.step(`${colour}-migrate`, 0, steps.migrate(inWindow), {
      triggers: triggers(0),
      dependsOn: [backup],
      updateIsNoop: true,
    });
    const activate = hosts.map((_, i) =>
      this.step(`${colour}-activate-${i}`, i, steps.activate({ ...inWindow, healthPath: cfg.healthPath }), {
        triggers: triggers(i),
        dependsOn: [migrate, fetch[i]],
        updateIsNoop: true,
      }),
    );
    this.slots[colour] = { fetch, check, backup, migrate, activate };
  }

  /** Old releases go once the new ones are active; a slot's release always stays. */
  private cleanup(): void {
    const cfg = this.args.config;
    this.args.hosts.hosts.forEach((h, i) => {
      const activations = COLOURS.flatMap((c) => (this.slots[c] ? [this.slots[c]!.activate[i]] : []));
      if (activations.length === 0) return;
      this.cleanups.push(
        this.step(`cleanup-${i}`, i, steps.cleanup({ app: cfg.app, keep: cfg.keepReleases }), {
          triggers: [cfg.slots.blue?.release ?? "", cfg.slots.green?.release ?? "", cfg.keepReleases, h.instance.id],
          dependsOn: activations,
          updateIsNoop: true,
        }),
      );
    });
  }

  /**
   * One step on host `host`. Its command comes from components/remote.ts; step.sh on the host
   * enforces commandTimeoutMinutes (customTimeouts only bound what the provider waits for).
   */
  private step(
    id: string,
    host: number,
    call: pulumi.Input<StepCall>,
    o: {
      triggers: pulumi.Input<unknown>[];
      dependsOn: pulumi.Resource[];
      /** Re-running on an input change (not a new release) would repeat work: print its result. */
      updateIsNoop?: boolean;
      /** What runs on the host when the step leaves the graph or is replaced (the old inputs'). */
      delete?: pulumi.Input<StepCall>;
    },
  ): remote.Command {
    const step = stepOf(id);
    const checked = (x: StepCall) => {
      if (x.step !== step) throw new Error(`${id} builds a ${x.step} step`);
      return x;
    };
    const c = pulumi.output(call).apply(checked);
    const minutes = this.args.config.commandTimeoutMinutes;
    const timeout = `${minutes}m`;
    const command = (x: StepCall) => createCommand(x, { timeoutSeconds: minutes * 60 });
    // Output that may come from the app's own code stays out of the logs and is secret.
    const quiet = QUIET_STEPS.includes(step);
    return new remote.Command(
      `${this.name}-${id}`,
      {
        connection: this.args.hosts.connection(host, stepUser(step)),
        create: c.apply(command),
        update: o.updateIsNoop ? c.apply((x) => updateCommand(x)) : undefined,
        delete: o.delete ? pulumi.output(o.delete).apply((x) => command(checked(x))) : undefined,
        triggers: o.triggers,
        addPreviousOutputInEnv: false,
        logging: quiet ? "stdout" : "stdoutAndStderr",
      },
      {
        parent: this,
        dependsOn: o.dependsOn,
        customTimeouts: { create: timeout, update: timeout, delete: timeout },
        additionalSecretOutputs: quiet ? ["stderr"] : [],
      },
    );
  }
}

/** The step a resource id names: "bootstrap-0", "blue-fetch-1", "restore", "maintenance-on-0". */
function stepOf(id: string): Step {
  const m = /^(?:blue-|green-)?([a-z]+)(?:-on|-off|-stop|-start)?(?:-\d+)?$/.exec(id);
  const step = m?.[1] as Step | undefined;
  if (!step || !STEPS.includes(step)) throw new Error(`not a step id: ${id}`);
  return step;
}

/** A step's stdout as JSON (what step.sh prints: the step's result, or its recorded result). */
function parseResult(o: pulumi.Output<string>): pulumi.Output<Record<string, unknown>> {
  return o.apply((s) => {
    try {
      return JSON.parse(s) as Record<string, unknown>;
    } catch {
      return { raw: s };
    }
  });
}
