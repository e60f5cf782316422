import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { CONFIG_SCHEMA, ConfigError, SECRET_LOOKING_SETTING, envName, parseConfig } from "../../components/config";
import { SECRET_NAME } from "../../policy/policies";
import { planSubnets } from "../../components/network";
import { pulumiYaml, readmeWithTable } from "../../scripts/cli/gen-config";
import { Override, ROOT, stackConfig } from "../rig/stackConfig";

function parse(stack: string, overrides: Record<string, Override> = {}) {
  const c = stackConfig(stack, overrides);
  return parseConfig(c.values, new Set(c.secretKeys), { stack });
}

function rejects(stack: string, overrides: Record<string, Override>, ...expected: (string | RegExp)[]): ConfigError {
  try {
    parse(stack, overrides);
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${e}`);
    for (const x of expected) {
      if (typeof x === "string") assert.ok(e.message.includes(x), `error should mention ${x}:\n${e.message}`);
      else assert.match(e.message, x);
    }
    return e;
  }
  assert.fail(`config ${JSON.stringify(overrides)} was accepted`);
}

describe("config", () => {
  it("reads the qa stack file: one public host, small DB, no domain", () => {
    const c = parse("qa");
    assert.equal(c.hostCount, 1);
    assert.equal(c.privateHosts, false);
    assert.equal(c.domain, undefined);
    assert.equal(c.db.backupRetentionDays, 1);
    assert.equal(c.deletionProtection, false);
    assert.equal(c.db.multiAz, false);
    assert.equal(c.parameterPath, "/greenlight/qa/");
    assert.deepEqual(c.slots, { blue: undefined, green: undefined });
  });

  it("reads the prod stack file: two private hosts, Multi-AZ DB, 14-day backups, protection, HTTPS", () => {
    const c = parse("prod");
    assert.equal(c.hostCount, 2);
    assert.equal(c.azCount, 2);
    assert.equal(c.privateHosts, true);
    assert.equal(c.db.multiAz, true);
    assert.equal(c.db.backupRetentionDays, 14);
    assert.equal(c.deletionProtection, true);
    assert.equal(c.db.finalSnapshot, true);
    assert.deepEqual(c.domain, { name: "www.example.com", zone: "example.com" });
  });

  it("applies the schema's defaults to keys a stack file leaves out", () => {
    const c = parse("qa", { app: undefined, workers: undefined, keepReleases: undefined });
    assert.equal(c.app, CONFIG_SCHEMA.app.default);
    assert.equal(c.workers, CONFIG_SCHEMA.workers.default);
    assert.equal(c.keepReleases, CONFIG_SCHEMA.keepReleases.default);
  });

  it("accepts every key at its default, as the Pulumi CLI passes Pulumi.yaml's defaults to the program", () => {
    // The real CLI hands the program each declared default as a config value: a default must
    // never read as a value the user set (the rehearsal found testListenerPort and the bastion).
    for (const stack of ["qa", "prod"]) {
      const text = fs.readFileSync(path.join(ROOT, `Pulumi.${stack}.yaml`), "utf8");
      const setHere = (k: string) => text.includes(`greenlight:${k}:`);
      const defaults = Object.fromEntries(
        Object.entries(CONFIG_SCHEMA)
          .filter(([k]) => !setHere(k))
          .map(([k, v]) => [k, v.default as Override]),
      );
      assert.doesNotThrow(() => parse(stack, defaults), stack);
    }
  });

  describe("rejects bad values, naming the key, the value and what is allowed", () => {
    const cases: [string, Record<string, Override>, ...(string | RegExp)[]][] = [
      ["hostCount 0", { hostCount: 0 }, "greenlight:hostCount", '"0"', "from 1 to 4"],
      ["hostCount not a number", { hostCount: "two" }, "greenlight:hostCount", '"two"', "an integer"],
      ["azCount 5", { azCount: 5 }, "greenlight:azCount", '"5"', "from 2 to 3"],
      ["redis yes", { redis: "yes" }, "greenlight:redis", '"yes"', '"on" or "off"', "stack's default"],
      [
        "redisNodeType not ElastiCache",
        { redis: "on", redisNodeType: "t3.micro" },
        "greenlight:redisNodeType",
        '"t3.micro"',
        "cache.t4g.micro",
      ],
      [
        "redisNodeType while Redis is off (qa's default)",
        { redisNodeType: "cache.t4g.small" },
        "greenlight:redisNodeType",
        '"cache.t4g.small"',
        'set redis "on"',
      ],
      ["privateHosts yes", { privateHosts: "yes" }, "greenlight:privateHosts", '"yes"', "true or false"],
      [
        "operatorCidrs open to the world",
        { operatorCidrs: ["0.0.0.0/0"] },
        "greenlight:operatorCidrs",
        "0.0.0.0/0",
        "refused",
      ],
      ["operatorCidrs broader than /16", { operatorCidrs: ["10.0.0.0/8"] }, "greenlight:operatorCidrs", "10.0.0.0/8"],
      ["operatorCidrs not a CIDR", { operatorCidrs: ["my office"] }, "greenlight:operatorCidrs", "my office"],
      ["operatorCidrs empty", { operatorCidrs: [] }, "greenlight:operatorCidrs", "at least one CIDR"],
      ["vpcCidr public", { vpcCidr: "8.8.0.0/16" }, "greenlight:vpcCidr", '"8.8.0.0/16"', "private IPv4 CIDR"],
      ["vpcCidr host bits", { vpcCidr: "10.1.2.3/16" }, "greenlight:vpcCidr", '"10.1.2.3/16"'],
      ["instanceType arm", { instanceType: "t4g.small" }, "greenlight:instanceType", '"t4g.small"', "x86_64"],
      ["live purple", { live: "purple" }, "greenlight:live", '"purple"', '"blue" or "green"'],
      ["release id with a space", { blueRelease: "r 1" }, "greenlight:blueRelease", '"r 1"', "release id"],
      ["release id with $(...)", { blueRelease: "$(reboot)" }, "greenlight:blueRelease", "release id"],
      [
        "sha256 uppercase",
        { ...{ blueRelease: "r1", blueArtifact: "a.tgz" }, blueSha256: "ABC" },
        "greenlight:blueSha256",
        '"ABC"',
      ],
      ["release without artifact", { blueRelease: "r1" }, "greenlight:blueRelease", "blueArtifact"],
      ["dbEngineVersion 17", { dbEngineVersion: "17" }, "greenlight:dbEngineVersion", '"17"', '"14" or "15"'],
      ["dbBackupRetentionDays 0", { dbBackupRetentionDays: 0 }, "greenlight:dbBackupRetentionDays", "from 1 to 35"],
      ["domain without zone", { domain: "www.example.org", hostedZone: "" }, "greenlight:domain", "hostedZone"],
      [
        "domain outside zone",
        { domain: "www.example.org", hostedZone: "example.com" },
        "greenlight:domain",
        "example.com",
      ],
      [
        "domain uppercase",
        { domain: "WWW.example.com", hostedZone: "example.com" },
        "greenlight:domain",
        '"WWW.example.com"',
      ],
      ["healthPath relative", { healthPath: "healthz" }, "greenlight:healthPath", '"healthz"', "absolute path"],
      ["app name with dash", { app: "my-site" }, "greenlight:app", '"my-site"', "lowercase letters and digits"],
      ["keepReleases 1", { keepReleases: 1 }, "greenlight:keepReleases", "from 2 to 50"],
      [
        "replica region = region",
        { backupReplicaRegion: "eu-west-1" },
        "greenlight:backupReplicaRegion",
        "equals aws:region",
      ],
      ["region missing", { "aws:region": undefined }, "aws:region"],
      ["typo in a key", { hostcount: 2 }, "greenlight:hostcount", "Did you mean greenlight:hostCount?"],
      ["amiId not an AMI", { amiId: "debian" }, "greenlight:amiId", '"debian"'],
      ["alarmEmail not an address", { alarmEmail: "ops" }, "greenlight:alarmEmail", '"ops"', "email address"],
      [
        "ciRepository without a state bucket",
        { ciRepository: "acme/site" },
        "greenlight:ciRepository",
        "ciStateBucket",
      ],
      ["ciStateBucket without a repository", { ciStateBucket: "state" }, "greenlight:ciStateBucket", "ciRepository"],
      ["ciRepository not owner/name", { ciRepository: "acme" }, "greenlight:ciRepository", '"acme"', "owner/name"],
    ];
    // Issue 11, "bad configuration that is accepted today": each was accepted before.
    const ci = { ciStateBucket: "acme-pulumi-state" };
    const slot = (c: string, release: string, sha: string) => ({
      [`${c}Release`]: release,
      [`${c}Artifact`]: `releases/${sha}.tar.gz`,
      [`${c}Sha256`]: sha.repeat(64),
    });
    cases.push(
      [
        "duplicate operatorCidrs",
        { operatorCidrs: ["203.0.113.10/32", "203.0.113.10/32"] },
        "greenlight:operatorCidrs",
        '"203.0.113.10/32" is listed twice',
        "allowed: a list of IPv4 CIDRs",
      ],
      [
        "operatorCidrs inside one another",
        { operatorCidrs: ["203.0.113.0/24", "203.0.113.10/32"] },
        "greenlight:operatorCidrs",
        "overlap",
      ],
      ...[
        "acme/",
        "/site",
        "acme/site/x",
        "-acme/site",
        "acme-/site",
        "ac--me/site",
        "acme/..",
        "acme/.",
        "a".repeat(40) + "/site",
        "acme/si te",
      ].map((repo): [string, Record<string, Override>, ...string[]] => [
        `ciRepository ${repo}`,
        { ciRepository: repo, ...ci },
        "greenlight:ciRepository",
        JSON.stringify(repo),
        "a GitHub owner/name",
      ]),
      [
        "ciStateBucket under the stack's own bucket grant",
        { ciRepository: "acme/site", ciStateBucket: "qa-pulumi-state" },
        "greenlight:ciStateBucket",
        '"qa-pulumi-state"',
        "qa-*",
        "allowed: a bucket whose name does not start with a stack name",
      ],
      [
        "ciStateBucket with ..",
        { ciRepository: "acme/site", ciStateBucket: "acme..state" },
        "greenlight:ciStateBucket",
        '"acme..state"',
      ],
      ["release id with ..", { ...slot("blue", "r1..2", "a") }, "greenlight:blueRelease", '"r1..2"', "no .."],
      [
        "artifact key with ..",
        { ...slot("blue", "r1", "a"), blueArtifact: "releases/../x.tar.gz" },
        "greenlight:blueArtifact",
        '"releases/../x.tar.gz"',
        "no ..",
      ],
      [
        "restore key with ..",
        { restoreBackup: "db/../releases/x.dump" },
        "greenlight:restoreBackup",
        '"db/../releases/x.dump"',
        "no ..",
      ],
      [
        "restore id with ..",
        { restoreBackup: "db/20261121T101500Z-before-r42.dump", restoreId: "again..2" },
        "greenlight:restoreId",
        '"again..2"',
        "no ..",
      ],
      [
        "restore id without a restore key",
        { restoreId: "again-2" },
        "greenlight:restoreId",
        "restoreBackup is not set",
      ],
      [
        "restore key outside db/",
        { restoreBackup: "releases/x.dump" },
        "greenlight:restoreBackup",
        '"releases/x.dump"',
        "under db/",
      ],
      [
        "the same release id in both slots, different checksums",
        { ...slot("blue", "r1", "a"), ...slot("green", "r1", "b") },
        "greenlight:greenRelease",
        '"r1"',
        "another artifact",
        "allowed: a new id for a new artifact",
      ],
      [
        "an empty user secret",
        { sentryDsn: { secret: "" } },
        "greenlight:sentryDsn = [secret]",
        "empty",
        "allowed: a non-empty",
      ],
      [
        "testListenerPort without testListener",
        { testListenerPort: 9443 },
        "greenlight:testListenerPort",
        "9443",
        "testListener is false",
        "allowed: set testListener true",
      ],
      [
        "bastionInstanceType without privateHosts",
        { bastionInstanceType: "t3.micro" },
        "greenlight:bastionInstanceType",
        '"t3.micro"',
        "privateHosts is false",
        "allowed: set privateHosts true",
      ],
      [
        "instance type that does not exist",
        { instanceType: "t3.huge" },
        "greenlight:instanceType",
        '"t3.huge"',
        "an existing x86_64 type",
      ],
      ["instance size a family lacks", { instanceType: "m5.nano" }, "greenlight:instanceType", '"m5.nano"'],
      [
        "DB class that does not exist",
        { dbInstanceClass: "db.t4g.nano" },
        "greenlight:dbInstanceClass",
        '"db.t4g.nano"',
        "an RDS class",
      ],
      [
        "DB class of an unknown family",
        { dbInstanceClass: "db.q9.large" },
        "greenlight:dbInstanceClass",
        '"db.q9.large"',
      ],
      [
        "replica region that is not a region",
        { backupReplicaRegion: "eu-middle-9" },
        "greenlight:backupReplicaRegion",
        '"eu-middle-9"',
        "an AWS region",
      ],
      ["aws:region that is not a region", { "aws:region": "eu-west-9" }, "aws:region", '"eu-west-9"', "an AWS region"],
      [
        "aws:defaultTags missing",
        { "aws:defaultTags": undefined },
        "aws:defaultTags",
        "(not set)",
        "greenlight-stack",
        "pulumi config set --path",
      ],
      [
        "aws:defaultTags naming another stack",
        { "aws:defaultTags": JSON.stringify({ tags: { "greenlight-stack": "prod" } }) },
        "aws:defaultTags",
        '{"tags":{"greenlight-stack":"qa"}}',
      ],
      [
        "a plain setting with a line separator",
        { healthPath: "/healthz\u2028x" },
        "greenlight:healthPath",
        "U+2028",
        "allowed: an absolute path",
      ],
    );
    for (const [ch, name] of [
      ["\n", "U+000A"],
      ["\r", "U+000D"],
      ["\v", "U+000B"],
      ["\f", "U+000C"],
      ["\x1c", "U+001C"],
      ["\x1d", "U+001D"],
      ["\x1e", "U+001E"],
      ["\x85", "U+0085"],
      ["\u2028", "U+2028"],
      ["\u2029", "U+2029"],
    ]) {
      cases.push([
        `a user secret containing ${name}`,
        { sentryDsn: { secret: `https://k@o1.ingest.sentry.io/2${ch}DATABASE_URL=postgres://evil` } },
        "greenlight:sentryDsn = [secret]",
        `line separator ${name}`,
      ]);
    }
    for (const [what, overrides, ...expected] of cases) {
      it(what, () => {
        rejects("qa", overrides, ...expected);
      });
    }

    it("lists every problem at once", () => {
      const e = rejects("qa", { hostCount: 0, live: "purple" });
      assert.equal(e.problems.length, 2);
    });

    it("is a RunError, so the preview prints the message without a stack trace", () => {
      const e = rejects("qa", { hostCount: 9 });
      assert.equal((e as unknown as { __pulumiRunError: boolean }).__pulumiRunError, true);
    });

    it("never prints a secret value in an error", () => {
      const e = rejects("qa", { sentryDsn: { secret: "line1\nhunter2" } }, "greenlight:sentryDsn", "[secret]");
      assert.ok(!e.message.includes("hunter2"));
    });
  });

  describe("live and the slots", () => {
    it("refuses live naming an empty slot while the other holds a release", () => {
      rejects(
        "qa",
        { live: "green", blueRelease: "r1", blueArtifact: "releases/x.tar.gz", blueSha256: "a".repeat(64) },
        "greenlight:live",
        '"green"',
        "empty slot",
        'allowed: "blue"',
      );
    });

    it("accepts live on either colour before the first release", () => {
      assert.equal(parse("qa", { live: "green" }).live, "green");
    });

    it("reads a slot as release, artifact and checksum together", () => {
      const c = parse("qa", {
        greenRelease: "r2",
        greenArtifact: "releases/y.tar.gz",
        greenSha256: "b".repeat(64),
        live: "green",
      });
      assert.deepEqual(c.slots.green, {
        release: "r2",
        artifact: "releases/y.tar.gz",
        sha256: "b".repeat(64),
        migrations: [],
      });
      assert.equal(c.idle, "blue");
    });

    it("reads a slot's migrations (npm run release writes them from the manifest) and refuses bad ones", () => {
      const slot = {
        greenRelease: "r2",
        greenArtifact: "releases/y.tar.gz",
        greenSha256: "b".repeat(64),
        live: "green",
      };
      const listed = ["notes.0001_initial", "notes.0002_note_attachment"];
      assert.deepEqual(parse("qa", { ...slot, greenMigrations: listed }).slots.green!.migrations, listed);
      assert.throws(
        () => parse("qa", { ...slot, greenMigrations: ["notes.0001_initial", "notes/0002"] }),
        (e: Error) =>
          e.message.includes(
            'greenlight:greenMigrations = "[\\"notes.0001_initial\\",\\"notes/0002\\"]" is not allowed',
          ) &&
          e.message.includes('("notes/0002" is not a migration name)') &&
          e.message.includes("allowed: a list of up to 5000 distinct migration names <app label>.<name>"),
      );
      assert.throws(() => parse("qa", { ...slot, greenMigrations: ["a.b", "a.b"] }), /"a\.b" is listed twice/);
      assert.throws(
        () => parse("qa", { blueMigrations: listed }),
        /greenlight:blueMigrations is set but blueRelease is empty; allowed: \[\] when the slot holds no release/,
      );
    });
  });

  describe("allowUnsafeMigrations", () => {
    const blue = { blueRelease: "r1", blueArtifact: "releases/x.tar.gz", blueSha256: "a".repeat(64) };
    it("lets through exactly the named release, which must be in a slot", () => {
      assert.equal(parse("qa", { ...blue, allowUnsafeMigrations: "r1" }).allowUnsafeMigrations, "r1");
      assert.equal(parse("qa", blue).allowUnsafeMigrations, undefined);
    });

    it("refuses a release id in no slot (a typo, or an allowance left over from an earlier release)", () => {
      rejects(
        "qa",
        { ...blue, allowUnsafeMigrations: "r9" },
        "greenlight:allowUnsafeMigrations",
        '"r9"',
        "names no release in a slot",
        'allowed: "" or the release id of blueRelease = "r1"',
      );
    });

    it("refuses a value that is not a release id", () => {
      rejects("qa", { ...blue, allowUnsafeMigrations: "r1; rm" }, "greenlight:allowUnsafeMigrations", '"r1; rm"');
    });
  });

  describe("plain settings (greenlight:settings)", () => {
    const settings = (m: unknown) => ({ settings: JSON.stringify(m) });
    it("reads a map of .env names to one-line values, numbers and booleans as text", () => {
      const c = parse("qa", settings({ EMAIL_PORT: 587, EMAIL_HOST: "smtp.example.com", EMAIL_USE_TLS: true }));
      assert.deepEqual(c.settings, { EMAIL_HOST: "smtp.example.com", EMAIL_PORT: "587", EMAIL_USE_TLS: "true" });
      assert.deepEqual(Object.keys(c.settings), ["EMAIL_HOST", "EMAIL_PORT", "EMAIL_USE_TLS"], "sorted");
      assert.deepEqual(parse("qa").settings, {});
      assert.deepEqual(parse("qa", settings({ ALLOWED_HOSTS: ".example.org,admin.example.com" })).settings, {
        ALLOWED_HOSTS: ".example.org,admin.example.com",
      });
    });

    it("refuses bad names and values, naming the key, the value and what is allowed", () => {
      rejects(
        "qa",
        settings({ email_host: "x" }),
        "greenlight:settings.email_host is not allowed as a setting name",
        "UPPER_SNAKE",
      );
      rejects("qa", settings({ EMAIL_HOST: "" }), 'greenlight:settings.EMAIL_HOST = "" is not allowed (it is empty)');
      for (const ch of ["\n", "\r", "\u2028", "\x85"]) {
        rejects(
          "qa",
          settings({ EMAIL_HOST: `smtp${ch}SECRET_KEY=x` }),
          "greenlight:settings.EMAIL_HOST",
          "line separator",
        );
      }
      rejects("qa", settings({ EMAIL: { host: "x" } }), "greenlight:settings.EMAIL", "not a single value");
      rejects(
        "qa",
        { settings: '["EMAIL_HOST=x"]' },
        'greenlight:settings = "[\\"EMAIL_HOST=x\\"]" is not allowed (not a map)',
      );
      rejects(
        "qa",
        settings({ ALLOWED_HOSTS: "a.example.com, b" }),
        "greenlight:settings.ALLOWED_HOSTS",
        "separated by commas",
      );
    });

    it("refuses a name that looks secret, as the policy pack would at preview", () => {
      rejects(
        "qa",
        settings({ EMAIL_HOST_PASSWORD: "x" }),
        "greenlight:settings.EMAIL_HOST_PASSWORD looks like a secret",
        "pulumi config set --secret emailHostPassword",
      );
      for (const name of [
        "EMAIL_HOST_PASSWORD",
        "API_KEY",
        "STRIPE_SECRET",
        "SENTRY_DSN",
        "GITHUB_TOKEN",
        "EMAIL_HOST",
        "KEYBOARD",
        "MONKEY_MODE",
        "DEBUG",
      ]) {
        assert.equal(SECRET_LOOKING_SETTING.test(name), SECRET_NAME.test(name), name);
      }
    });

    it("refuses greenlight's own names and an app secret's name, and a settings map set as a secret", () => {
      for (const name of ["DB_HOST", "DATABASE_URL", "SECRET_KEY", "HEALTH_PATH", "ADMIN_PATH"]) {
        rejects("qa", settings({ [name]: "x" }), `greenlight:settings.${name} is set by greenlight itself`);
      }
      rejects(
        "qa",
        { ...settings({ MAIL_RELAY: "x" }), mailRelay: { secret: "smtp://user:pw@relay.example" } },
        "greenlight:settings.MAIL_RELAY is also the app secret greenlight:mailRelay",
      );
      const e = rejects(
        "qa",
        { settings: { secret: '{"EMAIL_HOST":"hunter2"}' } },
        "greenlight:settings is set as a secret",
      );
      assert.ok(!e.message.includes("hunter2"));
    });
  });

  describe("user secrets", () => {
    it("turns every unknown --secret key into an app secret named for .env", () => {
      const c = parse("qa", {
        sentryDsn: { secret: "https://k@o.ingest.sentry.io/1" },
        emailHostPassword: { secret: "x" },
      });
      assert.deepEqual(c.userSecrets.map((s) => s.name).sort(), ["EMAIL_HOST_PASSWORD", "SENTRY_DSN"]);
    });

    it("refuses two secret keys that become the same setting", () => {
      const e = rejects(
        "qa",
        {
          sentryDsn: { secret: "https://a@o1.ingest.sentry.io/1" },
          sentryDSN: { secret: "https://b@o1.ingest.sentry.io/2" },
        },
        "greenlight:sentryDsn",
        "greenlight:sentryDSN",
        "SENTRY_DSN",
        "allowed: one key per setting",
      );
      assert.ok(!e.message.includes("o1.ingest"), "no secret value in the message");
    });

    it("never shows a secret's value, whatever is wrong with it", () => {
      for (const v of ["", "hunter2\u2028x", "hunter2\x85x", "hunter2\nx"]) {
        const e = rejects("qa", { sentryDsn: { secret: v } }, "greenlight:sentryDsn = [secret]");
        assert.ok(!e.message.includes("hunter2"), e.message);
      }
    });

    it("refuses a state bucket under another stack's bucket grant (the stack files next to Pulumi.yaml)", () => {
      const c = stackConfig("qa", { ciRepository: "acme/site", ciStateBucket: "prod-state" });
      assert.throws(
        () => parseConfig(c.values, new Set(c.secretKeys), { stack: "qa", otherStacks: ["prod"] }),
        /greenlight:ciStateBucket = "prod-state" falls under the prod deploy role's grant/,
      );
      const ok = stackConfig("qa", { ciRepository: "acme/site", ciStateBucket: "acme-pulumi-state" });
      assert.equal(
        parseConfig(ok.values, new Set(ok.secretKeys), { stack: "qa", otherStacks: ["prod"] }).ci?.stateBucket,
        "acme-pulumi-state",
      );
    });

    it('refuses a stack whose name is another stack\'s plus "-" (its <stack>-* grants would cover it)', () => {
      const c = stackConfig("qa");
      assert.throws(
        () => parseConfig(c.values, new Set(c.secretKeys), { stack: "qa", otherStacks: ["qa-eu", "prod"] }),
        /stack name "qa" is not allowed next to stack "qa-eu"/,
      );
      assert.equal(parseConfig(c.values, new Set(c.secretKeys), { stack: "qa", otherStacks: ["prod"] }).stack, "qa");
    });

    it("accepts what a careful operator sets: real types and regions, one release in both slots", () => {
      const c = parse("qa", {
        instanceType: "m7a.medium",
        dbInstanceClass: "db.r7g.large",
        backupReplicaRegion: "eu-central-1",
        ciRepository: "acme-corp/site.web_2",
        ciStateBucket: "acme-pulumi-state",
        blueRelease: "2026-11-21.1",
        blueArtifact: `releases/${"a".repeat(64)}.tar.gz`,
        blueSha256: "a".repeat(64),
        greenRelease: "2026-11-21.1",
        greenArtifact: `releases/${"a".repeat(64)}.tar.gz`,
        greenSha256: "a".repeat(64),
        restoreBackup: "db/20261121T101500Z-before-r42.dump",
        restoreId: "2026-11-21.again",
      });
      assert.equal(c.instanceType, "m7a.medium");
      assert.equal(c.restoreId, "2026-11-21.again");
      assert.equal(c.backups.replicaRegion, "eu-central-1");
    });

    it("refuses a user secret that would overwrite a generated one", () => {
      rejects("qa", { secretKey: { secret: "mine" } }, "greenlight:secretKey", "SECRET_KEY");
    });

    it("maps camelCase keys to UPPER_SNAKE names", () => {
      assert.equal(envName("sentryDsn"), "SENTRY_DSN");
      assert.equal(envName("awsSesKey2"), "AWS_SES_KEY2");
    });
  });

  it("Pulumi.yaml declares every key with its type, description and default (npm run gen:config)", () => {
    const onDisk = fs.readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8");
    assert.equal(onDisk, pulumiYaml(), "Pulumi.yaml is stale: run npm run gen:config");
  });

  it("the README's configuration table is the schema's (npm run gen:config)", () => {
    const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
    assert.equal(readme, readmeWithTable(readme), "README.md's table is stale: run npm run gen:config");
  });

  it("stack files set only declared keys", () => {
    for (const stack of ["qa", "prod"]) {
      for (const k of Object.keys(stackConfig(stack).values)) {
        if (k.startsWith("greenlight:")) assert.ok(k.slice(11) in CONFIG_SCHEMA, `${stack}: ${k}`);
      }
    }
  });
});

describe("subnet plan", () => {
  it("carves public and private subnets that never overlap, in stable blocks", () => {
    assert.deepEqual(planSubnets("10.40.0.0/16", 2), {
      public: ["10.40.0.0/20", "10.40.16.0/20"],
      private: ["10.40.128.0/20", "10.40.144.0/20"],
    });
    const three = planSubnets("10.40.0.0/16", 3);
    assert.deepEqual(
      three.public.slice(0, 2),
      planSubnets("10.40.0.0/16", 2).public,
      "adding a zone renumbers nothing",
    );
    assert.deepEqual(planSubnets("192.168.16.0/20", 2).private, ["192.168.24.0/24", "192.168.25.0/24"]);
  });
});
