// The statement rules of scripts/remote/migration_check.py on their own (no Django, no
// database): what RunSQL and hand-written migrations can contain beyond what makemigrations
// emits. The classifier on real Django migrations is test/migrations.
import * as assert from "assert";
import { execFileSync } from "child_process";
import * as path from "path";

const SCRIPT_DIR = path.resolve(__dirname, "..", "..", "scripts", "remote");

// The serving release knows shop_product(id, name varchar(200), price integer NULL, stock
// integer NOT NULL with a db_default); shop_new is new in this release.
const HARNESS = `
import json, sys
sys.path.insert(0, sys.argv[1])
import migration_check as mc

class Cols(mc.Columns):
    def __init__(self, tables):
        self.tables = tables

served = {"shop_product": {
    "id": {"type": "bigint", "null": False, "db_default": False},
    "name": {"type": "varchar(200)", "null": False, "db_default": False},
    "price": {"type": "integer", "null": True, "db_default": False},
    "stock": {"type": "integer", "null": False, "db_default": True},
}}
after = json.loads(json.dumps(served))
after["shop_new"] = {"id": {"type": "bigint", "null": False, "db_default": False}}
out = []
for sql in json.loads(sys.stdin.read()):
    c = mc.Classifier(Cols(served), Cols(served), Cols(after), mc.safe_ways(True))
    c.run(mc.statements([sql]))
    out.append(sorted({f["kind"] for f in c.findings}))
print(json.dumps(out))
`;

function classify(sqls: string[]): string[][] {
  const out = execFileSync("/usr/bin/python3", ["-c", HARNESS, SCRIPT_DIR], { input: JSON.stringify(sqls) });
  return JSON.parse(out.toString()) as string[][];
}

describe("migration_check.py statement rules", () => {
  const cases: [string, string[]][] = [
    ['ALTER TABLE "shop_product" ADD COLUMN "x" integer NULL', []],
    ['ALTER TABLE "shop_product" ADD COLUMN "x" integer DEFAULT 0 NOT NULL', []],
    ['ALTER TABLE "shop_product" ADD COLUMN "x" integer NOT NULL', ["not-null-without-default"]],
    [
      'ALTER TABLE "shop_product" ADD COLUMN "x" integer DEFAULT 0 NOT NULL; ALTER TABLE "shop_product" ALTER COLUMN "x" DROP DEFAULT',
      ["not-null-without-default"],
    ],
    ['ALTER TABLE "shop_product" ALTER COLUMN "stock" DROP DEFAULT', ["not-null-without-default"]],
    ['ALTER TABLE "shop_product" ALTER COLUMN "price" DROP DEFAULT', []],
    ['ALTER TABLE "shop_new" ADD COLUMN "x" integer NOT NULL', []],
    ['ALTER TABLE "shop_product" DROP COLUMN "name"', ["drop-column"]],
    ['ALTER TABLE "shop_product" DROP COLUMN IF EXISTS "gone"', []],
    ['DROP TABLE "shop_product" CASCADE', ["drop-table"]],
    ['DROP TABLE IF EXISTS "shop_new"', []],
    ['ALTER TABLE "shop_product" RENAME COLUMN "name" TO "title"', ["rename-column"]],
    ['ALTER TABLE "shop_product" RENAME TO "shop_item"', ["rename-table"]],
    ['ALTER TABLE "shop_product" ALTER COLUMN "name" TYPE varchar(100)', ["narrowing"]],
    ['ALTER TABLE "shop_product" ALTER COLUMN "name" TYPE varchar(300)', []],
    ['ALTER TABLE "shop_product" ALTER COLUMN "name" TYPE text', []],
    ['ALTER TABLE "shop_product" ALTER COLUMN "price" TYPE smallint', ["narrowing"]],
    ['ALTER TABLE "shop_product" ALTER COLUMN "price" TYPE bigint USING "price"::bigint', ["table-rewrite"]],
    ['ALTER TABLE "shop_product" ALTER COLUMN "price" TYPE numeric(10, 2)', ["table-rewrite"]],
    ['ALTER TABLE "shop_product" ALTER COLUMN "price" SET NOT NULL', ["set-not-null"]],
    ['ALTER TABLE "shop_product" ALTER COLUMN "name" DROP NOT NULL', []],
    ['CREATE INDEX "i" ON "shop_product" ("name")', ["index-lock"]],
    ['CREATE UNIQUE INDEX "i" ON "shop_product" ("name")', ["index-lock"]],
    ['CREATE INDEX CONCURRENTLY "i" ON "shop_product" ("name")', []],
    ['CREATE INDEX "i" ON "shop_new" ("id")', []],
    ['DROP INDEX CONCURRENTLY IF EXISTS "i"', []],
    ['ALTER TABLE "shop_product" ADD CONSTRAINT "c" CHECK ("price" >= 0)', ["constraint-lock"]],
    ['ALTER TABLE "shop_product" ADD CONSTRAINT "c" CHECK ("price" >= 0) NOT VALID', []],
    ['ALTER TABLE "shop_product" VALIDATE CONSTRAINT "c"', []],
    ['ALTER TABLE "shop_product" ADD CONSTRAINT "u" UNIQUE ("name")', ["unique-lock"]],
    ['ALTER TABLE "shop_product" ADD CONSTRAINT "u" UNIQUE USING INDEX "i"', []],
    [
      'ALTER TABLE "shop_product" ADD CONSTRAINT "f" FOREIGN KEY ("id") REFERENCES "shop_new" ("id") DEFERRABLE INITIALLY DEFERRED',
      ["constraint-lock"],
    ],
    ['ALTER TABLE "shop_product" DROP CONSTRAINT "c"', []],
    [
      'ALTER TABLE "shop_product" ALTER COLUMN "name" TYPE varchar(300), ALTER COLUMN "price" SET NOT NULL',
      ["set-not-null"],
    ],
    ['UPDATE "shop_product" SET "price" = 0 WHERE "price" IS NULL; -- a backfill\nSELECT 1', []],
    ['CREATE TABLE "shop_other" ("id" bigint NOT NULL PRIMARY KEY)', []],
    ["CREATE EXTENSION IF NOT EXISTS pg_trgm", []],
    ['DROP VIEW "shop_report"', ["drop-object"]],
    ['TRUNCATE "shop_product"', ["unknown-sql"]],
    ['ALTER TABLE "shop_product" SET UNLOGGED', ["unknown-sql"]],
  ];
  let results: string[][] = [];
  before(() => {
    results = classify(cases.map(([sql]) => sql));
  });
  cases.forEach(([sql, expected], i) => {
    it(`${expected.length ? expected.join(", ") : "safe"}: ${sql.replace(/\s+/g, " ")}`, () => {
      assert.deepStrictEqual(results[i], expected);
    });
  });
});
