// npm run rollback -- --stack qa
//
// Makes the other slot live again in Pulumi.<stack>.yaml. `pulumi up --stack <stack>` then
// changes one resource, the listener: no command runs, the previous release serves at once.
// Before it writes anything it looks: the stack's state must show the other slot's release
// activated on every host, and each host, asked over SSH, must answer that release on the
// slot's health path right now (lib/health.ts).
import * as fs from "fs";
import * as path from "path";
import { parseArgs } from "util";
import { runCli } from "./lib/main";
import { CONFIG_SCHEMA } from "../../components/config";
import { SLOT_PORTS } from "../../components/constants";
import { probeHost, reachOutputs } from "./lib/health";
import { CliError, planRollback, readState, refuseUnhealthy, stackFile, writeConfig } from "./lib/stack";
import { deployedResources } from "./release";
import { parseDocument } from "yaml";

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { stack: { type: "string" }, dir: { type: "string" } } });
  if (!values.stack) throw new CliError("usage: npm run rollback -- --stack STACK");
  const file = stackFile(values.stack, values.dir ?? path.resolve(__dirname, "..", ".."));
  const text = fs.readFileSync(file, "utf8");
  const plan = planRollback(readState(text), deployedResources(values.stack));
  const healthPath = configured(text, "healthPath");
  const reach = reachOutputs(values.stack);
  const answers = reach.outputs
    ? await Promise.all(
        reach.outputs.hosts.map((h) =>
          probeHost(reach.outputs!, h.address, SLOT_PORTS[plan.to], healthPath, plan.release),
        ),
      )
    : [];
  refuseUnhealthy(plan.to, plan.release, answers, reach.unreadable);
  console.log(`${plan.to} serves ${plan.release} on every host (${answers.map((a) => a.host).join(", ")})`);
  fs.writeFileSync(file, writeConfig(text, plan.values));
  console.log(`live: ${plan.from} -> ${plan.to} (release ${plan.release}) in ${path.relative(process.cwd(), file)}`);
  console.log(`next: pulumi up --stack ${values.stack}`);
}

/** greenlight:<key> of the stack file, or its default; validated as the program validates it. */
function configured(text: string, key: "healthPath"): string {
  const spec = CONFIG_SCHEMA[key];
  const raw = parseDocument(text).getIn(["config", `greenlight:${key}`]);
  const value = raw === undefined || raw === null ? spec.default : String(raw);
  const parsed = spec.parse(value);
  if (typeof parsed !== "string") {
    throw new CliError(`greenlight:${key} = "${value}" is not allowed; allowed: ${spec.allowed}`);
  }
  return parsed;
}

if (require.main === module) runCli(main);
