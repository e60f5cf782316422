// Reads Pulumi.<stack>.yaml the way the Pulumi CLI hands config to a program: every value a
// string, arrays and objects as JSON. `secure:` values cannot be decrypted without the CLI, so
// they become plaintext stand-ins and are reported as secret keys.
import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";

export const ROOT = path.resolve(__dirname, "..", "..");

export interface RawConfig {
  values: Record<string, string>;
  secretKeys: string[];
}

export type Override = string | number | boolean | string[] | { secret: string } | undefined;

function asConfigString(v: unknown): string {
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  return JSON.stringify(v);
}

/**
 * The stack file's config, with `overrides` applied: a value replaces the key, `undefined`
 * removes it, `{ secret }` sets it as a secret (like `pulumi config set --secret`).
 */
export function stackConfig(stack: string, overrides: Record<string, Override> = {}, dir = ROOT): RawConfig {
  const file = path.join(dir, `Pulumi.${stack}.yaml`);
  const doc = (parse(fs.readFileSync(file, "utf8")) ?? {}) as { config?: Record<string, unknown> };
  const values: Record<string, string> = {};
  const secretKeys = new Set<string>();
  for (const [k, v] of Object.entries(doc.config ?? {})) {
    if (v && typeof v === "object" && "secure" in (v as object)) {
      values[k] = `test-secret-for-${k}`;
      secretKeys.add(k);
    } else {
      values[k] = asConfigString(v);
    }
  }
  for (const [k0, v] of Object.entries(overrides)) {
    const k = k0.includes(":") ? k0 : `greenlight:${k0}`;
    if (v === undefined) {
      delete values[k];
      secretKeys.delete(k);
    } else if (typeof v === "object" && !Array.isArray(v)) {
      values[k] = v.secret;
      secretKeys.add(k);
    } else {
      values[k] = asConfigString(v);
      secretKeys.delete(k);
    }
  }
  return { values, secretKeys: [...secretKeys] };
}
