// npm run status -- --stack qa [--json]
//
// Per host and colour: the release each slot serves, its gunicorn and its health answer, read
// from the hosts themselves (not from the stack's state); each host's disk use, the last backup
// it recorded, and the drift between the hosts and the stack: a slot serving another release
// than the last pulumi up put there or than the stack file asks for, an unhealthy slot, greenlight
// scripts other than this checkout's. Exits 0 without drift, 2 with drift, 1 when a host cannot
// be read.
import { parseArgs } from "util";
import { COLOURS } from "../../components/constants";
import { HostStatus, OpsError, drift, statusCommand } from "../../components/ops";
import { scriptsId } from "../../components/remote";
import { runCli } from "./lib/main";
import { hostName, loadStack, onEveryHost } from "./lib/ops";
import { CliError } from "./lib/stack";

const gb = (kb: number) => `${(kb / 1024 / 1024).toFixed(1)} GB`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { stack: { type: "string" }, json: { type: "boolean" }, dir: { type: "string" } },
  });
  if (!values.stack) throw new CliError("usage: npm run status -- --stack STACK [--json]");
  const s = loadStack(values.stack, values.dir);
  let command: string;
  try {
    command = statusCommand({ app: s.app, healthPath: s.healthPath });
  } catch (e) {
    if (e instanceof OpsError) throw new CliError(e.message);
    throw e;
  }
  const out: string[] = s.access.hosts.map(() => "");
  const { codes, errors } = await onEveryHost(s, () => command, {
    onStdout: (i) => ({ push: (c) => (out[i] += c.toString("utf8")), end: () => undefined }),
  });
  if (errors.length) throw new CliError(errors.join("; "));
  const statuses = out.map((text, i) => {
    if (codes[i] !== 0) throw new CliError(`${hostName(i)}: status failed (exit ${codes[i]}; its message is above)`);
    try {
      return { name: hostName(i), status: JSON.parse(text) as HostStatus };
    } catch {
      throw new CliError(`${hostName(i)}: status printed no JSON: ${text.slice(0, 200)}`);
    }
  });
  const configured = {
    blue: s.state.slots.blue?.release,
    green: s.state.slots.green?.release,
  };
  const found = drift(
    { deployed: s.access.releases, configured, liveColour: s.access.liveColour, scriptsId: scriptsId() },
    statuses,
  );
  if (values.json) {
    console.log(
      JSON.stringify(
        {
          stack: values.stack,
          liveColour: s.access.liveColour,
          hosts: statuses.map((x, i) => ({ name: x.name, address: s.access.hosts[i].address, ...x.status })),
          drift: found,
        },
        null,
        2,
      ),
    );
  } else {
    console.log(`stack ${values.stack}: the load balancer serves ${s.access.liveColour} (stack outputs)`);
    statuses.forEach(({ name, status }, i) => {
      const d = status.disk;
      console.log(
        `${name} ${s.access.hosts[i].address} (${status.hostname}): disk ${d.mount} ${d.usedPercent}% used, ${gb(d.availKb)} free`,
      );
      for (const c of COLOURS) {
        const slot = status.slots[c];
        const health = slot.health
          ? slot.health.code === 200 && slot.health.body.trim() === slot.release
            ? "healthy"
            : `unhealthy (HTTP ${slot.health.code})`
          : "no answer";
        console.log(
          `  ${c.padEnd(5)} ${(slot.release ?? "-").padEnd(20)} ${slot.process.padEnd(8)} ${slot.release ? health : ""}` +
            `${c === s.access.liveColour ? "  <- live" : ""}`.trimEnd(),
        );
      }
      const b = status.lastBackup;
      if (b)
        console.log(
          `  last backup: ${b.key ?? "?"} (${b.size ?? "?"} bytes, ${b.takenAt ?? "?"}, before ${b.release ?? "?"})`,
        );
    });
    console.log(found.length ? `drift:\n${found.map((f) => `  ${f.host}: ${f.what}`).join("\n")}` : "drift: none");
  }
  if (found.length) process.exitCode = 2;
}

if (require.main === module) runCli(main);
