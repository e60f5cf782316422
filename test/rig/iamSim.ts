// Evaluates the program's real IAM policy documents offline with @cloud-copilot/iam-simulate.
import * as assert from "assert";
import { runSimulation } from "@cloud-copilot/iam-simulate";

export const ACCOUNT = "123456789012";
export type PolicyDoc = { Version: string; Statement: Record<string, unknown>[] };
export type Decision = "Allowed" | "ExplicitlyDenied" | "ImplicitlyDenied";

/**
 * The decision for `principal` (whose identity policy is `policy`) calling `action` on
 * `resource`, with `context` (aws:ResourceTag/..., aws:RequestedRegion, s3:prefix ...).
 * A request the simulator finds malformed (an action that does not exist, an ARN the action
 * does not take, an unknown context key) fails the test rather than counting as a denial.
 * `resourcePolicy` is the resource's own policy (a KMS key policy, a bucket policy).
 */
export async function decide(
  policy: PolicyDoc,
  action: string,
  resource: string,
  context: Record<string, string | string[]> = {},
  principal = `arn:aws:iam::${ACCOUNT}:role/test`,
  resourcePolicy?: PolicyDoc,
): Promise<Decision> {
  const r = await runSimulation(
    {
      identityPolicies: [{ name: "policy", policy }],
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      resourcePolicy,
      request: {
        principal,
        action,
        resource: { resource, accountId: ACCOUNT },
        contextVariables: context,
      },
    },
    {},
  );
  if (r.resultType === "error") assert.fail(`simulation of ${action} on ${resource}: ${JSON.stringify(r.errors)}`);
  return r.overallResult as Decision;
}
