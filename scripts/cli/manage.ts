// npm run manage -- --stack qa [--host N] [--slot blue|green] [--yes] -- <manage.py command...>
//
// Runs one manage.py command (createsuperuser, shell, dbshell, a data fix) on one host of the
// stack (host 0 unless --host), as the app user, with the venv and .env of the release the live
// colour serves (or --slot's), through the bastion when the hosts are private, with the host
// keys the stack pinned. With a terminal attached it is interactive (a pseudo-terminal on the
// host); otherwise stdin is passed through. A protected stack (prod, or deletionProtection)
// asks for confirmation first, unless --yes. Exits with the command's exit status.
import * as readline from "readline";
import { parseArgs } from "util";
import { COLOURS, Colour } from "../../components/constants";
import { OpsError, manageCommand, opsConnection } from "../../components/ops";
import { runCli } from "./lib/main";
import { loadStack } from "./lib/ops";
import { connect, exec } from "./lib/ssh";
import { CliError } from "./lib/stack";
import { parseDocument } from "yaml";

const USAGE = "usage: npm run manage -- --stack STACK [--host N] [--slot blue|green] [--yes] -- COMMAND [ARGS...]";

/** prod, or any stack whose file turns deletionProtection on: a stack a slip would hurt. */
export function isProtected(stack: string, stackText: string): boolean {
  const v = parseDocument(stackText).getIn(["config", "greenlight:deletionProtection"]);
  return stack === "prod" || v === true || v === "true";
}

function ask(question: string): Promise<string> {
  const rl = readline.createInterface({ input: process.stdin, output: process.stderr });
  return new Promise((resolve) =>
    rl.question(question, (answer) => {
      rl.close();
      resolve(answer.trim());
    }),
  );
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const split = argv.indexOf("--");
  if (split < 0) throw new CliError(`${USAGE} (the manage.py command goes after --)`);
  const { values } = parseArgs({
    args: argv.slice(0, split),
    options: {
      stack: { type: "string" },
      host: { type: "string" },
      slot: { type: "string" },
      yes: { type: "boolean" },
      dir: { type: "string" },
    },
  });
  const args = argv.slice(split + 1);
  if (!values.stack || args.length === 0) throw new CliError(USAGE);
  if (values.host !== undefined && !/^\d+$/.test(values.host))
    throw new CliError(`--host ${values.host}: a host number (0, 1, ...)`);
  if (values.slot !== undefined && !COLOURS.includes(values.slot as Colour)) {
    throw new CliError(`--slot ${values.slot}: allowed: blue or green`);
  }
  const s = loadStack(values.stack, values.dir);
  const host = Number(values.host ?? 0);
  const slot = (values.slot as Colour | undefined) ?? s.access.liveColour;
  const release = s.access.releases[slot];
  if (!release) {
    throw new CliError(
      `slot ${slot} of stack ${values.stack} holds no release (pulumi stack output releases): nothing to run manage.py in`,
    );
  }
  let command: string;
  let conn;
  try {
    command = manageCommand({ app: s.app, slot, args });
    conn = opsConnection(s.access, host);
  } catch (e) {
    if (e instanceof OpsError) throw new CliError(e.message);
    throw e;
  }
  const what = `manage.py ${args.join(" ")} on h${host} of ${values.stack} (${slot}, release ${release})`;
  const interactive = Boolean(process.stdin.isTTY && process.stdout.isTTY);
  if (isProtected(values.stack, s.text) && !values.yes) {
    if (!interactive)
      throw new CliError(
        `${values.stack} is a protected stack: to run ${what} without a terminal to confirm on, pass --yes`,
      );
    const answer = await ask(`run ${what}? type the stack name (${values.stack}) to go on: `);
    if (answer !== values.stack) throw new CliError("not confirmed: nothing ran");
  }
  const { client, close } = await connect(conn, `host ${host}`);
  process.stderr.write(`greenlight: ${what}\n`);
  try {
    const session = await exec(client, command, {
      stdout: (c) => process.stdout.write(c),
      stderr: (c) => process.stderr.write(c),
      interactive,
      stdin: interactive ? undefined : process.stdin,
    });
    process.exitCode = await session.done;
  } finally {
    close();
    if (!interactive) process.stdin.destroy();
  }
}

if (require.main === module) runCli(main);
