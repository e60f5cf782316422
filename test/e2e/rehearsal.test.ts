// The rehearsal (npm run rehearse) as the end-to-end test: the real program under the
// stateful mock engine, with every remote command run over SSH on local hosts.
import * as assert from "assert";
import { rehearse } from "../rig/scenario";

describe("rehearsal (end to end)", function () {
  this.timeout(30 * 60_000);

  it("qa: provision, release, cutover under load, rollback, failed migration, fixed release, cleanup", async () => {
    const lines: string[] = [];
    const result = await rehearse({ stack: "qa", log: (l) => lines.push(l) });
    const failed = result.steps.flatMap((s) =>
      s.checks.filter((c) => !c.ok).map((c) => `${s.name}: ${c.what} ${c.detail ?? ""}`),
    );
    assert.deepEqual(failed, [], lines.join("\n"));
    assert.equal(result.steps.length, 7);
    assert.ok(result.ok);
    const rollback = result.steps[3];
    assert.equal(rollback.up?.changes.length, 1, "rollback changes one resource");
    assert.equal(rollback.up?.commands.length, 0, "rollback runs no command");
    assert.equal(result.outputs.liveRelease, "r4");
    assert.ok(lines.some((l) => l.includes("stopped every process")));
  });
});
