// npm run logs -- --stack qa [--slot blue|green] [--follow] [--grep RE] [--lines N]
//
// The app's (gunicorn, per slot) and nginx's logs (each slot's access log, the error log) from
// every host of the stack at once, each line prefixed by its host and source: the last N lines
// (50 unless --lines) of each, or with --follow every new line until Ctrl-C, which ends the
// SSH sessions and so the readers on the hosts. --grep keeps the lines that match an extended
// regular expression (grep -E, on the hosts).
import { parseArgs } from "util";
import { COLOURS, Colour } from "../../components/constants";
import { OpsError, logsCommand } from "../../components/ops";
import { runCli } from "./lib/main";
import { hostName, linePrefixer, loadStack, onEveryHost } from "./lib/ops";
import { CliError } from "./lib/stack";

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      stack: { type: "string" },
      slot: { type: "string" },
      follow: { type: "boolean", short: "f" },
      grep: { type: "string" },
      lines: { type: "string" },
      dir: { type: "string" },
    },
  });
  if (!values.stack)
    throw new CliError("usage: npm run logs -- --stack STACK [--slot blue|green] [--follow] [--grep RE] [--lines N]");
  if (values.slot !== undefined && !COLOURS.includes(values.slot as Colour)) {
    throw new CliError(`--slot ${values.slot}: allowed: blue or green`);
  }
  if (values.lines !== undefined && !/^\d{1,6}$/.test(values.lines))
    throw new CliError(`--lines ${values.lines}: a number of lines`);
  const s = loadStack(values.stack, values.dir);
  let command: string;
  try {
    command = logsCommand({
      app: s.app,
      slots: values.slot ? [values.slot as Colour] : [...COLOURS],
      follow: Boolean(values.follow),
      lines: Number(values.lines ?? 50),
      grep: values.grep,
    });
  } catch (e) {
    if (e instanceof OpsError) throw new CliError(e.message);
    throw e;
  }
  let interrupted = false;
  const { codes, errors } = await onEveryHost(s, () => command, {
    onStdout: (i) => linePrefixer(`${hostName(i)} `, (t) => process.stdout.write(t)),
    keepStdinOpen: Boolean(values.follow),
    stopOn: (stop) =>
      process.once("SIGINT", () => {
        interrupted = true;
        stop();
      }),
  });
  if (errors.length) throw new CliError(errors.join("; "));
  if (!interrupted && codes.some((c) => c !== 0)) process.exitCode = 1;
}

if (require.main === module) runCli(main);
