// How property values look on the wire between the Pulumi engine and a provider that accepts
// secrets (every @pulumi/pulumi/provider server does): a secret is an object carrying the
// special signature key, an unknown (a preview's not-yet-known value) a fixed sentinel string.
export const SIG = "4dabf18193072939515e22adb298388d";
export const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";
export const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

export type Props = Record<string, unknown>;

export function isSecret(v: unknown): v is { value: unknown } {
  return !!v && typeof v === "object" && (v as Props)[SIG] === SECRET_SIG;
}

export function secret(value: unknown): Props {
  return { [SIG]: SECRET_SIG, value };
}

/** The plain value, every secret wrapper removed, deeply. */
export function reveal<T = unknown>(v: unknown): T {
  if (isSecret(v)) return reveal(v.value);
  if (Array.isArray(v)) return v.map((x) => reveal(x)) as T;
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, reveal(x)])) as T;
  return v as T;
}

/** True when the value is, or contains, a preview's unknown. */
export function hasUnknown(v: unknown): boolean {
  if (v === UNKNOWN) return true;
  if (isSecret(v)) return hasUnknown(v.value);
  if (Array.isArray(v)) return v.some(hasUnknown);
  if (v && typeof v === "object") return Object.values(v).some(hasUnknown);
  return false;
}

/** True when the value is, or contains, a secret. */
export function hasSecret(v: unknown): boolean {
  if (isSecret(v)) return true;
  if (Array.isArray(v)) return v.some(hasSecret);
  if (v && typeof v === "object") return Object.values(v).some(hasSecret);
  return false;
}

/** The value at a dotted path (`rootBlockDevice.encrypted`), secrets revealed. */
export function at(props: Props, dotted: string): unknown {
  let v: unknown = reveal(props);
  for (const k of dotted.split(".")) {
    if (v === undefined || v === null || typeof v !== "object") return undefined;
    v = (v as Props)[k];
  }
  return v;
}

/** The resource's name and type from its URN (`urn:pulumi:stack::project::parent$type::name`). */
export function parseUrn(urn: string): { type: string; name: string } {
  const parts = urn.split("::");
  return { type: parts[2].split("$").pop()!, name: parts.slice(3).join("::") };
}

/**
 * Outputs as the provider returns them: `outs`, with every top-level property whose input was
 * secret kept secret (as real providers do for their secret inputs).
 */
export function withSecretsOf(inputs: Props, outs: Props, alsoSecret: string[] = []): Props {
  const result: Props = {};
  for (const [k, v] of Object.entries(outs)) {
    result[k] = isSecret(inputs[k]) || hasSecret(inputs[k]) || alsoSecret.includes(k) ? secret(reveal(v)) : v;
  }
  return result;
}
