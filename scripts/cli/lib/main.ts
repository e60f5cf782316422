// Runs a CLI's main function: a CliError (or any error) becomes one line on stderr and exit
// status 1; users never see a stack trace for a mistake they can fix.
import { CliError } from "./stack";

export function runCli(main: () => Promise<void>): void {
  main().catch((e: unknown) => {
    const message = e instanceof CliError ? e.message : e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    process.stderr.write(`error: ${message}\n`);
    process.exitCode = 1;
  });
}
