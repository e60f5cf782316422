// npm run check-site -- DIR
// Checks a Django project against the site contract (docs/site.md) before packaging: prints each
// problem and warning with its fix, exits 1 when there is a problem, 0 otherwise.
import { ArtifactError } from "./lib/artifact";
import { checkSite, formatFindings } from "./lib/checkSite";

const USAGE = "usage: npm run check-site -- DIR";

export function parseArgs(argv: string[]): string | "help" {
  if (argv.includes("-h") || argv.includes("--help")) return "help";
  const bad = argv.find((a) => a.startsWith("-"));
  if (bad) throw new ArtifactError(`unknown option ${bad}; ${USAGE}`);
  if (argv.length !== 1) throw new ArtifactError(`one site directory expected; ${USAGE}`);
  return argv[0];
}

function main(): number {
  const dir = parseArgs(process.argv.slice(2));
  if (dir === "help") {
    console.log(USAGE);
    return 0;
  }
  const findings = checkSite(dir);
  const problems = findings.filter((f) => f.level === "problem").length;
  const warnings = findings.length - problems;
  process.stdout.write(formatFindings(findings));
  console.log(
    problems === 0
      ? `check-site: ${dir} meets the site contract${warnings ? ` (${warnings} warning${warnings > 1 ? "s" : ""})` : ""}`
      : `check-site: ${problems} problem${problems > 1 ? "s" : ""}, ${warnings} warning${warnings === 1 ? "" : "s"} (docs/site.md)`,
  );
  return problems === 0 ? 0 : 1;
}

if (require.main === module) {
  try {
    process.exitCode = main();
  } catch (e) {
    console.error(`check-site: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 2;
  }
}
