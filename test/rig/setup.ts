// `npm test`'s first step (pretest): what the lint, site, host and end-to-end tests need.
// - Node 22 or newer (@pulumi/pulumi needs it; `scripts/dev/node.sh` fetches one if not).
// - The Debian packages: as root it installs what is missing (CI runs as root on a fresh
//   Debian); otherwise it stops at once, naming what is missing and the apt-get line.
// - The real Pulumi CLI, built from the Go module proxy once per version and reused
//   (scripts/dev/pulumi-toolchain.sh): the end-to-end test runs it.
import { spawnSync } from "child_process";
import * as path from "path";
import { ensureHostPrerequisites } from "./prereqs";

function main(): void {
  const major = Number(process.versions.node.split(".")[0]);
  if (major < 22)
    throw new Error(
      `Node ${process.versions.node} is too old: greenlight needs Node 22 or newer. ` +
        `\`export PATH="$(bash scripts/dev/node.sh --print-bin):$PATH"\` puts one first on PATH.`,
    );
  ensureHostPrerequisites({ log: (line) => console.log(line) });
  const toolchain = path.join(__dirname, "..", "..", "scripts", "dev", "pulumi-toolchain.sh");
  const r = spawnSync("bash", [toolchain], { stdio: "inherit" });
  if (r.status !== 0) throw new Error(`${toolchain} failed (exit ${r.status ?? r.signal})`);
}

try {
  main();
  console.log("test prerequisites: ok");
} catch (e) {
  console.error(`test prerequisites: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
}
