// The lists config.ts accepts, against @pulumi/aws's enums (generated from the AWS API).
import * as assert from "assert";
import * as aws from "@pulumi/aws";
import { AWS_REGIONS, EC2_TYPES, RDS_CLASSES, isGithubRepository } from "../../components/catalog";

describe("catalog of real AWS names", () => {
  it("every EC2 type config accepts exists (@pulumi/aws ec2.InstanceType)", () => {
    const real = new Set<string>(Object.values(aws.ec2.InstanceType));
    const missing = [...EC2_TYPES].filter((t) => !real.has(t));
    assert.deepEqual(missing, []);
    assert.ok(EC2_TYPES.has("t3.small") && !EC2_TYPES.has("t3.huge") && !EC2_TYPES.has("t4g.small"));
  });

  it("every RDS class of the families @pulumi/aws's rds.InstanceType knows is one it lists", () => {
    const real = new Set<string>(Object.values(aws.rds.InstanceType));
    const families = new Set([...real].map((c) => c.split(".").slice(0, 2).join(".")));
    const checkable = [...RDS_CLASSES].filter((c) => families.has(c.split(".").slice(0, 2).join(".")));
    assert.ok(checkable.length >= 30, `${checkable.length} classes checkable`);
    // The enum predates a few sizes AWS added later (db.m5.8xlarge, db.m5.16xlarge, ...).
    const later = new Set(["db.m5.8xlarge", "db.m5.16xlarge", "db.r5.8xlarge", "db.r5.16xlarge"]);
    assert.deepEqual(
      checkable.filter((c) => !real.has(c) && !later.has(c)),
      [],
    );
  });

  it("the regions are @pulumi/aws's Region names of the aws partition", () => {
    const real = Object.values(aws.Region as Record<string, string>).filter(
      (r) => !/^(cn|us-gov|us-iso[a-z]*|eu-isoe|eusc)-/.test(r),
    );
    assert.deepEqual([...AWS_REGIONS].sort(), real.sort());
  });

  it("GitHub owner/name rules", () => {
    for (const ok of ["acme/site", "a/b", "acme-corp/site.web_2", `${"a".repeat(39)}/x`, "acme/.github"])
      assert.ok(isGithubRepository(ok), ok);
    for (const bad of [
      "acme",
      "acme/",
      "/x",
      "a/b/c",
      "-a/b",
      "a-/b",
      "a--b/c",
      `${"a".repeat(40)}/x`,
      "a/..",
      "a/.",
      "a/b c",
      "a_b/c",
    ])
      assert.ok(!isGithubRepository(bad), bad);
  });
});
