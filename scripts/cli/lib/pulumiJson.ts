// Running one `pulumi` command that prints JSON (stack export, stack output --json), for the
// release, rollback and day-to-day commands. It returns the parsed JSON or why there is none,
// as data: each caller words its own refusal (what the command needed the JSON for).
import { execFileSync } from "child_process";

export type PulumiJson =
  | { ok: true; json: unknown }
  /** No `pulumi` on PATH. */
  | { ok: false; why: "no-cli" }
  /** It ran and failed; `last` is the last line of its stderr (Pulumi puts the reason there). */
  | { ok: false; why: "failed"; last: string }
  /** It exited 0 but its stdout does not parse. */
  | { ok: false; why: "no-json" };

export function pulumiJson(args: string[], maxBuffer = 64 << 20): PulumiJson {
  let out: string;
  try {
    out = execFileSync("pulumi", args, { encoding: "utf8", maxBuffer, stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    const err = e as { code?: string; stderr?: string };
    if (err.code === "ENOENT") return { ok: false, why: "no-cli" };
    const last =
      String(err.stderr ?? "")
        .trim()
        .split("\n")
        .pop() || "no output";
    return { ok: false, why: "failed", last };
  }
  try {
    return { ok: true, json: JSON.parse(out) as unknown };
  } catch {
    return { ok: false, why: "no-json" };
  }
}

/** `pulumi stack output --json --show-secrets --stack <stack>`: the outputs hold the deploy key. */
export const stackOutputsJson = (stack: string): PulumiJson =>
  pulumiJson(["stack", "output", "--json", "--show-secrets", "--stack", stack]);
