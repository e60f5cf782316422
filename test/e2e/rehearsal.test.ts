// The rehearsal (npm run rehearse) as the end-to-end test: the real index.ts under the real
// Pulumi CLI and engine, with every remote command run over SSH on local hosts (see
// test/rig/rehearsal.ts for what is real and what stands in).
import * as assert from "assert";
import { PREVIEW_BUDGET, RehearsalResult, rehearse } from "../rig/scenario";

function failedChecks(result: RehearsalResult): string[] {
  return result.steps.flatMap((s) =>
    s.checks.filter((c) => !c.ok).map((c) => `${s.name}: ${c.what} ${c.detail ?? ""}`),
  );
}

for (const stack of ["qa", "prod"]) {
  describe(`rehearsal of ${stack} (end to end, real Pulumi CLI)`, function () {
    this.timeout(40 * 60_000);
    const lines: string[] = [];
    let result: RehearsalResult;

    before(async () => {
      result = await rehearse({ stack, log: (l) => lines.push(l) });
    });

    it("provision, release, cutover under reads and writes, a non-release update, rollback, (qa: an unsafe release refused,) failed migration, fixed release, cleanup, (qa: a maintenance release,) a restore with its media", () => {
      assert.deepEqual(failedChecks(result), [], lines.join("\n"));
      assert.equal(result.steps.length, stack === "qa" ? 12 : 9);
      assert.ok(result.ok);
      // Both end with the restore and the rollback that goes with it: qa to r4 (behind r5), prod to r1.
      assert.equal(result.outputs.liveRelease, stack === "qa" ? "r4" : "r1");
      assert.ok(lines.some((l) => l.includes("stopped every process")));
    });

    it("ran the real pulumi binary, and says which providers are stand-ins", () => {
      assert.ok(
        lines.some((l) => /\$ pulumi version: v3\.\d+\.\d+ \(.*toolchain\/pulumi-v3\.\d+\.\d+\/bin\)/.test(l)),
        "the transcript shows `pulumi version` of the toolchain's binary",
      );
      assert.ok(lines.some((l) => /providers: aws, random, tls.* stand-in plugins/.test(l)));
    });

    it("rollback changes one resource and runs no command (prod, with Redis: but the workers' stop and start)", () => {
      const rollback = result.steps.find((s) => s.name === "rollback")!;
      // prod has Redis by default: the workers follow the listener (docs/architecture.md).
      const workers = (n: string) => stack === "prod" && /-workers-(stop|start)-\d+$/.test(n);
      const changes = rollback.up?.changes.filter((c) => !workers(c.name)) ?? [];
      assert.equal(changes.length, 1, "rollback changes one resource");
      assert.equal(changes[0].type, "aws:lb/listener:Listener");
      assert.deepEqual(
        rollback.up?.commands.filter((c) => !workers(c)),
        [],
        "rollback runs no command",
      );
      if (stack === "prod") assert.equal(rollback.up?.commands.length, 4, "workers-stop and -start on both hosts");
    });

    it("the preview of a release fits a PR comment and shows what will happen", () => {
      assert.ok(result.preview.length > 0);
      assert.ok(result.preview.length < PREVIEW_BUDGET, `${result.preview.length} characters`);
      assert.match(result.preview, /notes\.0003_note_pinned/, "it names the release's migrations");
    });

    if (stack === "qa")
      it("an unsafe release is refused at the check, before the backup, with the migration, the operation and the safe way", () => {
        const unsafe = result.steps.find((s) => s.name === "unsafe release r2u");
        assert.ok(unsafe, "the scenario has the step");
        assert.deepEqual(
          unsafe.checks.filter((c) => !c.ok),
          [],
        );
        assert.ok(unsafe.up && !unsafe.up.ok);
        assert.match(Object.values(unsafe.up.errors).join("\n"), /notes\.0004_note_priority, operation 1 AddField/);
      });

    it("a restore requested through config runs once, under maintenance mode, and leaves the backup's data and media", () => {
      const restore = result.steps.find((s) => s.name === "restore");
      assert.ok(restore, "the scenario has the step");
      assert.deepEqual(
        restore.checks.filter((c) => !c.ok),
        [],
      );
      assert.ok(
        restore.checks.some((c) => /upload made after the backup is gone/.test(c.what)),
        "it checked the media restore",
      );
      assert.ok(restore.up?.ok);
      assert.deepEqual(
        restore.up.commands.filter((c) => c.endsWith("-restore")),
        [`${stack}-release-restore`],
      );
    });
  });
}
