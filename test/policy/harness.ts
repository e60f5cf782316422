// Runs CrossGuard policies the way @pulumi/policy 1.21's analyzer server does (server.js), on
// hand-made resources or on what the program registered under mocks, without the Pulumi CLI and
// without constructing a PolicyPack (which would start a gRPC server and pin the process).
//
// Mirrored from the server: props wrapped in `unknownCheckingProxy`; "not applicable" thrown by
// `args.notApplicable()` and caught per validation (a policy with several validations, one per
// resource class, must not stop at the first class that does not match); an UnknownValueError
// becomes a "can't run during preview" note instead of a violation.
import * as policySdk from "@pulumi/policy";
import {
  PolicyResource,
  Policy,
  ResourceValidation,
  ResourceValidationArgs,
  ResourceValidationPolicy,
  StackValidationArgs,
  StackValidationPolicy,
} from "@pulumi/policy";
import { Resource } from "@pulumi/pulumi";
import { ProgramRun, reveal } from "../rig/program";

// 1.21 exports these "so policy-pack test helpers can mirror real runtime semantics" (its
// CHANGELOG), but its typings strip them as @internal.
const { unknownCheckingProxy, UnknownValueError } = policySdk as unknown as {
  unknownCheckingProxy<T extends object>(props: T): T;
  UnknownValueError: new (...args: never[]) => Error;
};

/** What the engine sends for a string that is unknown during preview (proxy.js). */
export const UNKNOWN_STRING = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

class NotApplicable extends Error {
  constructor(readonly reason?: string) {
    super(reason ?? "not applicable");
  }
}

export interface Violation {
  message: string;
  urn?: string;
}

export interface Outcome {
  violations: Violation[];
  /** Validations that declared themselves not applicable, with their reasons. */
  notApplicable: string[];
  /** Validations that touched an unknown value (the server reports them as advisory). */
  unknown: string[];
}

export interface FakeResource {
  type: string;
  name: string;
  props: Record<string, unknown>;
  urn?: string;
  parent?: string;
  /** URNs, as the engine lists them. */
  dependencies?: string[];
  /** Input property -> URNs its value came from. */
  propertyDependencies?: Record<string, string[]>;
}

export function urnOf(r: Pick<FakeResource, "type" | "name" | "urn">, stack = "qa", project = "greenlight"): string {
  return r.urn ?? `urn:pulumi:${stack}::${project}::${r.type}::${r.name}`;
}

// The shape `isType()` takes.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type ResourceClass = { new (...rest: any[]): Resource };

function isTypeOf(type: string, resourceClass: ResourceClass): boolean {
  const t = (resourceClass as unknown as { __pulumiType?: string }).__pulumiType;
  if (t) return t === type;
  const isInstance = (resourceClass as unknown as { isInstance?: (o: unknown) => boolean }).isInstance;
  return typeof isInstance === "function" && isInstance({ __pulumiType: type }) === true;
}

const notApplicable = (reason?: string): never => {
  throw new NotApplicable(reason);
};

async function guarded(out: Outcome, name: string, f: () => unknown): Promise<void> {
  try {
    await Promise.resolve(f());
  } catch (e) {
    if (e instanceof NotApplicable) out.notApplicable.push(`${name}: ${e.reason ?? ""}`);
    else if (e instanceof UnknownValueError) out.unknown.push(`${name}: ${e.message}`);
    else throw e;
  }
}

/** Runs one resource policy on one resource (its inputs), with optional policy config. */
export async function runResourcePolicy(
  policy: ResourceValidationPolicy,
  r: FakeResource,
  config: object = {},
  stack = "qa",
): Promise<Outcome> {
  const out: Outcome = { violations: [], notApplicable: [], unknown: [] };
  const validations: ResourceValidation[] = [policy.validateResource ?? []].flat();
  const urn = urnOf(r, stack);
  for (const validation of validations) {
    const props = unknownCheckingProxy(r.props);
    const args: ResourceValidationArgs = {
      type: r.type,
      props,
      urn,
      name: r.name,
      opts: {
        protect: false,
        ignoreChanges: [],
        aliases: [],
        additionalSecretOutputs: [],
        customTimeouts: { createSeconds: 0, updateSeconds: 0, deleteSeconds: 0 },
        parent: r.parent,
      },
      stackTags: new Map(),
      isType: (c) => isTypeOf(r.type, c),
      asType: ((c: ResourceClass) => (isTypeOf(r.type, c) ? props : undefined)) as ResourceValidationArgs["asType"],
      getConfig: <T extends object>() => config as T,
      notApplicable,
    };
    await guarded(out, policy.name, () => validation(args, (message) => out.violations.push({ message, urn })));
  }
  return out;
}

/** Runs one stack policy on a set of resources (their outputs), with optional policy config. */
export async function runStackPolicy(
  policy: StackValidationPolicy,
  resources: FakeResource[],
  config: object = {},
  stack = "qa",
): Promise<Outcome> {
  const out: Outcome = { violations: [], notApplicable: [], unknown: [] };
  const byUrn = new Map<string, PolicyResource>();
  const built = resources.map((r) => {
    const props = unknownCheckingProxy(r.props);
    const res: PolicyResource = {
      type: r.type,
      props,
      urn: urnOf(r, stack),
      name: r.name,
      opts: {
        protect: false,
        ignoreChanges: [],
        aliases: [],
        additionalSecretOutputs: [],
        customTimeouts: { createSeconds: 0, updateSeconds: 0, deleteSeconds: 0 },
      },
      dependencies: [],
      propertyDependencies: {},
      isType: (c) => isTypeOf(r.type, c),
      asType: ((c: ResourceClass) => (isTypeOf(r.type, c) ? props : undefined)) as PolicyResource["asType"],
    };
    byUrn.set(res.urn, res);
    return { res, r };
  });
  // Like the server: references become resource objects; unknown URNs are dropped.
  const resolve = (urns: string[] = []) => urns.map((u) => byUrn.get(u)).filter((x): x is PolicyResource => !!x);
  for (const { res, r } of built) {
    if (r.parent) res.parent = byUrn.get(r.parent);
    res.dependencies = resolve(r.dependencies);
    for (const [k, urns] of Object.entries(r.propertyDependencies ?? {})) res.propertyDependencies[k] = resolve(urns);
  }
  const args: StackValidationArgs = {
    resources: built.map((b) => b.res),
    stackTags: new Map(),
    getConfig: <T extends object>() => config as T,
    notApplicable,
  };
  await guarded(out, policy.name, () =>
    policy.validateStack(args, (message, urn) => out.violations.push({ message, urn })),
  );
  return out;
}

export function isStackPolicy(p: Policy): p is StackValidationPolicy {
  return typeof (p as StackValidationPolicy).validateStack === "function";
}

/**
 * The resources of a program run under mocks, as a policy would see them: resource policies get
 * the inputs, stack policies the state (outputs). Secret markers are removed, as the analyzer's
 * deserializer does. Components carry no properties.
 */
export function resourcesOf(run: ProgramRun, view: "inputs" | "outputs"): FakeResource[] {
  return run.resources.map((r) => ({
    type: r.type,
    name: r.name,
    urn: r.urn,
    parent: r.options.parent || undefined,
    dependencies: r.options.dependencies,
    props: r.custom ? reveal<Record<string, unknown>>(view === "inputs" ? r.inputs : (r.state ?? r.inputs)) : {},
  }));
}
