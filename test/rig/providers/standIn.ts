// The shape every stand-in provider shares, on @pulumi/pulumi/provider: Check passes the
// inputs through, Diff compares old and new inputs and answers `replaces` from the
// provider's table of replace-only properties, Create/Update/Delete call the provider's
// own functions. Outputs carry the inputs (as real providers' do) plus what the resource
// computes, and a copy of the inputs under INPUTS, because Diff only sees old outputs.
import * as provider from "@pulumi/pulumi/provider";
import { isDeepStrictEqual } from "util";
import { Props, at, hasUnknown, parseUrn, reveal, withSecretsOf } from "./wire";

export const INPUTS = "__inputs";

export interface Resource {
  type: string;
  name: string;
  urn: string;
}

export interface StandInProvider {
  version: string;
  /** Input paths whose change replaces a resource of `type`; "all" for every input. */
  replaces(type: string): string[] | "all";
  create(r: Resource, inputs: Props, raw: Props): Promise<{ id: string; outs: Props }>;
  /** Default: the new inputs over the old outputs. */
  update?(r: Resource, id: string, olds: Props, news: Props, raw: Props): Promise<Props>;
  delete?(r: Resource, id: string, olds: Props): Promise<void>;
  invoke?(token: string, args: Props): Promise<Props>;
  /** Outputs to keep secret besides those whose inputs were secret. */
  secretOutputs?(type: string): string[];
}

/** The top-level inputs whose values differ, and whether a replace-only path is among them. */
export function diffInputs(
  olds: Props,
  news: Props,
  replaceOnly: string[] | "all",
): { changed: string[]; replaces: string[] } {
  const keys = [...new Set([...Object.keys(olds), ...Object.keys(news)])];
  const changed = keys.filter((k) => hasUnknown(news[k]) || !isDeepStrictEqual(reveal(olds[k]), reveal(news[k])));
  const replaces =
    replaceOnly === "all"
      ? changed
      : replaceOnly.filter((p) => {
          const top = p.split(".")[0];
          if (!changed.includes(top)) return false;
          return hasUnknown(news[top]) || !isDeepStrictEqual(at(olds, p), at(news, p));
        });
  return { changed, replaces: [...new Set(replaces.map((p) => p.split(".")[0]))] };
}

export function serve(p: StandInProvider, args: string[]): Promise<void> {
  const outputs = (r: Resource, raw: Props, outs: Props): Props => ({
    ...withSecretsOf(raw, outs, p.secretOutputs?.(r.type) ?? []),
    [INPUTS]: raw,
  });
  const resourceOf = (urn: string): Resource => ({ ...parseUrn(urn), urn });
  const impl: provider.Provider = {
    version: p.version,
    async check(_urn, _olds, news) {
      return { inputs: news };
    },
    async diff(_id, urn, olds, news) {
      const { type } = parseUrn(urn);
      const oldInputs = ((olds as Props)[INPUTS] ?? {}) as Props;
      const { changed, replaces } = diffInputs(oldInputs, news as Props, p.replaces(type));
      return { changes: changed.length > 0, replaces };
    },
    async create(urn, inputs) {
      const r = resourceOf(urn);
      const raw = inputs as Props;
      const { id, outs } = await p.create(r, reveal<Props>(raw), raw);
      return { id, outs: outputs(r, raw, { ...reveal<Props>(raw), ...outs }) };
    },
    async update(id, urn, olds, news) {
      const r = resourceOf(urn);
      const raw = news as Props;
      const plainOld = reveal<Props>(olds);
      delete plainOld[INPUTS];
      const outs = p.update
        ? await p.update(r, id, plainOld, reveal<Props>(raw), raw)
        : { ...plainOld, ...reveal<Props>(raw) };
      return { outs: outputs(r, raw, outs) };
    },
    async delete(id, urn, props) {
      const plain = reveal<Props>(props);
      delete plain[INPUTS];
      await p.delete?.(resourceOf(urn), id, plain);
    },
    async invoke(token, inputs) {
      if (!p.invoke) throw new Error(`no functions: ${token}`);
      return { outputs: await p.invoke(token, reveal<Props>(inputs)) };
    },
  };
  return provider.main(impl, args);
}
