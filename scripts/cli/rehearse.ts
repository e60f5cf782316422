// npm run rehearse [-- --stack qa|prod]
//
// The program's whole release flow, end to end, on local throwaway hosts: no AWS account
// needed. See test/rig/scenario.ts for the steps and README.md for what it proves. Needs
// root (network namespaces) and Debian's packages, which it installs when missing.
import { parseArgs } from "util";
import { rehearse } from "../../test/rig/scenario";
import { runCli } from "./lib/main";
import { CliError } from "./lib/stack";

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { stack: { type: "string", default: "qa" } } });
  if (!["qa", "prod"].includes(values.stack!)) throw new CliError(`--stack must be qa or prod, got "${values.stack}"`);
  const result = await rehearse({ stack: values.stack! });
  if (!result.ok) process.exitCode = 1;
}

if (require.main === module) runCli(main);
