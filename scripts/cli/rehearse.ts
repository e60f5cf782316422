// npm run rehearse [-- --stack qa|prod]
// npm run rehearse -- --stack qa --artifact FILE [--release ID]
//
// The program's whole release flow, end to end, on local throwaway hosts: no AWS account
// needed. See test/rig/scenario.ts for the steps and README.md for what it proves. With
// --artifact, your own site instead (built by npm run package-site) as the first release:
// fetch, check, backup, migrate, activate, cutover, then its health path and / through the
// load balancer (test/rig/artifactRehearsal.ts). Needs root (network namespaces) and Debian's
// packages, which it installs when missing.
import * as path from "path";
import { parseArgs } from "util";
import { isReleaseId, VALUES } from "../../components/constants";
import { runCli } from "./lib/main";
import { CliError } from "./lib/stack";

const USAGE = "usage: npm run rehearse -- [--stack qa|prod] [--artifact FILE [--release ID]]";

async function main(): Promise<void> {
  let values: { stack?: string; artifact?: string; release?: string };
  try {
    ({ values } = parseArgs({
      options: {
        stack: { type: "string", default: "qa" },
        artifact: { type: "string" },
        release: { type: "string" },
      },
    }));
  } catch (e) {
    throw new CliError(`${(e as Error).message.split("\n")[0]}; ${USAGE}`);
  }
  if (!["qa", "prod"].includes(values.stack!)) throw new CliError(`--stack must be qa or prod, got "${values.stack}"`);
  if (values.release !== undefined && values.artifact === undefined) {
    throw new CliError(`--release names the release of --artifact FILE; ${USAGE}`);
  }
  if (values.release !== undefined && !isReleaseId(values.release)) {
    throw new CliError(`--release "${values.release}" is not ${VALUES.release.what}`);
  }
  if (values.artifact !== undefined) {
    // Refused here, before anything starts: a missing file, another archive, another Python.
    const { ArtifactError, checkArtifactFile } = await import("./lib/artifact");
    const file = path.resolve(values.artifact);
    await checkArtifactFile(file).catch((e: unknown) => {
      throw e instanceof ArtifactError ? new CliError(e.message.split(file).join(values.artifact!)) : e;
    });
    const { rehearseArtifact } = await import("../../test/rig/artifactRehearsal");
    const result = await rehearseArtifact({ stack: values.stack!, artifact: file, release: values.release });
    if (!result.ok) process.exitCode = 1;
    return;
  }
  const { rehearse } = await import("../../test/rig/scenario");
  const result = await rehearse({ stack: values.stack! });
  if (!result.ok) process.exitCode = 1;
}

if (require.main === module) runCli(main);
