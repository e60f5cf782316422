// Issue 11, item 10: a config change must never replace the database or lose its data.
import * as assert from "assert";
import { databaseChangeProblems } from "../../components/database";
import { MockEngine, ProgramRun, Registered, runProgram } from "../rig/program";
import { Override, stackConfig } from "../rig/stackConfig";
import { byName, evaluate, fakeEngine, ofType } from "./fakeEngine";

const RDS = "aws:rds/instance:Instance";

/**
 * The mock engine, but the stack's database already exists with `existing`: for the inputs the
 * program ignores (ignoreChanges), the engine keeps the instance's values, as Pulumi does.
 */
function existingDatabase(existing: Record<string, string>): MockEngine {
  return {
    call: fakeEngine.call,
    async newResource(r: Registered) {
      const out = await fakeEngine.newResource(r);
      if (r.type !== RDS) return out;
      const kept = Object.fromEntries(Object.entries(existing).filter(([k]) => r.options.ignoreChanges.includes(k)));
      return { id: out.id, state: { ...out.state, ...kept } };
    },
  };
}

/**
 * Runs the program and gathers the errors it raises. A failed input fails its resource's
 * registration, which the SDK reports as an unhandled rejection (a real `pulumi up` then
 * fails), possibly after runProgram returned: poll for them, within a bound.
 */
async function runFailing(overrides: Record<string, Override>, engine: MockEngine, expect: RegExp) {
  const seen: string[] = [];
  const collect = (e: unknown) => seen.push(e instanceof Error ? e.message : String(e));
  process.on("unhandledRejection", collect);
  try {
    const run = await runProgram("qa", stackConfig("qa", overrides), engine);
    seen.push(...run.failures.map((f) => f.error));
    for (let i = 0; i < 100 && !seen.some((m) => expect.test(m)); i++) await new Promise((r) => setImmediate(r));
    const deadline = Date.now() + 5000;
    while (!seen.some((m) => expect.test(m)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return { run, errors: seen.join("\n") };
  } finally {
    process.off("unhandledRejection", collect);
  }
}

const published = (run: ProgramRun) =>
  run.resources.map((r) => r.name).filter((n) => /-settings-(db-name|db-user|database-url)$/.test(n));

describe("database: no config change replaces it once it exists", () => {
  it("RDS never sees a new dbName, username or (without dbAllowMajorUpgrade) engine major: they are ignored", async () => {
    const run = await evaluate("qa");
    const db = ofType(run, RDS)[0];
    assert.deepEqual(db.options.ignoreChanges.sort(), ["dbName", "engineVersion", "username"]);
    assert.equal((db.inputs as Record<string, unknown>).allowMajorVersionUpgrade, false);
    const up = await evaluate("qa", { dbAllowMajorUpgrade: true });
    assert.deepEqual(ofType(up, RDS)[0].options.ignoreChanges.sort(), ["dbName", "username"]);
    assert.equal((ofType(up, RDS)[0].inputs as Record<string, unknown>).allowMajorVersionUpgrade, true);
  });

  it("renaming app on a stack whose database exists fails the run, naming the key, the value and the existing name", async () => {
    const refusal = /greenlight:app = "shop" would replace the database.*allowed: "site" \(the existing name\)/;
    const { run, errors } = await runFailing(
      { app: "shop" },
      existingDatabase({ dbName: "site", username: "site", engineVersion: "15" }),
      refusal,
    );
    assert.match(errors, refusal);
    assert.deepEqual(published(run), [], "no DB_NAME, DB_USER or DATABASE_URL for a database that is not there");
  });

  it("a major upgrade of an existing database needs dbAllowMajorUpgrade", async () => {
    const existing = existingDatabase({ dbName: "site", username: "site", engineVersion: "14" });
    const refusal =
      /greenlight:dbEngineVersion = "15" would upgrade the database from PostgreSQL 14.*greenlight:dbAllowMajorUpgrade true/;
    const refused = await runFailing({ dbEngineVersion: "15" }, existing, refusal);
    assert.match(refused.errors, refusal);
    const allowed = await runProgram(
      "qa",
      stackConfig("qa", { dbEngineVersion: "15", dbAllowMajorUpgrade: true }),
      existing,
    );
    assert.deepEqual(allowed.failures, []);
    assert.equal(published(allowed).length, 3);
  });

  it("the same config on an existing database runs cleanly (no false alarm)", async () => {
    const run = await runProgram(
      "qa",
      stackConfig("qa"),
      existingDatabase({ dbName: "site", username: "site", engineVersion: "15.7" }),
    );
    assert.deepEqual(run.failures, []);
    assert.equal(published(run).length, 3);
  });

  it("the rules: rename, downgrade, upgrade", () => {
    const wanted = { dbName: "site", engineVersion: "15", allowMajorUpgrade: false };
    const same = { dbName: "site", username: "site", engineVersion: "15.4" };
    assert.deepEqual(databaseChangeProblems(wanted, same), []);
    assert.match(databaseChangeProblems({ ...wanted, dbName: "shop" }, same)[0], /greenlight:app = "shop"/);
    assert.match(
      databaseChangeProblems({ ...wanted, engineVersion: "14" }, same)[0],
      /cannot downgrade; allowed: "15"/,
    );
    assert.match(
      databaseChangeProblems({ ...wanted, engineVersion: "14", allowMajorUpgrade: true }, same)[0],
      /cannot downgrade/,
    );
    assert.deepEqual(databaseChangeProblems(wanted, { ...same, engineVersion: "14.9" }).length, 1);
    assert.deepEqual(
      databaseChangeProblems({ ...wanted, allowMajorUpgrade: true }, { ...same, engineVersion: "14" }),
      [],
    );
  });

  it("prod's database, its key and its backups are protected and kept on delete; qa's are not", async () => {
    const keep = (run: ProgramRun, name: string) => {
      const r = run.resources.find((x) => x.name === name && x.custom) ?? byName(run, name);
      return [r.options.protect, r.options.retainOnDelete];
    };
    const prod = await evaluate("prod");
    const qa = await evaluate("qa");
    for (const [run, stack, want] of [
      [prod, "prod", true],
      [qa, "qa", false],
    ] as const) {
      assert.deepEqual(keep(run, `${stack}-db-postgres`), [want, want], `${stack} database`);
      assert.deepEqual(keep(run, `${stack}-secrets-key`), [want, want], `${stack} KMS key`);
      assert.deepEqual(keep(run, `${stack}-buckets-backups`), [want, want], `${stack} backup bucket`);
    }
  });
});
