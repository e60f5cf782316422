// The rehearsal's mock engine must behave like `pulumi up` where the release flow depends on
// it: unchanged inputs run nothing, changed triggers replace (create before delete), other
// changes update, a failure keeps the old state and stops nothing else by itself, and only a
// successful run deletes what the program no longer declares.
import * as assert from "assert";
import { EngineState, Handler, StatefulEngine } from "../rig/engine";
import { Registered } from "../rig/program";

function resource(
  name: string,
  inputs: Record<string, unknown>,
  opts: Partial<Registered["options"]> = {},
): Registered {
  return {
    type: "command:remote:Command",
    name,
    urn: `urn:pulumi:qa::greenlight::command:remote:Command::${name}`,
    custom: true,
    inputs,
    options: {
      parent: "",
      dependencies: [],
      ignoreChanges: [],
      replaceOnChanges: ["triggers[*]"],
      deleteBeforeReplace: false,
      additionalSecretOutputs: [],
      protect: false,
      ...opts,
    },
  };
}

function recorder() {
  const calls: string[] = [];
  let fail = false;
  const handler: Handler = {
    async create(r, i) {
      calls.push(`create ${r.name} ${String(i.create)}`);
      if (fail) throw new Error(`${r.name} failed`);
      return { ran: true, state: { stdout: `out of ${String(i.create)}` } };
    },
    async update(r, i) {
      calls.push(`update ${r.name} ${String(i.update ?? i.create)}`);
      return { ran: true };
    },
    async delete(old) {
      calls.push(`delete ${old.name} ${String(old.inputs.create)}`);
      return { ran: true };
    },
  };
  return { calls, handler, failNext: (v: boolean) => (fail = v) };
}

async function run(state: EngineState, h: Handler, resources: Registered[], ok = true) {
  const engine = new StatefulEngine(
    state,
    () => h,
    () => ({}),
  );
  for (const r of resources) await engine.newResource(r).catch(() => undefined);
  return { engine, state: await engine.finish(ok) };
}

describe("rehearsal engine", () => {
  it("creates, then does nothing for unchanged inputs", async () => {
    const { calls, handler } = recorder();
    const a = resource("a", { create: "echo a", triggers: ["r1"] });
    const first = await run({ resources: {} }, handler, [a]);
    assert.deepEqual(calls, ["create a echo a"]);
    const second = await run(first.state, handler, [a]);
    assert.deepEqual(calls, ["create a echo a"], "nothing ran the second time");
    assert.deepEqual(second.engine.changes(), []);
    assert.equal(second.state.resources[a.urn].state.stdout, "out of echo a", "outputs are remembered");
  });

  it("replaces on changed triggers, creating the new one before deleting the old", async () => {
    const { calls, handler } = recorder();
    const first = await run({ resources: {} }, handler, [resource("a", { create: "v1", triggers: ["r1"] })]);
    calls.length = 0;
    const second = await run(first.state, handler, [resource("a", { create: "v2", triggers: ["r2"] })]);
    assert.deepEqual(calls, ["create a v2", "delete a v1"]);
    assert.equal(second.engine.changes()[0].op, "replace");
    calls.length = 0;
    const third = resource("a", { create: "v3", triggers: ["r3"] }, { deleteBeforeReplace: true });
    await run(second.state, handler, [third]);
    assert.deepEqual(calls, ["delete a v2", "create a v3"], "deleteBeforeReplace deletes first");
  });

  it("updates on other changes (running update, not create), and honours ignoreChanges", async () => {
    const { calls, handler } = recorder();
    const first = await run({ resources: {} }, handler, [
      resource("a", { create: "v1", update: "noop", triggers: ["r1"] }),
    ]);
    calls.length = 0;
    await run(first.state, handler, [resource("a", { create: "v2", update: "noop", triggers: ["r1"] })]);
    assert.deepEqual(calls, ["update a noop"]);
    calls.length = 0;
    const ignoring = resource("a", { create: "v3", update: "noop", triggers: ["r1"] }, { ignoreChanges: ["create"] });
    const again = await run(first.state, handler, [ignoring]);
    assert.deepEqual(calls, [], "an ignored property is not a change");
    assert.deepEqual(again.engine.changes(), []);
  });

  it("a failed resource keeps its old state; a failed run deletes nothing it did not reach", async () => {
    const rec = recorder();
    const a = resource("a", { create: "v1", triggers: ["r1"] });
    const b = resource("b", { create: "b1", triggers: ["r1"] });
    const first = await run({ resources: {} }, rec.handler, [a, b]);
    rec.calls.length = 0;
    rec.failNext(true);
    const failed = await run(first.state, rec.handler, [resource("a", { create: "v2", triggers: ["r2"] })], false);
    assert.deepEqual(failed.state.resources[a.urn].inputs.create, "v1", "the old state stays");
    assert.ok(failed.state.resources[b.urn], "b was not reached: it stays");
    assert.ok(!rec.calls.some((c) => c.startsWith("delete")), "nothing deleted after a failure");
    assert.equal(failed.engine.journal.find((j) => j.name === "a")?.ok, false);
  });

  it("a successful run deletes what the program no longer declares", async () => {
    const { calls, handler } = recorder();
    const a = resource("a", { create: "v1" });
    const b = resource("b", { create: "b1" });
    const first = await run({ resources: {} }, handler, [a, b]);
    calls.length = 0;
    const second = await run(first.state, handler, [a]);
    assert.deepEqual(calls, ["delete b b1"]);
    assert.deepEqual(Object.keys(second.state.resources), [a.urn]);
  });
});
