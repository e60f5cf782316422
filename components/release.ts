import * as pulumi from "@pulumi/pulumi";
import { remote } from "@pulumi/command";
import { COLOURS, Colour, EnvConfig, SLOT_PORTS } from "./config";
import { ADMIN_USER, DEPLOY_USER, Hosts } from "./hosts";
import { NOTHING_TO_REDO, Step, remoteCommand, scriptId } from "./remote";

export interface ReleaseArgs {
  config: EnvConfig;
  hosts: Hosts;
  artifactBucket: pulumi.Input<string>;
  backupBucket: pulumi.Input<string>;
  vpcCidr: string;
  /** What must exist before a step reads the database or SSM (the database, the parameters). */
  ready: pulumi.Resource[];
  /** A digest of every setting's value (secret): a change re-renders .env on every host. */
  settingsDigest: pulumi.Input<string>;
}

export interface SlotSteps {
  fetch: remote.Command[];
  backup: remote.Command;
  migrate: remote.Command;
  activate: remote.Command[];
}

/**
 * The release graph, as `@pulumi/command` steps over SSH:
 *
 *   bootstrap-0 -> bootstrap-1 -> ...                      (host after host)
 *   settings-<i>            every host, when a setting or secret changes
 *   <colour>-fetch-<i>      on every host, after its bootstrap
 *   <colour>-backup         first host, after every fetch of the colour
 *   <colour>-migrate        first host, after the backup
 *   <colour>-activate-<i>   every host, after the migrate
 *   cleanup-<i>             every host, after its activations
 *
 * Each step's `triggers` are the slot's release id and sha256 (and the host's instance id),
 * so it runs once per release and again only on a replaced host. The load balancer's
 * forwarding listener depends on every activation of the live colour: a failure anywhere
 * stops the graph before the cutover. Flipping `live` changes no step here.
 */
export class Release extends pulumi.ComponentResource {
  readonly bootstraps: remote.Command[] = [];
  readonly settings: remote.Command[] = [];
  readonly slots: Partial<Record<Colour, SlotSteps>> = {};
  readonly restore?: remote.Command;
  readonly lastBackup: pulumi.Output<Record<string, unknown> | null>;
  readonly migrations: pulumi.Output<Record<string, unknown>>;
  readonly backups: pulumi.Output<Record<string, unknown>>;

  constructor(name: string, args: ReleaseArgs, opts?: pulumi.ComponentResourceOptions) {
    super("greenlight:release:Release", name, {}, opts);
    const cfg = args.config;
    const hosts = args.hosts.hosts;
    const timeout = `${cfg.commandTimeoutMinutes}m`;
    const timeouts = { create: timeout, update: timeout, delete: timeout };

    const command = (
      id: string,
      host: number,
      step: Step,
      values: pulumi.Input<Record<string, pulumi.Input<string>>>,
      o: {
        triggers: pulumi.Input<unknown>[];
        dependsOn: pulumi.Resource[];
        /** Re-running on an input change (not a new release) would repeat work: do nothing. */
        updateIsNoop?: boolean;
        /** Output may come from the app's own code: keep it out of the logs and mark it secret. */
        quiet?: boolean;
      },
    ) => {
      const admin = step === "bootstrap";
      return new remote.Command(
        `${name}-${id}`,
        {
          connection: args.hosts.connection(host, admin ? ADMIN_USER : DEPLOY_USER),
          create: pulumi.output(values).apply((v) => remoteCommand(step, v as Record<string, string>, { sudo: admin })),
          update: o.updateIsNoop ? NOTHING_TO_REDO : undefined,
          triggers: o.triggers,
          addPreviousOutputInEnv: false,
          logging: o.quiet ? "stdout" : "stdoutAndStderr",
        },
        {
          parent: this,
          dependsOn: o.dependsOn,
          customTimeouts: timeouts,
          additionalSecretOutputs: o.quiet ? ["stderr"] : [],
        },
      );
    };

    hosts.forEach((h, i) => {
      this.bootstraps.push(
        command(
          `bootstrap-${i}`,
          i,
          "bootstrap",
          {
            GL_APP: cfg.app,
            GL_DEPLOY_KEY: args.hosts.deployKey.publicKeyOpenssh.apply((k) => k.trim()),
            GL_VPC_CIDR: args.vpcCidr,
            GL_BLUE_PORT: String(SLOT_PORTS.blue),
            GL_GREEN_PORT: String(SLOT_PORTS.green),
            GL_PG_MAJOR: cfg.db.engineVersion,
            GL_BOOTSTRAP_ID: scriptId("bootstrap"),
          },
          {
            triggers: [scriptId("bootstrap"), h.instance.id],
            // Host after host: a broken bootstrap stops at the first host.
            dependsOn: i > 0 ? [this.bootstraps[i - 1]] : [],
          },
        ),
      );
    });

    const common = { GL_APP: cfg.app, GL_PARAMETER_PATH: cfg.parameterPath, GL_REGION: cfg.region };

    // A rotated secret or a changed setting reaches every host at once: .env is rendered again
    // and running slots reload gracefully. The digest is secret; it only says "changed".
    hosts.forEach((h, i) => {
      this.settings.push(
        command(`settings-${i}`, i, "settings", common, {
          triggers: [args.settingsDigest, h.instance.id],
          dependsOn: [this.bootstraps[i], ...args.ready],
          updateIsNoop: true,
        }),
      );
    });

    if (cfg.restoreBackup) {
      this.restore = command(
        "restore",
        0,
        "restore",
        { ...common, GL_BACKUP_BUCKET: args.backupBucket, GL_BACKUP_KEY: cfg.restoreBackup },
        // Only a new key restores: a replaced host or a changed connection must never repeat it.
        {
          triggers: [cfg.restoreBackup],
          dependsOn: [this.bootstraps[0], ...args.ready],
          updateIsNoop: true,
          quiet: true,
        },
      );
    }

    for (const colour of COLOURS) {
      const slot = cfg.slots[colour];
      if (!slot) continue;
      const rel = { GL_RELEASE: slot.release };
      const triggers = (i: number) => [slot.release, slot.sha256, hosts[i].instance.id];
      const fetch = hosts.map((_, i) =>
        command(
          `${colour}-fetch-${i}`,
          i,
          "fetch",
          {
            ...common,
            ...rel,
            GL_SLOT: colour,
            GL_ARTIFACT_BUCKET: args.artifactBucket,
            GL_ARTIFACT_KEY: slot.artifact,
            GL_SHA256: slot.sha256,
            GL_WORKERS: String(cfg.workers),
          },
          { triggers: triggers(i), dependsOn: [this.bootstraps[i], ...args.ready], updateIsNoop: true },
        ),
      );
      const backup = command(
        `${colour}-backup`,
        0,
        "backup",
        { ...common, ...rel, GL_BACKUP_BUCKET: args.backupBucket },
        {
          triggers: triggers(0),
          dependsOn: [...fetch, ...(this.restore ? [this.restore] : [])],
          updateIsNoop: true,
        },
      );
      const migrate = command(
        `${colour}-migrate`,
        0,
        "migrate",
        { GL_APP: cfg.app, ...rel },
        { triggers: triggers(0), dependsOn: [backup], updateIsNoop: true, quiet: true },
      );
      const activate = hosts.map((_, i) =>
        command(
          `${colour}-activate-${i}`,
          i,
          "activate",
          {
            GL_APP: cfg.app,
            ...rel,
            GL_SLOT: colour,
            GL_PORT: String(SLOT_PORTS[colour]),
            GL_HEALTH_PATH: cfg.healthPath,
          },
          { triggers: triggers(i), dependsOn: [migrate, fetch[i]], updateIsNoop: true },
        ),
      );
      this.slots[colour] = { fetch, backup, migrate, activate };
    }

    hosts.forEach((h, i) => {
      const activations = COLOURS.flatMap((c) => (this.slots[c] ? [this.slots[c]!.activate[i]] : []));
      if (activations.length === 0) return;
      command(
        `cleanup-${i}`,
        i,
        "cleanup",
        { GL_APP: cfg.app, GL_KEEP: String(cfg.keepReleases) },
        {
          triggers: [cfg.slots.blue?.release ?? "", cfg.slots.green?.release ?? "", cfg.keepReleases, h.instance.id],
          dependsOn: activations,
          updateIsNoop: true,
        },
      );
    });

    const parse = (o: pulumi.Output<string>) =>
      o.apply((s) => {
        try {
          return JSON.parse(s) as Record<string, unknown>;
        } catch {
          return { raw: s };
        }
      });
    const perColour = (pick: (s: SlotSteps) => remote.Command) =>
      pulumi
        .all(
          COLOURS.filter((c) => this.slots[c]).map((c) =>
            parse(pick(this.slots[c]!).stdout).apply((v) => [c, v] as const),
          ),
        )
        .apply((entries) => Object.fromEntries(entries) as Record<string, Record<string, unknown>>);
    this.backups = perColour((s) => s.backup);
    this.migrations = perColour((s) => s.migrate);
    this.lastBackup = this.backups.apply((b): Record<string, unknown> | null => {
      const all = Object.values(b as Record<string, Record<string, unknown>>).filter(
        (x) => typeof x.takenAt === "string",
      );
      all.sort((x, y) => String(y.takenAt).localeCompare(String(x.takenAt)));
      return all[0] ?? null;
    });

    this.registerOutputs({ lastBackup: this.lastBackup, migrations: this.migrations, backups: this.backups });
  }

  /** Activations of a colour: what the cutover to it waits for. */
  activations(colour: Colour): remote.Command[] {
    return this.slots[colour]?.activate ?? [];
  }
}
