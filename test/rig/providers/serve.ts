// Entry point of the stand-in provider plugins (bin/pulumi-resource-<name> runs this with
// <name> and the engine's address). The engine finds them on PATH as ambient plugins.
import { awsStandIn } from "./aws";
import { commandStandIn } from "./command";
import { randomStandIn } from "./random";
import { serve } from "./standIn";
import { tlsStandIn } from "./tls";

const PROVIDERS = { aws: awsStandIn, random: randomStandIn, tls: tlsStandIn, command: commandStandIn };

const [name, ...args] = process.argv.slice(2);
const p = PROVIDERS[name as keyof typeof PROVIDERS];
if (!p) {
  console.error(`no stand-in provider named ${name}; have ${Object.keys(PROVIDERS).join(", ")}`);
  process.exit(2);
}
void serve(p, args);
