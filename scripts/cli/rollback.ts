// npm run rollback -- --stack qa
//
// Makes the other slot live again in Pulumi.<stack>.yaml. `pulumi up --stack <stack>` then
// changes one resource, the listener: no command runs, the previous release serves at once.
import * as fs from "fs";
import * as path from "path";
import { parseArgs } from "util";
import { runCli } from "./lib/main";
import { CliError, planRollback, readState, stackFile, writeConfig } from "./lib/stack";
import { deployedResources } from "./release";

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { stack: { type: "string" }, dir: { type: "string" } } });
  if (!values.stack) throw new CliError("usage: npm run rollback -- --stack STACK");
  const file = stackFile(values.stack, values.dir ?? path.resolve(__dirname, "..", ".."));
  const text = fs.readFileSync(file, "utf8");
  const plan = planRollback(readState(text), deployedResources(values.stack));
  fs.writeFileSync(file, writeConfig(text, plan.values));
  console.log(`live: ${plan.from} -> ${plan.to} (release ${plan.release}) in ${path.relative(process.cwd(), file)}`);
  console.log(`next: pulumi up --stack ${values.stack}`);
}

if (require.main === module) runCli(main);
