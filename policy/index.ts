// The "greenlight" CrossGuard pack. This is the only place a PolicyPack is constructed: the
// constructor starts the analyzer's gRPC server (and exits the process if a second pack is
// created), so the tests import `./policies` instead.
//
//   pulumi preview --stack qa --policy-pack policy
//   pulumi up --stack prod --policy-pack policy [--policy-pack-config FILE.json]   (see docs/ci.md)
import { PolicyPack } from "@pulumi/policy";
import { policies } from "./policies";

new PolicyPack("greenlight", {
  description: "greenlight's own guardrails: network exposure, encryption, backups, secrets and SSH host keys.",
  enforcementLevel: "mandatory",
  policies,
});
