// npm run package-site -- DIR [--out FILE] [--find-links WHEELDIR] [--no-index] [--python PYTHON]
// Builds a release artifact from a site dir and prints {"file","sha256","size","lockHash"} as
// one JSON line on stdout. The work happens in lib/packageSite.ts; this file parses arguments.
import { ArtifactError } from "./lib/artifact";
import { packageSite } from "./lib/packageSite";

export { packageSite } from "./lib/packageSite";
export type { PackageOptions, PackageResult } from "./lib/packageSite";

const USAGE = "usage: npm run package-site -- DIR [--out FILE] [--find-links WHEELDIR] [--no-index] [--python PYTHON]";

interface Args {
  dir: string;
  out?: string;
  findLinks?: string;
  noIndex?: boolean;
  python?: string;
}

export function parseArgs(argv: string[]): Args | "help" {
  let dir: string | undefined;
  let out: string | undefined;
  let findLinks: string | undefined;
  let noIndex: boolean | undefined;
  let python: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inline] =
      arg.startsWith("--") && arg.includes("=")
        ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)]
        : [arg, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined || v === "") throw new ArtifactError(`${flag} needs a value; ${USAGE}`);
      return v;
    };
    if (flag === "-h" || flag === "--help") return "help";
    else if (flag === "--out") out = value();
    else if (flag === "--find-links") findLinks = value();
    else if (flag === "--python") python = value();
    else if (arg === "--no-index") noIndex = true;
    else if (flag.startsWith("-")) throw new ArtifactError(`unknown option ${flag}; ${USAGE}`);
    else if (dir === undefined) dir = arg;
    else throw new ArtifactError(`one site directory only (got ${dir} and ${arg}); ${USAGE}`);
  }
  if (dir === undefined) throw new ArtifactError(`missing site directory; ${USAGE}`);
  if (noIndex && findLinks === undefined) throw new ArtifactError(`--no-index needs --find-links; ${USAGE}`);
  const args: Args = { dir, out, findLinks };
  if (noIndex) args.noIndex = true;
  if (python !== undefined) args.python = python;
  return args;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args === "help") {
    console.log(USAGE);
    return;
  }
  const { dir, ...opts } = args;
  const result = await packageSite(dir, opts);
  console.log(JSON.stringify(result));
}

if (require.main === module) {
  main().catch((e: unknown) => {
    // Expected failures and environment errors alike: the message is what the user needs.
    const message = e instanceof Error ? e.message : String(e);
    console.error(`package-site: ${message}`);
    process.exit(1);
  });
}
