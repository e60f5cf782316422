// npm run release -- --stack qa --artifact dist/site.tar.gz [--id r42] [--bucket NAME]
//
// Uploads the artifact to the stack's artifact bucket (content-addressed: releases/<sha256>.tar.gz),
// writes it into the idle slot of Pulumi.<stack>.yaml (with the migrations its manifest lists,
// which the preview then shows) and makes that slot live. Nothing changes
// on AWS until `pulumi up --stack <stack>`, which fetches, backs up, migrates, activates and
// only then moves the listener.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { parseArgs } from "util";
import { runCli } from "./lib/main";
import { pulumiJson } from "./lib/pulumiJson";
import {
  CliError,
  DeployedResource,
  artifactKey,
  planRelease,
  readState,
  servingColour,
  stackFile,
  writeConfig,
} from "./lib/stack";

const ROOT = path.resolve(__dirname, "..", "..");

/** A stack output, through the Pulumi CLI. */
export function stackOutput(stack: string, name: string): string {
  try {
    return execFileSync("pulumi", ["stack", "output", name, "--stack", stack], { encoding: "utf8" }).trim();
  } catch (e) {
    const err = e as { code?: string; stderr?: string };
    if (err.code === "ENOENT") {
      throw new CliError(`the Pulumi CLI is not installed: install it, or pass --bucket with the ${name} output`);
    }
    throw new CliError(`pulumi stack output ${name} --stack ${stack} failed: ${String(err.stderr ?? "").trim()}`);
  }
}

/**
 * The stack's resources from its state (`pulumi stack export`), or why they cannot be read
 * (no Pulumi CLI, not logged in, no passphrase...). Never a silent guess.
 */
export function deployedResources(stack: string): { resources?: DeployedResource[]; unreadable?: string } {
  const r = pulumiJson(["stack", "export", "--stack", stack], 256 << 20);
  if (r.ok) {
    const state = r.json as { deployment?: { resources?: DeployedResource[] } } | null;
    return { resources: state?.deployment?.resources ?? [] };
  }
  if (r.why === "no-cli") return { unreadable: "the Pulumi CLI is not installed" };
  if (r.why === "failed") return { unreadable: `pulumi stack export --stack ${stack} failed: ${r.last}` };
  return { unreadable: `pulumi stack export --stack ${stack} printed no JSON` };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      stack: { type: "string" },
      artifact: { type: "string" },
      id: { type: "string" },
      bucket: { type: "string" },
      dir: { type: "string" },
    },
  });
  if (!values.stack || !values.artifact) {
    throw new CliError("usage: npm run release -- --stack STACK --artifact FILE [--id ID] [--bucket NAME]");
  }
  const dir = values.dir ?? ROOT;
  const file = stackFile(values.stack, dir);
  const artifact = path.resolve(values.artifact);
  if (!fs.existsSync(artifact) || !fs.statSync(artifact).isFile()) {
    throw new CliError(`artifact ${values.artifact} does not exist (build one with npm run package-site -- DIR)`);
  }
  const text = fs.readFileSync(file, "utf8");
  // The migrations the artifact carries, for the preview to name (the hosts' fetch is what
  // checks the artifact itself).
  const { readManifest } = await import("./lib/artifact");
  const listed = await readManifest(artifact).then(
    (m) => m.migrations,
    () => undefined,
  );
  const migrations = Array.isArray(listed) ? listed.map(String) : undefined;
  if (!migrations) {
    console.log(`${values.artifact} lists no migrations in its manifest: pulumi preview will not name them`);
  }
  // The AWS SDK takes a while to load: only once the arguments are known to be good.
  const { s3Client, sha256File, uploadArtifact } = await import("./lib/upload");
  const sha256 = await sha256File(artifact);
  const key = artifactKey(sha256);
  // Also with --bucket: which slot serves is read from the state, never assumed.
  const deployed = deployedResources(values.stack);
  const serving = deployed.resources ? servingColour(deployed.resources) : undefined;
  const plan = planRelease(
    readState(text),
    { release: values.id ?? sha256.slice(0, 12), artifact: key, sha256, migrations },
    serving,
    deployed.unreadable,
  );

  const region = readRegion(text);
  const bucket = values.bucket ?? stackOutput(values.stack, "artifactBucket");
  const uploaded = await uploadArtifact(s3Client(region), bucket, key, artifact, sha256);
  fs.writeFileSync(file, writeConfig(text, plan.values));

  const id = plan.values[`${plan.slot}Release`];
  console.log(`${uploaded === "present" ? "already in" : "uploaded to"} s3://${bucket}/${key}`);
  if (plan.neverLive) {
    console.log(`release ${plan.neverLive} in ${plan.slot} never went live (the load balancer serves ${serving})`);
  }
  console.log(
    `release ${id} -> ${plan.slot} slot of ${values.stack}` +
      (plan.replaces ? ` (replacing ${plan.replaces})` : "") +
      (plan.previousLive ? `; ${plan.previousLive.release} stays in ${plan.previousLive.colour} for rollback` : ""),
  );
  if (plan.newMigrations) {
    const since = plan.previousLive ? ` (not in ${plan.previousLive.release})` : "";
    console.log(
      plan.newMigrations.length
        ? `migrations it adds${since}: ${plan.newMigrations.join(", ")}; ${plan.slot}-check judges them on the first host before the backup`
        : `no migrations it adds${since}`,
    );
  }
  console.log(`wrote ${path.relative(process.cwd(), file)}; next: pulumi up --stack ${values.stack}`);
}

function readRegion(text: string): string {
  const m = /^\s*aws:region:\s*["']?([a-z0-9-]+)/m.exec(text);
  if (!m) throw new CliError("the stack file sets no aws:region");
  return m[1];
}

if (require.main === module) runCli(main);
