// CiAccess built on its own under mocks. Other spec files in this mocha process install their
// own mocks (runProgram does, per evaluation), so this file installs its mocks in `before`,
// builds everything it inspects there, and flushes outstanding registrations before handing
// the process on.
import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";
import { CI_ROLE_PATH, CiAccess, CiAccessArgs } from "../../components/ci";
import { fakeEngine } from "./fakeEngine";

const ACCOUNT = "123456789012";
const PROVIDER_ARN = `arn:aws:iam::${ACCOUNT}:oidc-provider/token.actions.githubusercontent.com`;
const REPO = "acme/greenlight";

type Doc = { Statement: Record<string, any>[] }; // eslint-disable-line @typescript-eslint/no-explicit-any

const promiseOf = <T>(o: pulumi.Output<T>) => new Promise<T>((resolve) => o.apply(resolve));

/** Does this trust policy let a GitHub OIDC token with these claims assume the role? */
function admits(trust: Doc, claims: { sub: string; aud?: string }, via = PROVIDER_ARN): boolean {
  const values: Record<string, string> = {
    "token.actions.githubusercontent.com:sub": claims.sub,
    "token.actions.githubusercontent.com:aud": claims.aud ?? "sts.amazonaws.com",
  };
  return trust.Statement.some((s) => {
    if (s.Effect !== "Allow" || s.Action !== "sts:AssumeRoleWithWebIdentity" || s.Principal?.Federated !== via)
      return false;
    return Object.entries(s.Condition ?? {}).every(([op, conditions]) => {
      assert.equal(op, "StringEquals", "only exact matches: StringLike would admit wildcards");
      return Object.entries(conditions as Record<string, string | string[]>).every(([k, v]) =>
        [v].flat().includes(values[k]),
      );
    });
  });
}

describe("CiAccess (GitHub OIDC roles)", function () {
  const created: pulumi.runtime.MockResourceArgs[] = [];
  const built: Record<string, { ci: CiAccess; deployUrn: string }> = {};
  const of = (component: string, type: string) =>
    created.filter((r) => r.type === type && r.name.startsWith(`${component}-`));
  const doc = (component: string, type: string, kind: string): Doc => {
    const r = of(component, type).find((x) => x.name === `${component}-${kind}`);
    assert.ok(r, `${component}-${kind} (${type})`);
    return JSON.parse(type === "aws:iam/role:Role" ? r.inputs.assumeRolePolicy : r.inputs.policy);
  };
  const trust = (component: string, kind: "deploy" | "preview") => doc(component, "aws:iam/role:Role", kind);
  const permissions = (component: string, kind: "deploy" | "preview") =>
    doc(component, "aws:iam/rolePolicy:RolePolicy", kind);
  const base: CiAccessArgs = {
    repository: REPO,
    stack: "qa",
    createOidcProvider: true,
    stateBucketArn: "arn:aws:s3:::acme-pulumi-state",
    parameterPath: "/greenlight/qa/",
    region: "eu-west-1",
    kmsKeyArn: "arn:aws:kms:eu-west-1:123456789012:key/env-key",
  };

  before(async function () {
    await pulumi.runtime.setMocks(
      {
        newResource: (args) => {
          created.push(args);
          const arn =
            args.type === "aws:iam/openIdConnectProvider:OpenIdConnectProvider"
              ? `arn:aws:iam::${ACCOUNT}:oidc-provider/${String(args.inputs.url).replace(/^https:\/\//, "")}`
              : `arn:aws:iam::${ACCOUNT}:role${CI_ROLE_PATH}${args.name}`;
          return { id: `${args.name}-id`, state: { ...args.inputs, arn } };
        },
        // The program's invokes, as the unit tests answer them (unknown tokens throw).
        call: (args) => fakeEngine.call(args.token, args.inputs),
      },
      "greenlight",
      "qa",
      false,
    );
    const build = async (name: string, args: CiAccessArgs) => {
      const ci = new CiAccess(name, args);
      built[name] = { ci, deployUrn: await promiseOf(ci.deployRole.urn) };
    };
    await build("qa-ci", base);
    await build("prod-ci", {
      ...base,
      stack: "prod",
      createOidcProvider: false,
      parameterPath: "/greenlight/prod/",
      deployEnvironment: "production",
      extraRegions: ["eu-central-1"],
    });
    await build("nostate-ci", { ...base, createOidcProvider: false, stateBucketArn: undefined, kmsKeyArn: undefined });
    // Every registration (policies wait for role ids) is done before other files' mocks arrive.
    await pulumi.runtime.disconnect();
  });

  it("qa deploys from pushes to main of this repository only", () => {
    const t = trust("qa-ci", "deploy");
    assert.ok(admits(t, { sub: `repo:${REPO}:ref:refs/heads/main` }));
    assert.ok(!admits(t, { sub: `repo:${REPO}:ref:refs/heads/feature` }), "another branch");
    assert.ok(!admits(t, { sub: `repo:acme/fork-of-greenlight:ref:refs/heads/main` }), "another repository");
    assert.ok(!admits(t, { sub: `repo:${REPO}:pull_request` }), "a pull request");
    assert.ok(!admits(t, { sub: `repo:${REPO}:environment:production` }), "a job in an environment");
    assert.ok(
      !admits(t, { sub: `repo:${REPO}:ref:refs/heads/main`, aud: "https://github.com/acme" }),
      "another audience",
    );
    assert.ok(!admits(t, { sub: `repo:${REPO}:ref:refs/heads/main` }, "arn:aws:iam::999999999999:oidc-provider/x"));
  });

  it("prod deploys only from jobs in the `production` environment", () => {
    const t = trust("prod-ci", "deploy");
    assert.ok(admits(t, { sub: `repo:${REPO}:environment:production` }));
    assert.ok(
      !admits(t, { sub: `repo:${REPO}:ref:refs/heads/main` }),
      "a push to main without the environment's reviewers",
    );
    assert.ok(!admits(t, { sub: `repo:${REPO}:environment:qa` }));
    assert.ok(!admits(t, { sub: `repo:other/greenlight:environment:production` }));
  });

  it("previews are admitted from pull requests, and only previews", () => {
    for (const c of ["qa-ci", "prod-ci"]) {
      assert.ok(admits(trust(c, "preview"), { sub: `repo:${REPO}:pull_request` }));
      assert.ok(!admits(trust(c, "preview"), { sub: `repo:${REPO}:ref:refs/heads/main` }));
      assert.ok(!admits(trust(c, "deploy"), { sub: `repo:${REPO}:pull_request` }));
    }
  });

  it("the preview role can read the state and the program's lookups, and change nothing", () => {
    const actions = permissions("qa-ci", "preview").Statement.flatMap((s) => [s.Action].flat() as string[]);
    assert.ok(actions.includes("s3:GetObject") && actions.includes("ec2:DescribeImages"));
    for (const a of actions)
      assert.match(a, /^(s3:(GetObject|ListBucket|GetBucketLocation)|ec2:Describe\w+|route53:(List|Get)\w+)$/);
  });

  it("IAM actions never apply to `*`: only <stack>-* roles and profiles, PassRole only to EC2/S3", () => {
    for (const c of ["qa-ci", "prod-ci", "nostate-ci"]) {
      for (const kind of ["deploy", "preview"] as const) {
        for (const s of permissions(c, kind).Statement) {
          const actions = [s.Action].flat() as string[];
          const resources = [s.Resource].flat() as string[];
          if (!actions.some((a) => a.startsWith("iam:"))) continue;
          for (const r of resources) {
            assert.notEqual(r, "*", `${c}/${kind} ${s.Sid}`);
            assert.match(r, /^arn:aws:iam::123456789012:/, `${c}/${kind} ${s.Sid}: ${r}`);
          }
          if (s.Effect !== "Allow") continue;
          assert.ok(!actions.includes("iam:*"), `${s.Sid} grants every IAM action`);
          const escalations =
            /^iam:(Attach\w+|Put(User|Group)Policy|CreatePolicyVersion|CreateUser|CreateAccessKey|\w*OpenIDConnect\w*)$/;
          assert.ok(!actions.some((a) => escalations.test(a)), s.Sid);
          if (actions.includes("iam:PassRole")) {
            assert.deepEqual(s.Condition.StringEquals["iam:PassedToService"], [
              "ec2.amazonaws.com",
              "s3.amazonaws.com",
            ]);
          }
        }
      }
    }
    const roles = permissions("prod-ci", "deploy").Statement.find((s) => s.Sid === "StackRolesAndProfiles")!;
    assert.deepEqual(roles.Resource, [
      "arn:aws:iam::123456789012:role/prod-*",
      "arn:aws:iam::123456789012:instance-profile/prod-*",
    ]);
  });

  it("a workflow cannot touch its own roles or the OIDC provider, which live outside role/<stack>-*", () => {
    const deny = permissions("qa-ci", "deploy").Statement.find((s) => s.Sid === "NeverTheCiAccessItself")!;
    assert.equal(deny.Effect, "Deny");
    assert.deepEqual(deny.Action, ["iam:*"]);
    assert.deepEqual(deny.Resource, [`arn:aws:iam::${ACCOUNT}:role${CI_ROLE_PATH}*`, PROVIDER_ARN]);
    for (const r of of("qa-ci", "aws:iam/role:Role")) assert.equal(r.inputs.path, CI_ROLE_PATH);
    assert.equal(
      built["qa-ci"].deployUrn.split("::")[2],
      "greenlight:ci:CiAccess$aws:iam/role:Role",
      "children of the component",
    );
  });

  it("the deploy role is confined to the stack's names, regions, parameters, key and state", () => {
    const st = Object.fromEntries(permissions("prod-ci", "deploy").Statement.map((s) => [s.Sid, s]));
    assert.deepEqual(st.StackBuckets.Resource, ["arn:aws:s3:::prod-*", "arn:aws:s3:::prod-*/*"]);
    assert.deepEqual(st.StackParameters.Resource, [
      `arn:aws:ssm:eu-west-1:${ACCOUNT}:parameter/greenlight/prod/*`,
      `arn:aws:ssm:eu-central-1:${ACCOUNT}:parameter/greenlight/prod/*`,
    ]);
    assert.deepEqual(st.NetworkAndHosts.Condition, {
      StringEquals: { "aws:RequestedRegion": ["eu-west-1", "eu-central-1"] },
    });
    assert.equal(st.UseEnvironmentKey.Resource, base.kmsKeyArn);
    assert.deepEqual(st.StateObjects.Resource, [
      "arn:aws:s3:::acme-pulumi-state/.pulumi/stacks/greenlight/prod.json*",
      "arn:aws:s3:::acme-pulumi-state/.pulumi/history/greenlight/prod/*",
      "arn:aws:s3:::acme-pulumi-state/.pulumi/backups/greenlight/prod/*",
      "arn:aws:s3:::acme-pulumi-state/.pulumi/locks/*greenlight/prod/*",
    ]);
    assert.deepEqual(st.StackAlarms.Resource, [
      `arn:aws:cloudwatch:eu-west-1:${ACCOUNT}:alarm:prod-*`,
      `arn:aws:cloudwatch:eu-central-1:${ACCOUNT}:alarm:prod-*`,
    ]);
    const sids = permissions("nostate-ci", "deploy").Statement.map((s) => s.Sid);
    assert.ok(!sids.includes("StateObjects"), "no state bucket, no state access");
    for (const s of permissions("qa-ci", "deploy").Statement) {
      const resources = [s.Resource].flat();
      if (resources.includes("*") && s.Effect === "Allow") {
        const global = (s.Action as string[]).every((a) => a.startsWith("route53:"));
        assert.ok(
          global || s.Condition?.StringEquals?.["aws:RequestedRegion"],
          `${s.Sid}: * only within the stack's regions`,
        );
      }
    }
  });

  it("creates the account's OIDC provider only where asked (one stack per account), else trusts its well-known ARN", () => {
    const providers = created.filter((r) => r.type === "aws:iam/openIdConnectProvider:OpenIdConnectProvider");
    assert.deepEqual(
      providers.map((p) => p.name),
      ["qa-ci-github"],
    );
    assert.equal(providers[0].inputs.url, "https://token.actions.githubusercontent.com");
    assert.deepEqual(providers[0].inputs.clientIdLists, ["sts.amazonaws.com"]);
    assert.equal(trust("prod-ci", "deploy").Statement[0].Principal.Federated, PROVIDER_ARN);
  });

  it("refuses a malformed repository, environment or both provider options", () => {
    const bad = (over: Partial<CiAccessArgs>, expected: RegExp) =>
      assert.throws(() => new CiAccess(`bad-${Math.random()}`, { ...base, ...over }), expected);
    bad({ repository: "greenlight" }, /repository "greenlight" is not owner\/name/);
    bad({ repository: "acme/*" }, /not owner\/name/);
    bad({ deployEnvironment: "prod:*" }, /deployEnvironment/);
    bad({ deployBranch: "release/*" }, /deployBranch/);
    bad({ oidcProviderArn: PROVIDER_ARN }, /createOidcProvider and oidcProviderArn exclude each other/);
  });
});
