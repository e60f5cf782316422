// What the day-to-day commands (manage, logs, status) share: the stack's outputs through the
// Pulumi CLI (`pulumi stack output --json --show-secrets`, no jq), the stack file's app name and
// health path, and running one command on every host at once with each line prefixed by host.
import { stackOutputsJson } from "./pulumiJson";
import * as fs from "fs";
import * as path from "path";
import { parseDocument } from "yaml";
import { OpsError, StackAccess, opsConnection, stackAccess } from "../../../components/ops";
import { connect, exec, Session } from "./ssh";
import { CliError, StackState, readState, stackFile } from "./stack";

export const ROOT = path.resolve(__dirname, "..", "..", "..");

export interface OpsStack {
  access: StackAccess;
  app: string;
  healthPath: string;
  /** The stack file's slots and live colour (what the next pulumi up would deploy). */
  state: StackState;
  /** The stack file's text. */
  text: string;
}

/** The stack's outputs, secrets included, or a one-line refusal. */
export function stackOutputs(stack: string): Record<string, unknown> {
  const r = stackOutputsJson(stack);
  if (r.ok) return (r.json ?? {}) as Record<string, unknown>;
  if (r.why === "no-cli") throw new CliError("the Pulumi CLI is not installed: it reads the stack's hosts and keys");
  if (r.why === "failed")
    throw new CliError(`cannot read the outputs of stack ${stack} (pulumi stack output --stack ${stack}: ${r.last})`);
  throw new CliError(`pulumi stack output --json --stack ${stack} printed no JSON`);
}

export function loadStack(stack: string, dir = ROOT): OpsStack {
  const file = stackFile(stack, dir);
  const text = fs.readFileSync(file, "utf8");
  const doc = parseDocument(text);
  const get = (k: string, def: string) => {
    const v = doc.getIn(["config", `greenlight:${k}`]);
    return v === undefined || v === null ? def : String(v);
  };
  try {
    return {
      access: stackAccess(stack, stackOutputs(stack)),
      app: get("app", "site"),
      healthPath: get("healthPath", "/healthz"),
      state: readState(text),
      text,
    };
  } catch (e) {
    if (e instanceof OpsError) throw new CliError(e.message);
    throw e;
  }
}

/** The name a host goes by in output: h0, h1, ... */
export const hostName = (i: number) => `h${i}`;

/** Splits a byte stream into lines, each handed on with its prefix (a partial last line on end). */
export function linePrefixer(prefix: string, write: (s: string) => void) {
  let rest = "";
  return {
    push(chunk: Buffer) {
      const text = rest + chunk.toString("utf8");
      const lines = text.split("\n");
      rest = lines.pop() ?? "";
      if (lines.length) write(lines.map((l) => `${prefix}${l}\n`).join(""));
    },
    end() {
      if (rest) write(`${prefix}${rest}\n`);
      rest = "";
    },
  };
}

/**
 * Runs `command` on every host of the stack at once (through the bastion for private hosts).
 * `onStdout` gets each host's output; stderr lines go to ours prefixed by host. Resolves with
 * each host's exit status once all are done, or when `stopOn` fires (then every session is
 * stopped). A host that cannot be reached or is refused (a host key other than the pinned one)
 * stops every session: the command fails as a whole.
 */
export async function onEveryHost(
  s: OpsStack,
  command: (i: number) => string,
  o: {
    onStdout: (i: number) => { push(chunk: Buffer): void; end(): void };
    keepStdinOpen?: boolean;
    stopOn?: (stop: () => void) => void;
  },
): Promise<{ codes: number[]; errors: string[] }> {
  const sessions: { session?: Session; close?: () => void }[] = s.access.hosts.map(() => ({}));
  let stopped = false;
  const stopAll = () => {
    stopped = true;
    for (const x of sessions) x.session?.stop();
    for (const x of sessions) x.close?.();
  };
  o.stopOn?.(stopAll);
  const errors: string[] = [];
  const codes = await Promise.all(
    s.access.hosts.map(async (h, i) => {
      const name = hostName(i);
      try {
        const { client, close } = await connect(opsConnection(s.access, i), `host ${i}`);
        sessions[i].close = close;
        if (stopped) {
          close();
          return 130;
        }
        const out = o.onStdout(i);
        const err = linePrefixer(`${name} `, (t) => process.stderr.write(t));
        const session = await exec(client, command(i), {
          stdout: (c) => out.push(c),
          stderr: (c) => err.push(c),
          keepStdinOpen: o.keepStdinOpen,
        });
        sessions[i].session = session;
        const code = await session.done;
        out.end();
        err.end();
        close();
        return code;
      } catch (e) {
        // After a stop (Ctrl-C, another host's refusal) a failing session is no news.
        if (!stopped) errors.push(`${name} (${h.address}): ${(e as Error).message}`);
        // One host refused (a wrong host key, say): the command fails as a whole, at once.
        stopAll();
        return 255;
      }
    }),
  );
  return { codes, errors };
}
