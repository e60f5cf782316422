// The rehearsal's aws stand-in answers Diff from replaces.ts, and refuses a type it has no row
// for (a `pulumi up` then fails). Every AWS resource type the program declares, in either stack
// and with every optional part on, must have its row.
import * as assert from "assert";
import { AWS_REPLACES } from "../rig/providers/replaces";
import { evaluate } from "./fakeEngine";

describe("the rehearsal's aws stand-in knows what replaces every resource the program declares", function () {
  this.timeout(120_000);
  for (const [stack, overrides] of [
    ["qa", {}],
    ["prod", { redis: "on", backupReplicaRegion: "eu-central-1" }],
  ] as const) {
    it(`${stack}${"redis" in overrides ? " (with Redis and the backup replica region)" : ""}`, async () => {
      const run = await evaluate(stack, overrides);
      const types = [...new Set(run.resources.filter((r) => r.custom && r.type.startsWith("aws:")).map((r) => r.type))];
      assert.ok(
        types.includes(
          stack === "prod" ? "aws:elasticache/replicationGroup:ReplicationGroup" : "aws:ec2/instance:Instance",
        ),
      );
      assert.deepEqual(
        types.filter((t) => !AWS_REPLACES[t]).sort(),
        [],
        "types without a row in test/rig/providers/replaces.ts",
      );
    });
  }
});
