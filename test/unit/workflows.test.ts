// The GitHub workflows and the CI helper script, read as data: what runs when, with which
// permissions and credentials, and that SSH is opened only to the runner and always closed.
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parse } from "yaml";
import { ROOT } from "../rig/stackConfig";

/* eslint-disable @typescript-eslint/no-explicit-any -- workflow files are untyped YAML */
type Step = { name?: string; uses?: string; run?: string; if?: string; with?: Record<string, any> };
type Job = {
  if?: string;
  environment?: string | { name: string };
  permissions?: Record<string, string>;
  concurrency?: { group: string; "cancel-in-progress"?: boolean };
  strategy?: { matrix: { include?: Record<string, string>[]; stack?: string[] } };
  container?: { image: string; options?: string };
  "runs-on": string;
  env?: Record<string, string>;
  steps: Step[];
};
type Workflow = { on: Record<string, any>; permissions?: Record<string, string>; jobs: Record<string, Job> };
/* eslint-enable @typescript-eslint/no-explicit-any */

const DIR = path.join(ROOT, ".github", "workflows");
const read = (f: string) => fs.readFileSync(path.join(DIR, f), "utf8");
const load = (f: string) => parse(read(f)) as Workflow;
const files = () => fs.readdirSync(DIR).filter((f) => /\.ya?ml$/.test(f));
const steps = (w: Workflow) => Object.values(w.jobs).flatMap((j) => j.steps);
const usesOf = (j: Job, action: string) => j.steps.filter((s) => s.uses?.split("@")[0] === action);

/** Inputs of pulumi/actions (its action.yml): a misspelt input is silently ignored by GitHub. */
const PULUMI_ACTION_INPUTS = new Set([
  "command",
  "stack-name",
  "pulumi-version",
  "pulumi-version-file",
  "work-dir",
  "comment-on-pr",
  "comment-on-pr-number",
  "comment-on-summary",
  "github-token",
  "cloud-url",
  "secrets-provider",
  "parallel",
  "message",
  "config-map",
  "expect-no-changes",
  "diff",
  "replace",
  "target",
  "target-dependents",
  "policyPacks",
  "policyPackConfigs",
  "refresh",
  "upsert",
  "remove",
  "edit-pr-comment",
  "color",
  "exclude-protected",
  "plan",
  "suppress-outputs",
  "suppress-progress",
  "always-include-summary",
]);

describe("GitHub workflows", () => {
  it("ci.yml runs exactly the README's `npm ci && npm test`, as root on Debian, on PRs and pushes", () => {
    const w = load("ci.yml");
    assert.ok("pull_request" in w.on && "push" in w.on);
    const [job] = Object.values(w.jobs);
    assert.equal(job["runs-on"], "ubuntu-latest");
    assert.deepEqual(
      job.steps.filter((s) => s.run).map((s) => s.run!.trim()),
      ["npm ci && npm test"],
    );
    const node = usesOf(job, "actions/setup-node")[0];
    assert.equal(String(node.with?.["node-version"]), "22");
    assert.equal(node.with?.cache, "npm");
    // The host tests need root and namespaces; the image is Debian 12 with Node 22.
    assert.match(job.container!.image, /^node:22-bookworm/);
    // pretest builds the real Pulumi CLI with Go; its cache is keyed by the pinned go.sum.
    assert.equal(usesOf(job, "actions/setup-go").length, 1);
    const cache = usesOf(job, "actions/cache")[0];
    assert.match(String(cache.with?.key), /hashFiles\('scripts\/dev\/pulumi-toolchain\/go\.sum'\)/);
    assert.match(job.container!.options ?? "", /--privileged/);
    assert.deepEqual(job.permissions, { contents: "read" });
  });

  it("every workflow starts from no permissions; jobs ask only for what they use", () => {
    for (const f of files()) {
      const w = load(f);
      assert.deepEqual(w.permissions, {}, `${f}: top-level permissions: {}`);
      for (const [name, job] of Object.entries(w.jobs)) {
        const p = job.permissions ?? {};
        assert.equal(p.contents, "read", `${f}/${name} reads the repository`);
        for (const [scope, level] of Object.entries(p)) {
          if (level !== "write") continue;
          if (scope === "id-token") {
            assert.ok(
              usesOf(job, "aws-actions/configure-aws-credentials").length,
              `${f}/${name}: id-token only for OIDC`,
            );
          } else if (scope === "pull-requests") {
            const commenting = usesOf(job, "pulumi/actions").some((s) => s.with?.["comment-on-pr"] === true);
            assert.ok(commenting, `${f}/${name}: pull-requests: write only where it comments`);
          } else {
            assert.fail(`${f}/${name} asks for ${scope}: write`);
          }
        }
      }
    }
    assert.equal(load("deploy.yml").jobs.qa.permissions?.["pull-requests"], undefined);
  });

  it("preview.yml previews qa and prod on pull requests, comments and edits its comment, with the policy pack", () => {
    const w = load("preview.yml");
    assert.deepEqual(Object.keys(w.on), ["pull_request"]);
    const [job] = Object.values(w.jobs);
    assert.equal(
      job.if,
      "github.event.pull_request.head.repo.full_name == github.repository",
      "forks get no OIDC token",
    );
    const stacks = job.strategy!.matrix.include!.map((m) => m.stack).sort();
    assert.deepEqual(stacks, ["prod", "qa"]);
    assert.deepEqual(job.permissions, { contents: "read", "pull-requests": "write", "id-token": "write" });
    const pulumi = usesOf(job, "pulumi/actions");
    assert.equal(pulumi.length, 1);
    const inputs = pulumi[0].with!;
    assert.equal(inputs.command, "preview");
    assert.equal(inputs["stack-name"], "${{ matrix.stack }}");
    assert.equal(inputs["comment-on-pr"], true);
    assert.equal(inputs["edit-pr-comment"], true);
    // The comment is trimmed from the end at 64,000 characters: the summary must survive.
    assert.equal(inputs["always-include-summary"], true);
    assert.equal(inputs.diff, true);
    assert.equal(inputs.policyPacks, "policy");
    assert.match(inputs["cloud-url"], /^\$\{\{ vars\.[A-Z_]+ \}\}$/);
    assert.equal(job.env?.PULUMI_CONFIG_PASSPHRASE, "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}");
    const aws = usesOf(job, "aws-actions/configure-aws-credentials")[0].with!;
    assert.equal(aws["role-to-assume"], "${{ vars[matrix.role] }}");
    for (const m of job.strategy!.matrix.include!)
      assert.match(m.role, new RegExp(`^AWS_PREVIEW_ROLE_ARN_${m.stack.toUpperCase()}$`));
  });

  describe("deploy.yml", () => {
    const w = () => load("deploy.yml");

    it("pushes to main bring qa up; v* tags and manual runs bring prod up in the production environment", () => {
      const { on, jobs } = w();
      assert.deepEqual(on.push.branches, ["main"]);
      assert.deepEqual(on.push.tags, ["v*"]);
      assert.ok("workflow_dispatch" in on);
      assert.match(jobs.qa.if!, /github\.ref == 'refs\/heads\/main'/);
      assert.equal(
        jobs.qa.environment,
        undefined,
        "qa's role trusts refs/heads/main, which an environment would replace",
      );
      assert.equal(jobs.prod.environment, "production");
      assert.match(jobs.prod.if!, /startsWith\(github\.ref, 'refs\/tags\/v'\)/);
      assert.match(jobs.prod.if!, /workflow_dispatch/);
      for (const [stack, job] of Object.entries(jobs)) {
        const up = usesOf(job, "pulumi/actions").filter((s) => s.with?.command);
        assert.equal(up.length, 1);
        assert.equal(up[0].with!.command, "up");
        assert.equal(up[0].with!["stack-name"], stack);
        assert.equal(up[0].with!.policyPacks, "policy");
        const role = usesOf(job, "aws-actions/configure-aws-credentials")[0].with!["role-to-assume"];
        assert.equal(role, `\${{ vars.AWS_DEPLOY_ROLE_ARN_${stack.toUpperCase()} }}`);
      }
    });

    it("one run per stack at a time, never cancelled half-way", () => {
      const groups = Object.entries(w().jobs).map(([stack, job]) => {
        assert.equal(job.concurrency!["cancel-in-progress"], false, stack);
        assert.ok(job.concurrency!.group.includes(stack), `${stack}'s group names the stack`);
        return job.concurrency!.group;
      });
      assert.equal(new Set(groups).size, groups.length, "each stack has its own group");
    });

    it("opens SSH to the runner before `up` and always closes it afterwards", () => {
      for (const [stack, job] of Object.entries(w().jobs)) {
        const names = job.steps.map((s) => s.run ?? s.with?.command ?? s.uses);
        const open = names.indexOf('scripts/ci/ssh-ingress.sh open "$STACK"');
        const up = job.steps.findIndex((s) => s.with?.command === "up");
        const close = names.indexOf('scripts/ci/ssh-ingress.sh close "$STACK"');
        assert.ok(open >= 0 && open < up && up < close, `${stack}: open, up, close in that order`);
        assert.equal(job.steps[close].if, "always()", `${stack}: the close step runs even when up fails`);
        assert.equal(job.env?.STACK, stack);
        const cli = job.steps.findIndex((s) => s.uses?.startsWith("pulumi/actions@") && !s.with?.command);
        assert.ok(cli >= 0 && cli < open, `${stack}: the Pulumi CLI is installed before the script reads outputs`);
      }
    });
  });

  it("every `uses:` is pinned to a version tag or a commit, never a branch", () => {
    for (const f of files()) {
      for (const s of steps(load(f)).filter((x) => x.uses)) {
        assert.match(s.uses!, /^[\w.-]+\/[\w./-]+@(v\d+(\.\d+){0,2}|[0-9a-f]{40})$/, `${f}: ${s.uses}`);
      }
    }
  });

  it("every pulumi/actions step pins the CLI version the tests build and run", () => {
    const gomod = fs.readFileSync(path.join(ROOT, "scripts", "dev", "pulumi-toolchain", "go.mod"), "utf8");
    const tested = /^require github\.com\/pulumi\/pulumi\/pkg\/v3 v(\d+\.\d+\.\d+)$/m.exec(gomod)?.[1];
    assert.ok(tested, "go.mod pins pkg/v3");
    let seen = 0;
    for (const f of files()) {
      for (const s of steps(load(f)).filter((x) => x.uses?.startsWith("pulumi/actions@"))) {
        assert.equal(String(s.with?.["pulumi-version"]), tested, `${f}: ${s.name ?? s.with?.command ?? s.uses}`);
        seen++;
      }
    }
    assert.ok(seen >= 5);
  });

  it("pulumi/actions gets only inputs its action.yml declares", () => {
    for (const f of files()) {
      for (const s of steps(load(f)).filter((x) => x.uses?.startsWith("pulumi/actions@"))) {
        for (const k of Object.keys(s.with ?? {})) assert.ok(PULUMI_ACTION_INPUTS.has(k), `${f}: unknown input ${k}`);
      }
    }
  });

  it("AWS access comes from OIDC roles, never from access keys", () => {
    for (const f of files()) {
      const text = read(f);
      assert.doesNotMatch(text, /AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY|aws-access-key-id|aws-secret-access-key/, f);
      for (const j of Object.values(load(f).jobs)) {
        for (const s of usesOf(j, "aws-actions/configure-aws-credentials")) {
          assert.match(
            s.with!["role-to-assume"],
            /^\$\{\{ vars[.[]/,
            `${f}: the role comes from a repository variable`,
          );
        }
      }
    }
  });
});

describe("docs/app-release-workflow.yml (for the app's own repository; not run here)", () => {
  const file = path.join(ROOT, "docs", "app-release-workflow.yml");
  const w = () => parse(fs.readFileSync(file, "utf8")) as Workflow;
  const job = () => w().jobs.release;
  const runs = () => job().steps.filter((s) => s.run);

  it("builds on a clean runner, releases, then opens the stack-file change as a PR in greenlight", () => {
    assert.deepEqual(w().permissions, {});
    assert.deepEqual(job().permissions, { contents: "read", "id-token": "write" });
    assert.equal(job().concurrency?.["cancel-in-progress"], false, "two releases would race for the idle slot");
    const script = runs()
      .map((s) => s.run)
      .join("\n");
    const at = (re: RegExp) => {
      const i = script.search(re);
      assert.ok(i >= 0, `${re} in the workflow`);
      return i;
    };
    const order = [
      at(/^npm ci$/m),
      at(/npm run check-site -- \.\.\/site/),
      at(/npm run package-site -- \.\.\/site --out /),
      at(/npm run release -- --stack "\$STACK" --artifact .* --id "\$id" --bucket "\$BUCKET"/),
      at(/git add "Pulumi\.\$STACK\.yaml"/),
      at(/gh pr create --repo "\$GREENLIGHT" --base main/),
    ];
    assert.deepEqual(
      [...order].sort((a, b) => a - b),
      order,
    );
    const pr = runs().find((s) => s.run!.includes("gh pr create"))!;
    assert.match(String((pr as { env?: Record<string, string> }).env?.GH_TOKEN), /steps\.token\.outputs\.token/);
  });

  it("takes AWS from an OIDC role, pins every action and the Pulumi CLI, and keeps expressions out of scripts", () => {
    const text = fs.readFileSync(file, "utf8");
    assert.doesNotMatch(text, /AWS_ACCESS_KEY_ID|aws-access-key-id|PULUMI_ACCESS_TOKEN/);
    for (const s of job().steps.filter((x) => x.uses)) {
      assert.match(s.uses!, /^[\w.-]+\/[\w./-]+@(v\d+(\.\d+){0,2}|[0-9a-f]{40})$/, s.uses);
    }
    const aws = usesOf(job(), "aws-actions/configure-aws-credentials");
    assert.equal(aws.length, 1);
    assert.match(aws[0].with!["role-to-assume"], /vars\.AWS_RELEASE_ROLE_ARN_/);
    const gomod = fs.readFileSync(path.join(ROOT, "scripts", "dev", "pulumi-toolchain", "go.mod"), "utf8");
    const tested = /^require github\.com\/pulumi\/pulumi\/pkg\/v3 v(\d+\.\d+\.\d+)$/m.exec(gomod)?.[1];
    assert.equal(String(usesOf(job(), "pulumi/actions")[0].with?.["pulumi-version"]), tested);
    // A commit message or branch name in ${{ }} inside a script would be script injection.
    for (const s of runs()) assert.doesNotMatch(s.run!, /\$\{\{/, s.name ?? s.run);
  });

  it("its scripts are shellcheck-clean bash (as GitHub runs them: bash -eo pipefail)", function () {
    this.timeout(10 * 60_000);
    const shellcheck = ensureShellcheck();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gl-appwf-"));
    try {
      const list = runs().map((s, i) => {
        const f = path.join(dir, `step${i}.sh`);
        fs.writeFileSync(f, `#!/usr/bin/env bash\nset -eo pipefail\n${s.run}`);
        return f;
      });
      const r = spawnSync(shellcheck, ["--severity=style", ...list], { encoding: "utf8" });
      assert.equal(r.status, 0, `shellcheck:\n${r.stdout}${r.stderr}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("scripts/ci", () => {
  const scripts = () =>
    fs
      .readdirSync(path.join(ROOT, "scripts", "ci"))
      .filter((f) => f.endsWith(".sh"))
      .map((f) => path.join(ROOT, "scripts", "ci", f));

  it("are shellcheck-clean, strict-mode bash and executable", function () {
    this.timeout(10 * 60_000);
    const shellcheck = ensureShellcheck();
    const list = scripts();
    assert.ok(list.length >= 1);
    const r = spawnSync(shellcheck, ["--severity=style", ...list], { encoding: "utf8" });
    assert.equal(r.status, 0, `shellcheck:\n${r.stdout}${r.stderr}`);
    for (const f of list) {
      const text = fs.readFileSync(f, "utf8");
      assert.match(text, /^#!\/usr\/bin\/env bash\n/, f);
      assert.match(text, /^set -Eeuo pipefail$/m, f);
      assert.ok(fs.statSync(f).mode & 0o111, `${f} is executable`);
    }
  });

  describe("ssh-ingress.sh, with stand-ins for curl, pulumi and aws", () => {
    let dir: string;
    const script = path.join(ROOT, "scripts", "ci", "ssh-ingress.sh");

    beforeEach(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), "ssh-ingress-"));
      const stub = (name: string, body: string) =>
        fs.writeFileSync(path.join(dir, name), `#!/usr/bin/env bash\n${body}\n`, { mode: 0o755 });
      stub("curl", 'echo "198.51.100.7"');
      stub(
        "pulumi",
        'echo "pulumi $*" >>"$STUB_LOG"\n' +
          'if [[ -z ${STUB_SG:-} ]]; then echo "error: current stack does not have output property" >&2; exit 255; fi\n' +
          'echo "$STUB_SG"',
      );
      stub(
        "aws",
        'printf "aws" >>"$STUB_LOG"; printf " <%s>" "$@" >>"$STUB_LOG"; echo >>"$STUB_LOG"\n' +
          'if [[ $2 == describe-security-group-rules ]]; then cat "$STUB_RULES" 2>/dev/null || echo None; fi',
      );
    });
    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

    function run(args: string[], env: Record<string, string> = {}) {
      const log = path.join(dir, "log");
      const r = spawnSync("bash", [script, ...args], {
        encoding: "utf8",
        env: {
          PATH: `${dir}:${process.env.PATH}`,
          HOME: dir,
          GITHUB_RUN_ID: "4242",
          STUB_LOG: log,
          STUB_RULES: path.join(dir, "rules"),
          STUB_SG: "sg-0abc123",
          ...env,
        },
      });
      const calls = fs.existsSync(log) ? fs.readFileSync(log, "utf8").trim().split("\n") : [];
      return { code: r.status, out: `${r.stdout}${r.stderr}`, calls, aws: calls.filter((c) => c.startsWith("aws")) };
    }
    const rules = (ids: string) => fs.writeFileSync(path.join(dir, "rules"), `${ids}\n`);

    it("open adds 22/tcp from the runner's /32 to the stack's SSH group, named after the run", () => {
      const r = run(["open", "qa"]);
      assert.equal(r.code, 0, r.out);
      assert.ok(r.calls.includes("pulumi stack output --stack qa sshIngressSecurityGroupId"));
      assert.equal(r.aws.length, 2, r.calls.join("\n"));
      assert.match(r.aws[0], /<describe-security-group-rules> <--filters> <Name=group-id,Values=sg-0abc123>/);
      assert.match(r.aws[0], /CidrIpv4=='198\.51\.100\.7\/32'/);
      assert.match(r.aws[0], /FromPort==`22`/);
      assert.match(
        r.aws[1],
        /<authorize-security-group-ingress> <--group-id> <sg-0abc123> <--ip-permissions> <IpProtocol=tcp,FromPort=22,ToPort=22,IpRanges=\[\{CidrIp=198\.51\.100\.7\/32,Description=greenlight-ci-4242\}\]>/,
      );
    });

    it("open is idempotent: an existing rule for the same address is left alone", () => {
      rules("sgr-0existing");
      const r = run(["open", "qa"]);
      assert.equal(r.code, 0, r.out);
      assert.equal(r.aws.length, 1, "only the lookup");
      assert.match(r.out, /already allows 22\/tcp from 198\.51\.100\.7\/32/);
    });

    it("close revokes every greenlight-ci rule of the group (this run's and stale ones), and nothing else", () => {
      rules("sgr-0a\tsgr-0b");
      const r = run(["close", "prod"]);
      assert.equal(r.code, 0, r.out);
      assert.match(r.aws[0], /starts_with\(Description \|\| '', 'greenlight-ci-'\)/);
      assert.match(
        r.aws[1],
        /<revoke-security-group-ingress> <--group-id> <sg-0abc123> <--security-group-rule-ids> <sgr-0a> <sgr-0b>$/,
      );
      fs.rmSync(path.join(dir, "log"));
      rules("None");
      const again = run(["close", "prod"]);
      assert.equal(again.code, 0, again.out);
      assert.equal(again.aws.length, 1, "nothing left to revoke");
    });

    it("before the first `up` (no output yet) open and close warn and change nothing", () => {
      for (const action of ["open", "close"]) {
        const r = run([action, "qa"], { STUB_SG: "" });
        assert.equal(r.code, 0, r.out);
        assert.deepEqual(r.aws, []);
        assert.match(r.out, /::warning title=ssh-ingress::stack qa has no output sshIngressSecurityGroupId/);
      }
    });

    it("refuses bad arguments, a missing run id and an output that is not a security group", () => {
      assert.equal(run(["opn", "qa"]).code, 2);
      assert.equal(run(["open"]).code, 2);
      assert.notEqual(run(["open", "qa; rm -rf /"]).code, 0);
      const noRun = run(["open", "qa"], { GITHUB_RUN_ID: "" });
      assert.notEqual(noRun.code, 0);
      assert.match(noRun.out, /GITHUB_RUN_ID/);
      const odd = run(["open", "qa"], { STUB_SG: "sg-1 --group-name x" });
      assert.notEqual(odd.code, 0);
      assert.deepEqual(odd.aws, []);
    });
  });
});

/**
 * shellcheck's path. Like the host tests, never skip: use it, install it when root on Debian,
 * or fail saying how to get it.
 */
function ensureShellcheck(): string {
  const found = ["/usr/bin/shellcheck", "/usr/local/bin/shellcheck"].find((p) => fs.existsSync(p));
  if (found) return found;
  if (process.getuid?.() === 0 && fs.existsSync("/usr/bin/apt-get")) {
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    for (const args of [["update"], ["install", "-y", "--no-install-recommends", "shellcheck"]]) {
      const r = spawnSync("apt-get", args, { encoding: "utf8", env });
      assert.equal(r.status, 0, `apt-get ${args.join(" ")} failed:\n${(r.stdout + r.stderr).slice(-2000)}`);
    }
    if (fs.existsSync("/usr/bin/shellcheck")) return "/usr/bin/shellcheck";
  }
  assert.fail("shellcheck is not installed: apt-get install shellcheck (the tests install it themselves when root)");
}
