// Runs the real index.ts under `pulumi.runtime.setMocks`, recording every resource the
// program registers with its inputs and its resource options (dependsOn, ignoreChanges,
// replaceOnChanges, timeouts, secret outputs), which plain mocks do not show. The unit tests
// give it an engine that invents plausible state; the rehearsal gives it one that really
// executes remote commands over SSH.
import * as pulumi from "@pulumi/pulumi";
import * as path from "path";
import { RawConfig, ROOT } from "./stackConfig";

// Mock inputs carry secrets as the engine's wire format does (providers/wire.ts): one
// definition of the marker, for the mocks and the stand-in provider plugins alike.
import { isSecret, reveal } from "./providers/wire";
export { reveal };
export const isSecretValue = (v: unknown): boolean => isSecret(v);

export interface ResourceOptionsSeen {
  parent: string;
  dependencies: string[];
  ignoreChanges: string[];
  replaceOnChanges: string[];
  deleteBeforeReplace: boolean;
  additionalSecretOutputs: string[];
  customTimeouts?: { create: string; update: string; delete: string };
  protect: boolean;
  retainOnDelete?: boolean;
}

export interface Registered {
  type: string;
  name: string;
  urn: string;
  custom: boolean;
  /** Inputs as the SDK sent them (secret values still wrapped: see `reveal`). */
  inputs: Record<string, unknown>;
  options: ResourceOptionsSeen;
  id?: string;
  state?: Record<string, unknown>;
}

export interface MockEngine {
  newResource(r: Registered): Promise<{ id: string; state: Record<string, unknown> }>;
  call(token: string, inputs: Record<string, unknown>): Promise<Record<string, unknown>> | Record<string, unknown>;
}

export interface ProgramRun {
  resources: Registered[];
  outputs: Record<string, unknown>;
  /** Names of stack outputs that are secret. */
  secretOutputs: string[];
  invokes: { token: string; inputs: Record<string, unknown> }[];
  /** Resources whose registration failed, and outputs that could not resolve. */
  failures: { name: string; type: string; error: string }[];
}

const INDEX = path.join(ROOT, "index.ts");

/**
 * A failed registration rejects the SDK's promises of that resource and of every output
 * built on it, some only after the run has ended. Those are the failures runProgram reports;
 * any other unhandled rejection still crashes the process, as Node would.
 */
let current: ((e: unknown) => void) | undefined;
let installed = false;
const REGISTRATION = /failed to register new resource|error serializing property/;
function installRejectionHandler(): void {
  if (installed) return;
  installed = true;
  process.on("unhandledRejection", (e) => {
    if (current) current(e);
    else if (!REGISTRATION.test(e instanceof Error ? e.message : String(e))) throw e;
  });
}

function urnOf(project: string, stack: string, parentUrn: string, type: string, name: string): string {
  // Mirrors MockMonitor.newUrn: the parent's own type prefixes the child's.
  const parentType = parentUrn ? `${parentUrn.split("::")[2].split("$").pop()}$` : "";
  return `urn:pulumi:${stack}::${project}::${parentType}${type}::${name}`;
}

/**
 * Evaluates index.ts for `stack` with `config`. Throws what the program throws (a
 * ConfigError, for instance); registration failures are collected in `failures`.
 */
export async function runProgram(stack: string, config: RawConfig, engine: MockEngine): Promise<ProgramRun> {
  const project = "greenlight";
  const resources: Registered[] = [];
  const invokes: ProgramRun["invokes"] = [];
  const failures: ProgramRun["failures"] = [];
  const pending = new Map<string, ResourceOptionsSeen & { urn: string }>();

  await pulumi.runtime.setMocks(
    {
      newResource: async (args: pulumi.runtime.MockResourceArgs) => {
        const key = `${args.type}::${args.name}`;
        const opts = pending.get(key)!;
        const r: Registered = {
          type: args.type,
          name: args.name,
          urn: opts.urn,
          custom: !!args.custom,
          inputs: args.inputs,
          options: opts,
        };
        resources.push(r);
        if (!args.custom) return { id: "", state: {} };
        try {
          const out = await engine.newResource(r);
          r.id = out.id;
          r.state = out.state;
          return out;
        } catch (e) {
          failures.push({ name: args.name, type: args.type, error: e instanceof Error ? e.message : String(e) });
          throw e;
        }
      },
      call: async (args: pulumi.runtime.MockCallArgs) => {
        invokes.push({ token: args.token, inputs: args.inputs });
        return engine.call(args.token, args.inputs);
      },
    },
    project,
    stack,
    false,
  );
  pulumi.runtime.setAllConfig(config.values, config.secretKeys);

  // Plain mocks do not show resource options; the monitor's requests do.
  type Req = {
    getType(): string;
    getName(): string;
    getParent(): string;
    getDependenciesList(): string[];
    getIgnorechangesList(): string[];
    getReplaceonchangesList(): string[];
    getDeletebeforereplace(): boolean;
    getAdditionalsecretoutputsList(): string[];
    getProtect(): boolean;
    getRetainondelete(): boolean;
    getCustomtimeouts(): { getCreate(): string; getUpdate(): string; getDelete(): string } | undefined;
  };
  const monitor = pulumi.runtime.getMonitor() as unknown as {
    registerResource(req: Req, cb: (err: unknown, res: unknown) => void): unknown;
  };
  const original = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req: Req, cb: (err: unknown, res: unknown) => void) => {
    const t = req.getCustomtimeouts();
    pending.set(`${req.getType()}::${req.getName()}`, {
      urn: urnOf(project, stack, req.getParent(), req.getType(), req.getName()),
      parent: req.getParent(),
      dependencies: req.getDependenciesList(),
      ignoreChanges: req.getIgnorechangesList(),
      replaceOnChanges: req.getReplaceonchangesList(),
      deleteBeforeReplace: req.getDeletebeforereplace(),
      additionalSecretOutputs: req.getAdditionalsecretoutputsList(),
      protect: req.getProtect(),
      retainOnDelete: req.getRetainondelete(),
      customTimeouts: t ? { create: t.getCreate(), update: t.getUpdate(), delete: t.getDelete() } : undefined,
    });
    return original(req, cb);
  };

  current = (e: unknown) => {
    const msg = e instanceof Error ? e.message : String(e);
    if (!failures.some((f) => msg.includes(f.name))) failures.push({ name: "?", type: "?", error: msg });
  };
  installRejectionHandler();
  // The SDK records a source position (a captured stack) for every resource and promise;
  // under ts-node's source-map support that is most of the evaluation time. Tests do not
  // need them, and errors keep their messages.
  const stackTraceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    delete require.cache[require.resolve(INDEX)];
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const exported = require(INDEX) as Record<string, unknown>;
    const outputs: Record<string, unknown> = {};
    const secretOutputs: string[] = [];
    for (const [k, v] of Object.entries(exported)) {
      if (pulumi.Output.isInstance(v)) {
        try {
          outputs[k] = await (v as unknown as { promise(): Promise<unknown> }).promise();
          if (await pulumi.isSecret(v)) secretOutputs.push(k);
        } catch (e) {
          failures.push({ name: `output ${k}`, type: "output", error: e instanceof Error ? e.message : String(e) });
        }
      } else {
        outputs[k] = v;
      }
    }
    await pulumi.runtime.disconnect();
    // Outputs built from plain values still carry nested Outputs: resolve one level down.
    for (const [k, v] of Object.entries(outputs)) outputs[k] = await resolveDeep(v);
    return { resources, outputs, secretOutputs, invokes, failures };
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
    current = undefined;
  }
}

async function resolveDeep(v: unknown): Promise<unknown> {
  if (pulumi.Output.isInstance(v))
    return resolveDeep(await (v as unknown as { promise(): Promise<unknown> }).promise());
  if (Array.isArray(v)) return Promise.all(v.map(resolveDeep));
  if (v && typeof v === "object") {
    const entries = await Promise.all(Object.entries(v).map(async ([k, x]) => [k, await resolveDeep(x)] as const));
    return Object.fromEntries(entries);
  }
  return v;
}
