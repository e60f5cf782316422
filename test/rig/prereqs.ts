// What the host tests need from the machine. They never skip: either everything is there
// (or gets installed, when we are root) or the suite fails at once saying what is missing.
import { spawnSync } from "child_process";
import * as fs from "fs";

/** Debian packages the rig hosts and the scripts run on them need (Debian 12). */
export const HOST_TEST_PACKAGES = [
  "openssh-server",
  "openssh-client",
  "postgresql",
  "postgresql-client",
  "nginx",
  "supervisor",
  "python3-venv",
  "python3-pip",
  "awscli",
  "python3-boto3",
  "shellcheck",
  "curl",
  "sudo",
  "iproute2",
  "tini",
  "unattended-upgrades",
  "logrotate",
  "redis-server",
] as const;

/** Binaries the rig itself calls, with the package that brings each (util-linux and openssl are essential/base). */
const RIG_BINARIES: [string, string][] = [
  ["/usr/sbin/sshd", "openssh-server"],
  ["/usr/bin/ssh-keygen", "openssh-client"],
  ["/usr/lib/postgresql/15/bin/postgres", "postgresql-15"],
  ["/usr/bin/psql", "postgresql-client"],
  ["/usr/sbin/nginx", "nginx"],
  ["/usr/bin/supervisord", "supervisor"],
  ["/usr/bin/tini", "tini"],
  ["/usr/sbin/ip", "iproute2"],
  ["/usr/bin/sudo", "sudo"],
  ["/usr/bin/curl", "curl"],
  ["/usr/bin/unshare", "util-linux"],
  ["/usr/bin/nsenter", "util-linux"],
  ["/usr/bin/setpriv", "util-linux"],
  ["/usr/sbin/runuser", "util-linux"],
  ["/usr/bin/openssl", "openssl"],
  ["/usr/bin/redis-server", "redis-server"],
];

function sh(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): { code: number; out: string } {
  const r = spawnSync(cmd, args, { encoding: "utf8", env, timeout: 30 * 60_000 });
  return { code: r.status ?? -1, out: `${r.stdout ?? ""}${r.stderr ?? ""}${r.error ? r.error.message : ""}` };
}

/** Packages of `wanted` that dpkg does not list as installed. */
function missingPackages(wanted: readonly string[]): string[] {
  const r = sh("dpkg-query", ["-W", "-f=${Package} ${db:Status-Abbrev}\\n", ...wanted]);
  const installed = new Set(
    r.out
      .split("\n")
      .map((l) => l.trim().split(/\s+/))
      .filter(([, status]) => status === "ii")
      .map(([name]) => name.replace(/:.*$/, "")),
  );
  return wanted.filter((p) => !installed.has(p));
}

function missingBinaries(): string[] {
  return [...new Set(RIG_BINARIES.filter(([bin]) => !fs.existsSync(bin)).map(([, pkg]) => pkg))];
}

function installCommand(pkgs: string[]): string {
  return `apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${pkgs.join(" ")}`;
}

let aptUpdated = false;
let checked = false;

/**
 * Makes sure the machine can run the host tests: root, the Debian packages, network and
 * mount/pid namespaces. Installs missing packages when root; throws an Error saying what
 * is missing and how to install it otherwise.
 */
export function ensureHostPrerequisites(opts: { log?: (line: string) => void } = {}): void {
  if (checked) return;
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const isRoot = process.getuid?.() === 0;
  const missing = [...new Set([...missingPackages(HOST_TEST_PACKAGES), ...missingBinaries()])];

  if (!isRoot) {
    const parts = ["The host tests need root: they create network, mount and pid namespaces for local test hosts."];
    if (missing.length)
      parts.push(`Missing Debian packages: ${missing.join(", ")}. Install with:\n  sudo ${installCommand(missing)}`);
    parts.push("Then run the host tests as root (CI runs them as root).");
    throw new Error(parts.join("\n"));
  }

  if (missing.length) {
    log(`host tests: installing missing Debian packages: ${missing.join(" ")}`);
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    if (!aptUpdated) {
      const u = sh("apt-get", ["update"], env);
      if (u.code !== 0) throw new Error(`apt-get update failed (exit ${u.code}):\n${u.out.slice(-4000)}`);
      aptUpdated = true;
    }
    const r = sh("apt-get", ["install", "-y", "--no-install-recommends", ...missing], env);
    if (r.code !== 0) {
      throw new Error(
        `Installing ${missing.join(" ")} failed (exit ${r.code}). Run by hand:\n  ${installCommand(missing)}\n${r.out.slice(-4000)}`,
      );
    }
    const still = [...new Set([...missingPackages(HOST_TEST_PACKAGES), ...missingBinaries()])];
    if (still.length) throw new Error(`Still missing after apt-get install: ${still.join(", ")}`);
  }

  checkKernel();
  checked = true;
}

/** The rig needs network namespaces, veth pairs, bridges and mount+pid namespaces. */
function checkKernel(): void {
  const probe = `gltprobe${process.pid}`.slice(0, 15);
  const add = sh("ip", ["netns", "add", probe]);
  if (add.code !== 0) {
    throw new Error(
      `The host tests need network namespaces, but 'ip netns add' failed: ${add.out.trim()}\n` +
        "Run them as root on a kernel with CONFIG_NET_NS (in a container: --privileged or CAP_SYS_ADMIN + CAP_NET_ADMIN).",
    );
  }
  try {
    const veth = sh("ip", ["link", "add", probe, "type", "veth", "peer", "name", "eth0", "netns", probe]);
    if (veth.code !== 0)
      throw new Error(`The host tests need veth pairs, but 'ip link add type veth' failed: ${veth.out.trim()}`);
    sh("ip", ["link", "del", probe]);
    const br = sh("ip", ["link", "add", probe, "type", "bridge"]);
    if (br.code !== 0)
      throw new Error(`The host tests need a bridge, but 'ip link add type bridge' failed: ${br.out.trim()}`);
    sh("ip", ["link", "del", probe]);
    const ns = sh("unshare", ["--mount", "--uts", "--ipc", "--pid", "--fork", "--mount-proc", "--", "true"]);
    if (ns.code !== 0) {
      throw new Error(`The host tests need mount, uts, ipc and pid namespaces, but unshare failed: ${ns.out.trim()}`);
    }
  } finally {
    sh("ip", ["netns", "del", probe]);
  }
}
