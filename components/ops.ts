// The day-to-day commands (`npm run manage`, `logs`, `status`) and the `sshConfig` output, built
// in one pure place like the release steps (components/remote.ts): what to connect to, as whom,
// with which pinned keys, and the exact command each runs on a host. scripts/cli/{manage,logs,
// status}.ts run them over SSH; the unit and host tests call the same functions.
//
// Everything comes from the stack's outputs (`pulumi stack output --json --show-secrets`): the
// hosts' addresses, the bastion, `knownHosts` (the generated host keys, pinned in every
// connection) and the deploy key. The commands run as `deploy`, whose sudoers on the hosts lets
// it act as `app` with a release's Python and read its slots' state, nothing more.
import * as fs from "fs";
import * as path from "path";
import { COLOURS, Colour, SLOT_PORTS } from "./constants";
import { ADMIN, DEPLOY, shellQuote } from "./remote";

/** Where the host-side scripts of these commands live (sent with each command, not installed). */
export const OPS_SCRIPT_DIR = path.resolve(__dirname, "..", "scripts", "ops");

export interface Endpoint {
  address: string;
  /** "ssh-ed25519 AAAA...", from knownHosts. */
  hostKey: string;
}

/** What the day-to-day commands need from a deployed stack. */
export interface StackAccess {
  stack: string;
  hosts: (Endpoint & { id: string })[];
  bastion?: Endpoint;
  privateKey: string;
  liveColour: Colour;
  /** What the last `pulumi up` put in each slot. */
  releases: Record<Colour, string | undefined>;
}

/** The connection of ssh2 / @pulumi/command's ConnectionArgs, as Hosts.connection builds it. */
export interface OpsConnection {
  host: string;
  port: number;
  user: string;
  privateKey: string;
  hostKey: string;
  proxy?: Omit<OpsConnection, "proxy">;
}

/** Refusal for the user: one line, no stack trace (the CLIs print it as `error: ...`). */
export class OpsError extends Error {}

/** `address key` lines (the knownHosts output) as a map. */
export function parseKnownHosts(text: string): Map<string, string> {
  const keys = new Map<string, string>();
  for (const line of text.split("\n")) {
    const [address, type, blob] = line.trim().split(/\s+/);
    if (address && type && blob) keys.set(address, `${type} ${blob}`);
  }
  return keys;
}

/**
 * The stack's outputs as the commands need them, or a refusal that says what is missing: a stack
 * that was never `pulumi up`'d has no outputs, one whose hosts are not up has no host keys.
 */
export function stackAccess(stack: string, outputs: Record<string, unknown>): StackAccess {
  const notDeployed = (why: string) =>
    new OpsError(`stack ${stack} is not deployed (${why}): run pulumi up --stack ${stack} first`);
  const hosts = outputs.hosts;
  if (!Array.isArray(hosts) || hosts.length === 0) throw notDeployed("its outputs have no hosts");
  if (typeof outputs.knownHosts !== "string") throw notDeployed("its outputs have no knownHosts");
  if (typeof outputs.sshPrivateKey !== "string" || !outputs.sshPrivateKey.includes("PRIVATE KEY")) {
    throw notDeployed("its outputs have no sshPrivateKey (read with --show-secrets)");
  }
  const keys = parseKnownHosts(outputs.knownHosts);
  const endpoint = (address: unknown, what: string): Endpoint => {
    if (typeof address !== "string" || address === "") throw notDeployed(`${what} has no address`);
    const hostKey = keys.get(address);
    if (!hostKey) throw notDeployed(`knownHosts pins no key for ${what} ${address}`);
    return { address, hostKey };
  };
  const bastion =
    typeof outputs.bastion === "string" && outputs.bastion ? endpoint(outputs.bastion, "the bastion") : undefined;
  const live = outputs.liveColour;
  const releases = (outputs.releases ?? {}) as Record<string, { release?: string } | null>;
  return {
    stack,
    hosts: hosts.map((h: { id?: unknown; address?: unknown }, i) => ({
      id: String(h?.id ?? ""),
      ...endpoint(h?.address, `host ${i}`),
    })),
    bastion,
    privateKey: outputs.sshPrivateKey,
    liveColour: COLOURS.includes(live as Colour) ? (live as Colour) : "blue",
    releases: { blue: releases.blue?.release || undefined, green: releases.green?.release || undefined },
  };
}

/**
 * How the commands reach host `i`: as deploy, its pinned host key, and for private hosts
 * through the bastion (as admin with the deploy key, which there may only forward: the same
 * jump the release steps make, Hosts.connection).
 */
export function opsConnection(access: StackAccess, i: number): OpsConnection {
  const h = access.hosts[i];
  if (!h) {
    throw new OpsError(
      `stack ${access.stack} has ${access.hosts.length} host${access.hosts.length === 1 ? "" : "s"}: --host ${i} is not one (0-${access.hosts.length - 1})`,
    );
  }
  const base = { port: 22, privateKey: access.privateKey };
  return {
    ...base,
    host: h.address,
    user: DEPLOY,
    hostKey: h.hostKey,
    ...(access.bastion
      ? { proxy: { ...base, host: access.bastion.address, user: ADMIN, hostKey: access.bastion.hostKey } }
      : {}),
  };
}

/** The app's directory on a host; app names are checked by config.ts (VALUES.app). */
const appRoot = (app: string) => {
  if (!/^[a-z][a-z0-9]{1,15}$/.test(app)) throw new OpsError(`"${app}" is not an app name`);
  return `/srv/${app}`;
};

/** Prints the --settings value of the manifest's migrate argv, or nothing. */
const MANIFEST_SETTINGS = [
  "import json, sys",
  'm = json.load(open(sys.argv[1])).get("migrate") or []',
  "for i, a in enumerate(m):",
  '    if a.startswith("--settings="): print(a[len("--settings="):])',
  '    elif a == "--settings" and i + 1 < len(m): print(m[i + 1])',
].join("\n");

/**
 * `manage.py <args>` in the release slot `slot` serves, as the app user, with that release's
 * venv (sudoers allows exactly `releases/<id>/venv/bin/python` as app) and its `.env` (the
 * release's link to shared/.env, which the site's settings read). Every argument is one quoted
 * word: nothing in it is expanded on the host.
 */
export function manageCommand(a: { app: string; slot: Colour; args: string[] }): string {
  const root = appRoot(a.app);
  if (a.args.length === 0) throw new OpsError("no manage.py command given (e.g. -- createsuperuser)");
  for (const arg of a.args) {
    if (/[\0\r\n]/.test(arg)) throw new OpsError("a manage.py argument must be one line");
  }
  // The settings the release's migrate runs with (greenlight.json may pass --settings, as a
  // cookiecutter-django site must): manage.py would otherwise take its own default, often the
  // local settings. A --settings of the user's own wins.
  const own = a.args.some((x) => x === "--settings" || x.startsWith("--settings="));
  const settings = own
    ? ""
    : `settings=$(/usr/bin/python3 -c ${shellQuote(MANIFEST_SETTINGS)} "$rel/manifest.json") || exit 1; `;
  return (
    `rel=$(readlink -e ${root}/${a.slot}) && [ -f "$rel/manage.py" ] || ` +
    `{ echo "greenlight manage: slot ${a.slot} serves no release on $(hostname)" >&2; exit 1; }; ` +
    settings +
    `cd "$rel" && exec sudo -n -u app -- "$rel/venv/bin/python" manage.py ${a.args.map(shellQuote).join(" ")}` +
    (own ? "" : ` \${settings:+"--settings=$settings"}`)
  );
}

/** A host-side script of these commands, run as `bash -c <script> <name> <args...>`. */
function scriptCommand(name: string, args: string[], dir = OPS_SCRIPT_DIR): string {
  const script = fs.readFileSync(path.join(dir, `${name}.sh`), "utf8");
  return ["bash", "-c", shellQuote(script), `greenlight-${name}`, ...args.map(shellQuote)].join(" ");
}

/**
 * The logs of the app (gunicorn, per slot) and nginx (each slot's access log and the error
 * log), each line prefixed with its source. `follow` keeps reading until the SSH session
 * closes (the script ends its readers when its stdin does). `grep` is an extended regex,
 * applied on the host.
 */
export function logsCommand(a: {
  app: string;
  slots: Colour[];
  follow: boolean;
  lines: number;
  grep?: string;
}): string {
  appRoot(a.app);
  if (!Number.isInteger(a.lines) || a.lines < 0 || a.lines > 100_000) throw new OpsError("--lines: 0 to 100000");
  if (a.grep !== undefined && /[\0\r\n]/.test(a.grep)) throw new OpsError("--grep must be one line");
  return scriptCommand("logs", [a.app, a.follow ? "1" : "0", String(a.lines), a.grep ?? "", ...a.slots]);
}

/** One JSON object about the host: each slot's release, process and health, disk, last backup. */
export function statusCommand(a: { app: string; healthPath: string }): string {
  appRoot(a.app);
  if (!/^\/[A-Za-z0-9/._-]{0,100}$/.test(a.healthPath)) throw new OpsError(`"${a.healthPath}" is not a health path`);
  return scriptCommand("status", [a.app, a.healthPath, String(SLOT_PORTS.blue), String(SLOT_PORTS.green)]);
}

export interface HostStatus {
  hostname: string;
  slots: Record<Colour, { release: string | null; process: string; health: { code: number; body: string } | null }>;
  disk: { mount: string; sizeKb: number; usedKb: number; availKb: number; usedPercent: number };
  lastBackup: { key?: string; size?: number; takenAt?: string; release?: string } | null;
  scripts: string[];
}

/** What `status` reports for one host, against the stack. */
export interface Drift {
  host: string;
  what: string;
}

/**
 * Differences between what the hosts run and what the stack says: a slot whose release is not
 * the one the last `pulumi up` put there (the outputs), or not the one the stack file asks for
 * (a `pulumi up` is pending), a serving slot that fails its health check, hosts that disagree,
 * and scripts other than this checkout's.
 */
export function drift(
  a: {
    /** What the last `pulumi up` deployed (the stack's outputs). */
    deployed: Record<Colour, string | undefined>;
    /** What the stack file asks for now. */
    configured: Record<Colour, string | undefined>;
    liveColour: Colour;
    scriptsId: string;
  },
  hosts: { name: string; status: HostStatus }[],
): Drift[] {
  const out: Drift[] = [];
  for (const { name, status } of hosts) {
    for (const c of COLOURS) {
      const s = status.slots[c];
      const have = s.release ?? undefined;
      if (have !== a.deployed[c]) {
        out.push({
          host: name,
          what: `${c} serves ${have ?? "nothing"}, the stack's last pulumi up put ${a.deployed[c] ?? "nothing"} there`,
        });
      } else if (have !== a.configured[c]) {
        out.push({
          host: name,
          what: `${c} serves ${have ?? "nothing"}, the stack file asks for ${a.configured[c] ?? "nothing"} (pulumi up is pending)`,
        });
      }
      if (have && (s.health?.code !== 200 || s.health.body.trim() !== have)) {
        const got = s.health
          ? `HTTP ${s.health.code} ${JSON.stringify(s.health.body.trim().slice(0, 60))}`
          : "no answer";
        out.push({ host: name, what: `${c}${c === a.liveColour ? " (live)" : ""} is not healthy: ${got}` });
      }
    }
    if (!status.scripts.includes(a.scriptsId)) {
      out.push({
        host: name,
        what: `greenlight scripts ${a.scriptsId} of this checkout are not installed (host has ${status.scripts.join(", ") || "none"}): pulumi up installs them`,
      });
    }
  }
  return out;
}

/**
 * An OpenSSH client config for the stack: one `Host` per host (`<stack>-0`, ...) and the bastion
 * (`<stack>-bastion`), each with its address, the deploy user, the stack's key and a
 * known_hosts file of the pinned keys; private hosts jump through the bastion with ProxyJump,
 * which (unlike `ssh -J`) takes the bastion's own `Host` entry and so its IdentityFile. The key
 * and known_hosts paths are placeholders the README's commands fill in, or given paths.
 */
export function sshConfig(a: {
  stack: string;
  hosts: string[];
  bastion?: string;
  identityFile?: string;
  knownHostsFile?: string;
}): string {
  const identity = a.identityFile ?? `greenlight-${a.stack}.key`;
  const known = a.knownHostsFile ?? `greenlight-${a.stack}.known_hosts`;
  const common = [
    `  IdentityFile ${identity}`,
    "  IdentitiesOnly yes",
    `  UserKnownHostsFile ${known}`,
    "  StrictHostKeyChecking yes",
  ];
  const blocks = [`# greenlight ${a.stack}: ssh -F <this file> ${a.stack}-0`];
  if (a.bastion) {
    blocks.push([`Host ${a.stack}-bastion`, `  HostName ${a.bastion}`, `  User ${ADMIN}`, ...common].join("\n"));
  }
  a.hosts.forEach((address, i) => {
    blocks.push(
      [
        `Host ${a.stack}-${i}`,
        `  HostName ${address}`,
        `  User ${DEPLOY}`,
        ...common,
        ...(a.bastion ? [`  ProxyJump ${a.stack}-bastion`] : []),
      ].join("\n"),
    );
  });
  return blocks.join("\n\n") + "\n";
}
