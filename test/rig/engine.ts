// A mock engine that behaves like `pulumi up` for the rehearsal: it remembers every
// resource's inputs and outputs between runs (a state file), does nothing for a resource whose
// inputs did not change, replaces a resource whose `triggers` (or replaceOnChanges properties)
// changed, updates it otherwise, and deletes what a successful run no longer declares. A
// failed resource keeps its old state and, because the SDK registers a resource only after
// its dependencies, stops everything that depends on it. Side effects live in handlers: the
// rehearsal's handlers really run remote commands over SSH and drive local stand-ins.
import { isDeepStrictEqual } from "util";
import { MockEngine, Registered, reveal } from "./program";

export interface StoredResource {
  type: string;
  name: string;
  id: string;
  inputs: Record<string, unknown>;
  state: Record<string, unknown>;
}

export interface EngineState {
  resources: Record<string, StoredResource>;
}

export type Op = "same" | "create" | "update" | "replace" | "delete";

export interface JournalEntry {
  urn: string;
  type: string;
  name: string;
  op: Op;
  ok: boolean;
  ms: number;
  /** A remote command actually ran. */
  ran: boolean;
  error?: string;
}

export interface HandlerResult {
  id?: string;
  /** Outputs beyond the inputs. */
  state?: Record<string, unknown>;
  /** True when the handler executed a remote command. */
  ran?: boolean;
}

export interface Handler {
  create(r: Registered, inputs: Record<string, unknown>): Promise<HandlerResult>;
  update?(r: Registered, inputs: Record<string, unknown>, old: StoredResource): Promise<HandlerResult>;
  delete?(old: StoredResource): Promise<{ ran?: boolean } | void>;
  /** Input properties whose change means replace (besides the resource's replaceOnChanges). */
  replaceOn?: string[];
}

export interface EngineEvents {
  start?(e: { urn: string; type: string; name: string; op: Op }): void;
  end?(e: JournalEntry): void;
}

function changed(a: Record<string, unknown>, b: Record<string, unknown>, keys: string[]): boolean {
  return keys.some((k) => !isDeepStrictEqual(a[k], b[k]));
}

export class StatefulEngine implements MockEngine {
  readonly journal: JournalEntry[] = [];
  private readonly seen = new Set<string>();
  private readonly next: EngineState;

  constructor(
    private readonly previous: EngineState,
    private readonly handlers: (type: string) => Handler,
    private readonly invoke: MockEngine["call"],
    private readonly events: EngineEvents = {},
  ) {
    this.next = { resources: { ...previous.resources } };
  }

  call(token: string, inputs: Record<string, unknown>) {
    return this.invoke(token, inputs);
  }

  async newResource(r: Registered): Promise<{ id: string; state: Record<string, unknown> }> {
    this.seen.add(r.urn);
    const handler = this.handlers(r.type);
    const inputs = reveal<Record<string, unknown>>(r.inputs);
    const old = this.previous.resources[r.urn];
    // ignoreChanges: the old value stands in for the new one, as the engine does.
    if (old) for (const k of r.options.ignoreChanges) if (k in old.inputs) inputs[k] = old.inputs[k];

    let op: Op;
    if (!old) op = "create";
    else if (isDeepStrictEqual(old.inputs, inputs)) op = "same";
    else {
      const replaceKeys = [
        ...r.options.replaceOnChanges.map((k) => k.replace(/\[\*\]$/, "")),
        ...(handler.replaceOn ?? []),
      ];
      op = changed(old.inputs, inputs, replaceKeys) ? "replace" : "update";
    }
    if (op === "same") {
      this.journal.push({ urn: r.urn, type: r.type, name: r.name, op, ok: true, ms: 0, ran: false });
      return { id: old.id, state: old.state };
    }

    this.events.start?.({ urn: r.urn, type: r.type, name: r.name, op });
    const started = Date.now();
    const entry: JournalEntry = { urn: r.urn, type: r.type, name: r.name, op, ok: false, ms: 0, ran: false };
    try {
      let result: HandlerResult;
      const deleteFirst = op === "replace" && r.options.deleteBeforeReplace;
      if (deleteFirst && handler.delete) {
        const d = await handler.delete(old!);
        entry.ran = !!(d && d.ran);
      }
      if (op === "update" && handler.update) result = await handler.update(r, inputs, old!);
      else result = await handler.create(r, inputs);
      entry.ran = entry.ran || !!result.ran;
      if (op === "replace" && !deleteFirst && handler.delete) {
        // Create before delete: the engine's default without deleteBeforeReplace.
        const d = await handler.delete(old!);
        entry.ran = entry.ran || !!(d && d.ran);
      }
      const id = result.id ?? old?.id ?? `${r.name}-${Math.random().toString(16).slice(2, 10)}`;
      const state = { ...inputs, ...(result.state ?? {}), id };
      this.next.resources[r.urn] = { type: r.type, name: r.name, id, inputs, state };
      entry.ok = true;
      return { id, state };
    } catch (e) {
      entry.error = e instanceof Error ? e.message : String(e);
      throw e;
    } finally {
      entry.ms = Date.now() - started;
      this.journal.push(entry);
      this.events.end?.(entry);
    }
  }

  /**
   * Ends a run. After a successful run, resources the program no longer declares are
   * deleted; after a failed one nothing is (resources the run never reached stay as they were).
   */
  async finish(succeeded: boolean): Promise<EngineState> {
    if (succeeded) {
      for (const [urn, old] of Object.entries(this.previous.resources)) {
        if (this.seen.has(urn)) continue;
        this.events.start?.({ urn, type: old.type, name: old.name, op: "delete" });
        const started = Date.now();
        const d = await this.handlers(old.type).delete?.(old);
        delete this.next.resources[urn];
        const entry: JournalEntry = {
          urn,
          type: old.type,
          name: old.name,
          op: "delete",
          ok: true,
          ms: Date.now() - started,
          ran: !!(d && d.ran),
        };
        this.journal.push(entry);
        this.events.end?.(entry);
      }
    }
    return this.next;
  }

  /** What changed in this run (everything but "same"). */
  changes(): JournalEntry[] {
    return this.journal.filter((j) => j.op !== "same");
  }
}
