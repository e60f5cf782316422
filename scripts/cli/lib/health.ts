// Before `npm run rollback` flips the listener: is the target colour healthy on every host right
// now? Asked on each host itself, over SSH as `pulumi up`'s steps reach it (the deploy key, the
// host key pinned from the stack's `knownHosts`, through the bastion when the hosts are private),
// with the same question the activate step's gate asks: does the slot's port answer the health
// path with the release id. (The ALB's own target health would only say "200", not which
// release, and lags its check interval.)
import { stackOutputsJson } from "./pulumiJson";
import { Client, ClientChannel, ConnectConfig, utils } from "ssh2";
import { Duplex } from "stream";
import { ADMIN, DEPLOY, healthProbeCommand } from "../../../components/remote";

/** What the rollback needs of `pulumi stack output --json --show-secrets`. */
export interface ReachOutputs {
  hosts: { id: string; address: string }[];
  bastion?: string;
  knownHosts: string;
  sshPrivateKey: string;
}

/** The stack's outputs for reaching the hosts, or why they cannot be read. */
export function reachOutputs(stack: string): { outputs?: ReachOutputs; unreadable?: string } {
  const r = stackOutputsJson(stack);
  if (!r.ok) {
    if (r.why === "no-cli") return { unreadable: "the Pulumi CLI is not installed" };
    if (r.why === "failed") return { unreadable: `pulumi stack output --stack ${stack} failed: ${r.last}` };
    return { unreadable: `pulumi stack output --stack ${stack} printed no JSON` };
  }
  const o = (r.json ?? {}) as Record<string, unknown>;
  const hosts = Array.isArray(o.hosts) ? (o.hosts as { id?: unknown; address?: unknown }[]) : [];
  if (
    hosts.length === 0 ||
    hosts.some((h) => typeof h.address !== "string") ||
    typeof o.knownHosts !== "string" ||
    typeof o.sshPrivateKey !== "string"
  ) {
    return { unreadable: `the stack's outputs have no hosts, knownHosts or sshPrivateKey (has pulumi up run?)` };
  }
  return {
    outputs: {
      hosts: hosts.map((h) => ({ id: String(h.id ?? ""), address: String(h.address) })),
      bastion: typeof o.bastion === "string" && o.bastion ? o.bastion : undefined,
      knownHosts: o.knownHosts,
      sshPrivateKey: o.sshPrivateKey,
    },
  };
}

/** One host's answer: `ok`, or what failed. */
export interface HostHealth {
  host: string;
  ok: boolean;
  why?: string;
}

/** The wire blob of the key pinned for `address` in known_hosts lines ("<address> <type> <base64>"). */
function pinnedKey(knownHosts: string, address: string): Buffer | undefined {
  for (const line of knownHosts.split("\n")) {
    const [names, ...key] = line.trim().split(/\s+/);
    if (!names || !names.split(",").includes(address)) continue;
    const parsed = utils.parseKey(key.join(" "));
    const k = Array.isArray(parsed) ? parsed[0] : parsed;
    if (k && !(k instanceof Error)) return k.getPublicSSH();
  }
  return undefined;
}

const TIMEOUT_MS = 20_000;

function connect(cfg: ConnectConfig, pinned: Buffer): Promise<Client> {
  return new Promise((resolve, reject) => {
    const c = new Client();
    let mismatch = false;
    c.once("ready", () => resolve(c));
    c.once("error", (e) =>
      reject(mismatch ? new Error(`its host key is not the one pinned in the stack's knownHosts`) : e),
    );
    c.connect({
      ...cfg,
      readyTimeout: 15_000,
      hostVerifier: (key: Buffer) => {
        mismatch = !key.equals(pinned);
        return !mismatch;
      },
    });
  });
}

function exec(c: Client, command: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    c.exec(command, (err, stream) => {
      if (err) return reject(err);
      let stdout = "";
      let stderr = "";
      let code = -1;
      stream.on("data", (d: Buffer) => (stdout += d.toString("utf8")));
      stream.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
      stream.on("exit", (n: number | null) => (code = n ?? -1));
      stream.on("close", () => resolve({ code, stdout, stderr }));
      stream.end();
    });
  });
}

/**
 * Asks `address` whether its `colour` slot (on `port`) answers `healthPath` with `release`.
 * Never throws: a failure to connect, a host key that is not the pinned one, a slot that does
 * not answer or answers another release, are each a `why`.
 */
export async function probeHost(
  o: ReachOutputs,
  address: string,
  port: number,
  healthPath: string,
  release: string,
): Promise<HostHealth> {
  const opened: Client[] = [];
  let timer: NodeJS.Timeout | undefined;
  const work = async (): Promise<HostHealth> => {
    const pinned = pinnedKey(o.knownHosts, address);
    if (!pinned) return { host: address, ok: false, why: "the stack's knownHosts has no key for it" };
    let sock: Duplex | undefined;
    if (o.bastion) {
      const bastionKey = pinnedKey(o.knownHosts, o.bastion);
      if (!bastionKey) return { host: address, ok: false, why: `the stack's knownHosts has no key for the bastion` };
      let jump: Client;
      try {
        jump = await connect({ host: o.bastion, port: 22, username: ADMIN, privateKey: o.sshPrivateKey }, bastionKey);
      } catch (e) {
        return { host: address, ok: false, why: `cannot reach the bastion ${o.bastion}: ${(e as Error).message}` };
      }
      opened.push(jump);
      try {
        sock = await new Promise<ClientChannel>((resolve, reject) =>
          jump.forwardOut("0.0.0.0", 0, address, 22, (err, s) => (err ? reject(err) : resolve(s))),
        );
      } catch (e) {
        return { host: address, ok: false, why: `the bastion cannot reach it: ${(e as Error).message}` };
      }
    }
    let c: Client;
    try {
      c = await connect({ host: address, port: 22, username: DEPLOY, privateKey: o.sshPrivateKey, sock }, pinned);
    } catch (e) {
      return { host: address, ok: false, why: `cannot connect over SSH: ${(e as Error).message}` };
    }
    opened.push(c);
    const r = await exec(c, healthProbeCommand(port, healthPath));
    if (r.code !== 0) {
      const said = (r.stderr.trim().split("\n").pop() ?? "").slice(0, 200);
      return {
        host: address,
        ok: false,
        why: `port ${port} did not answer ${healthPath}: ${said || `exit ${r.code}`}`,
      };
    }
    const body = r.stdout.trim();
    if (body !== release) {
      return {
        host: address,
        ok: false,
        why: `port ${port} answered ${JSON.stringify(body.slice(0, 80))}, not ${release}`,
      };
    }
    return { host: address, ok: true };
  };
  try {
    return await Promise.race([
      work(),
      new Promise<HostHealth>((resolve) => {
        timer = setTimeout(
          () => resolve({ host: address, ok: false, why: `no answer within ${TIMEOUT_MS / 1000} s` }),
          TIMEOUT_MS,
        );
      }),
    ]);
  } finally {
    if (timer) clearTimeout(timer);
    for (const c of opened.reverse()) c.end();
  }
}
