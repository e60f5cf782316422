// The migration safety check on migrations that Django itself generates: each test makes a
// throwaway project, migrates it with one set of models (the release that serves), changes
// the models as a developer would, runs `makemigrations`, and classifies the pending plan
// against the real database with scripts/remote/migration_check.py.
import * as assert from "assert";
import { startPostgres, RigPostgres } from "../rig/postgres";
import { freePort, run } from "../site/helpers";
import { CHECK_SCRIPT, DjangoProject, djangoVenv, OperationReport, operationsOf, Report } from "./project";

const PRODUCT = `class Product(models.Model):
    name = models.CharField(max_length=200)
    code = models.CharField(max_length=50, blank=True)
    price = models.IntegerField(null=True)
`;

/** The serving release's INSERT: it knows only the columns of PRODUCT. */
const OLD_INSERT = "INSERT INTO shop_product (name, code, price) VALUES ('old release', 'x', 1);";

function kinds(op: OperationReport): string[] {
  return op.findings.map((f) => f.kind);
}

function describeOps(report: Report): string {
  return JSON.stringify(report.plan, null, 1);
}

describe("migration safety check (Django 5.2, PostgreSQL 15)", function () {
  let pg: RigPostgres | undefined;
  let python: string;
  let count = 0;

  before(async function () {
    this.timeout(600_000);
    python = await djangoVenv();
    pg = await startPostgres({ listen: "127.0.0.1", port: await freePort(), clientCidr: "127.0.0.1/32" });
  });

  after(async () => {
    await pg?.stop();
  });

  /** A project whose database has `models` migrated: the release that serves. */
  async function serving(models: string): Promise<DjangoProject> {
    const name = `mig${++count}`;
    const password = `pw-${count}-_.~Zq`;
    await pg!.createRoleAndDatabase(name, password);
    const project = new DjangoProject(
      python,
      `postgres://${name}:${encodeURIComponent(password)}@127.0.0.1:${pg!.port}/${name}?sslmode=require`,
    );
    project.models(models);
    await project.makemigrations();
    await project.migrate();
    return project;
  }

  /** The next release: new models, Django's migration for them, the check's verdict. */
  async function release(
    from: string,
    to: string,
    answers?: string[],
  ): Promise<{ project: DjangoProject; report: Report; ops: OperationReport[]; code: number | null; stderr: string }> {
    const project = await serving(from);
    project.models(to);
    const [migration] = await project.makemigrations(answers);
    const { report, code, stderr } = await project.check(["--release", "r2", "--stack", "qa"]);
    return { project, report, ops: operationsOf(report, migration), code, stderr };
  }

  function assertUnsafe(
    r: { report: Report; ops: OperationReport[]; code: number | null },
    operation: string,
    kind: string,
  ): OperationReport {
    const op = r.ops.find((o) => o.operation === operation && o.verdict === "unsafe");
    assert.ok(op, `no unsafe ${operation} in ${describeOps(r.report)}`);
    assert.ok(kinds(op).includes(kind), `${operation} is unsafe for ${kinds(op).join(", ")}, not ${kind}`);
    assert.strictEqual(r.report.verdict, "unsafe");
    assert.strictEqual(r.code, 3, "an unsafe plan exits 3");
    for (const f of op.findings) assert.ok(f.safe_way.length > 20, `finding ${f.kind} names no safe way`);
    return op;
  }

  function assertSafe(r: { report: Report; ops: OperationReport[]; code: number | null }): void {
    assert.strictEqual(r.report.verdict, "safe", describeOps(r.report));
    assert.ok(r.ops.length > 0);
    for (const op of r.ops) assert.strictEqual(op.verdict, "safe", `${op.description}: ${JSON.stringify(op.findings)}`);
    assert.strictEqual(r.code, 0);
  }

  describe("unsafe", () => {
    it("AddField NOT NULL with default= (DEFAULT x NOT NULL, then DROP DEFAULT): refused with the exact message, nothing applied", async () => {
      const r = await release(PRODUCT, PRODUCT + "    stock = models.IntegerField(default=0)\n");
      const op = assertUnsafe(r, "AddField", "not-null-without-default");
      // Django's own SQL, as sqlmigrate prints it: the default exists only for the ALTER.
      assert.ok(
        op.sql.some((s) => /ADD COLUMN "stock" integer DEFAULT 0 NOT NULL/.test(s)),
        op.sql.join("\n"),
      );
      assert.ok(
        op.sql.some((s) => /ALTER COLUMN "stock" DROP DEFAULT/.test(s)),
        op.sql.join("\n"),
      );
      const migration = r.report.pending[0];
      assert.strictEqual(migration, "shop.0002_product_stock");
      assert.strictEqual(
        r.stderr.trim(),
        [
          "greenlight: release r2 is refused before the backup: its migrations are unsafe while the previous release " +
            "still serves, and after a rollback to it. Nothing has changed.",
          "  shop.0002_product_stock, operation 1 AddField (Add field stock to product): adds NOT NULL column " +
            '"shop_product"."stock" with a DEFAULT that the same migration drops again: every INSERT from the ' +
            "serving release (which does not know the column) fails with a NOT NULL violation, until the cutover " +
            "and after a rollback.",
          "    Safe way: add it with null=True in this release (the serving release's INSERTs leave it NULL), fill " +
            "it, and make it NOT NULL in a later release; or give it a database default with db_default=<value> (this " +
            "site's Django has it), so INSERTs that leave the column out get the default.",
          "To let this one release through on purpose (under maintenance mode, or when you know the serving release " +
            "does not use what changes): pulumi config set allowUnsafeMigrations r2 --stack qa",
        ].join("\n"),
      );
      assert.strictEqual(r.report.message, r.stderr.trim());

      // The check wrote nothing: the migration is still pending, for Django too.
      assert.deepStrictEqual(await r.project.migratePlan(), [migration]);
      // Allowed on purpose: the same report, exit 0.
      const allowed = await r.project.check(["--release", "r2", "--allow-unsafe"]);
      assert.strictEqual(allowed.code, 0);
      assert.strictEqual(allowed.report.verdict, "unsafe");
      assert.strictEqual(allowed.report.allowed, true);

      // And the verdict is real: once migrated, the serving release's INSERT fails.
      await r.project.migrate();
      await assert.rejects(pg!.query(OLD_INSERT, `mig${count}`), /null value in column "stock"/);
    });

    it("RemoveField: drop column", async () => {
      const r = await release(PRODUCT, PRODUCT.replace(/ {4}code = .*\n/, ""));
      const op = assertUnsafe(r, "RemoveField", "drop-column");
      assert.match(op.findings[0].reason, /"shop_product"\."code"/);
    });

    it("DeleteModel: drop table", async () => {
      const r = await release(
        PRODUCT + "\n\nclass Tag(models.Model):\n    label = models.CharField(max_length=20)\n",
        PRODUCT,
      );
      assertUnsafe(r, "DeleteModel", "drop-table");
    });

    it("RenameField (makemigrations asked, and told yes): rename column", async () => {
      const r = await release(PRODUCT, PRODUCT.replace("    code = ", "    sku = "), ["y"]);
      const op = assertUnsafe(r, "RenameField", "rename-column");
      assert.match(op.findings[0].reason, /"shop_product"\."code" to "sku"/);
    });

    it("RenameModel: rename table", async () => {
      const r = await release(PRODUCT, PRODUCT.replace("class Product(", "class Article("), ["y"]);
      assertUnsafe(r, "RenameModel", "rename-table");
    });

    it("AlterField max_length 200 -> 80: narrowing", async () => {
      const r = await release(PRODUCT, PRODUCT.replace("max_length=200", "max_length=80"));
      const op = assertUnsafe(r, "AlterField", "narrowing");
      assert.match(op.findings[0].reason, /from varchar\(200\) to varchar\(80\)/);
    });

    it("AlterField IntegerField -> BigIntegerField: the table is rewritten under lock", async () => {
      const r = await release(
        PRODUCT,
        PRODUCT.replace("price = models.IntegerField(", "price = models.BigIntegerField("),
      );
      assertUnsafe(r, "AlterField", "table-rewrite");
    });

    it("AlterField null=True -> null=False: SET NOT NULL", async () => {
      const r = await release(PRODUCT, PRODUCT.replace("IntegerField(null=True)", "IntegerField(default=0)"));
      assertUnsafe(r, "AlterField", "set-not-null");
    });

    it("AddIndex (Meta.indexes) on a served table: CREATE INDEX without CONCURRENTLY", async () => {
      const r = await release(
        PRODUCT,
        PRODUCT + '\n    class Meta:\n        indexes = [models.Index(fields=["code"], name="product_code_idx")]\n',
      );
      const op = assertUnsafe(r, "AddIndex", "index-lock");
      assert.ok(
        op.sql.some((s) => /^CREATE INDEX "product_code_idx" ON "shop_product"/.test(s)),
        op.sql.join("\n"),
      );
    });

    it("AddConstraint CheckConstraint: validated under lock (no NOT VALID)", async () => {
      const check =
        PRODUCT.replace("    name = ", "    name = ") +
        '\n    class Meta:\n        constraints = [models.CheckConstraint(condition=models.Q(price__gte=0), name="price_gte_0")]\n';
      const r = await release(PRODUCT, check);
      assertUnsafe(r, "AddConstraint", "constraint-lock");
    });

    it("AddConstraint UniqueConstraint: builds its index under lock", async () => {
      const unique =
        PRODUCT +
        '\n    class Meta:\n        constraints = [models.UniqueConstraint(fields=["code"], name="code_unique")]\n';
      const r = await release(PRODUCT, unique);
      assertUnsafe(r, "AddConstraint", "unique-lock");
    });

    it("AddField ForeignKey to a served table: its index and its constraint lock the table", async () => {
      const from = PRODUCT + "\n\nclass Maker(models.Model):\n    name = models.CharField(max_length=20)\n";
      const to = from.replace(
        "    price = models.IntegerField(null=True)\n",
        "    price = models.IntegerField(null=True)\n    maker = models.ForeignKey('Maker', null=True, on_delete=models.SET_NULL)\n",
      );
      const r = await release(from, to);
      const op = assertUnsafe(r, "AddField", "index-lock");
      assert.ok(kinds(op).includes("constraint-lock"), kinds(op).join(", "));
    });
  });

  it("a check that cannot reach the database fails (exit 1) in one line, with no secret in it", async () => {
    const name = `mig${++count}`;
    await pg!.createRoleAndDatabase(name, "right-pw-_.~Zq");
    const wrong = "wrong-pw-_.~Qz";
    const project = new DjangoProject(
      python,
      `postgres://${name}:${wrong}@127.0.0.1:${pg!.port}/${name}?sslmode=require`,
    );
    project.models(PRODUCT);
    await project.makemigrations();
    const r = await run(python, [CHECK_SCRIPT, "--project", project.dir], { cwd: "/", timeoutMs: 120_000 });
    assert.strictEqual(r.code, 1, r.stderr);
    assert.strictEqual(r.stdout, "");
    assert.match(
      r.stderr,
      /^greenlight migration check: could not run: OperationalError: .*password authentication failed/,
    );
    for (const secret of [wrong, "right-pw", "test-only"]) assert.ok(!r.stderr.includes(secret), r.stderr);
  });

  describe("safe", () => {
    it("AddField null=True: the serving release's INSERTs leave it NULL", async () => {
      const r = await release(PRODUCT, PRODUCT + "    stock = models.IntegerField(null=True)\n");
      assertSafe(r);
      await r.project.migrate();
      await pg!.query(OLD_INSERT, `mig${count}`);
    });

    it("AddField NOT NULL with db_default (Django >= 5.0): the database fills it for the serving release", async () => {
      const r = await release(PRODUCT, PRODUCT + "    stock = models.IntegerField(db_default=0)\n");
      assertSafe(r);
      assert.ok(
        r.ops[0].sql.some((s) => /ADD COLUMN "stock" integer DEFAULT 0 NOT NULL/.test(s)),
        r.ops[0].sql.join("\n"),
      );
      assert.ok(!r.ops[0].sql.some((s) => /DROP DEFAULT/.test(s)), r.ops[0].sql.join("\n"));
      await r.project.migrate();
      await pg!.query(OLD_INSERT, `mig${count}`);
      assert.strictEqual(await pg!.query("SELECT stock FROM shop_product;", `mig${count}`), "0\n");
    });

    it("a first release on an empty database: SQL that needs the earlier migrations applied (AlterUniqueTogether) is on a table nobody serves yet", async () => {
      const name = `mig${++count}`;
      const password = `pw-${count}-_.~Zq`;
      await pg!.createRoleAndDatabase(name, password);
      const project = new DjangoProject(
        python,
        `postgres://${name}:${encodeURIComponent(password)}@127.0.0.1:${pg!.port}/${name}?sslmode=require`,
      );
      const unique = '    class Meta:\n        unique_together = [("name", "code")]\n';
      project.models(PRODUCT + unique);
      await project.makemigrations();
      project.models(PRODUCT);
      const [second] = await project.makemigrations();
      // And a statement greenlight does not know, which a later release would have refused.
      project.migration("0003_analyze", second, `migrations.RunSQL("ANALYZE shop_product", migrations.RunSQL.noop),`);
      const { report, code } = await project.check(["--release", "r1", "--stack", "qa"]);
      const ops = operationsOf(report, second);
      assert.strictEqual(ops[0]?.operation, "AlterUniqueTogether", describeOps(report));
      assertSafe({ report, ops, code });
      assert.strictEqual(report.firstRelease, true);
      assert.match((ops[0].notes ?? []).join(" "), /"shop_product" is new in this release/);
      const comment = operationsOf(report, "0003_analyze");
      assert.strictEqual(comment[0]?.verdict, "safe", describeOps(report));
      assert.match(
        (comment[0].notes ?? []).join(" "),
        /a first release on an empty database: nothing serves from it yet/,
      );
      await project.migrate();
    });

    it("CreateModel with a ForeignKey to a served table and an index: the new table is nobody's yet", async () => {
      const to =
        PRODUCT +
        "\n\nclass Review(models.Model):\n" +
        "    product = models.ForeignKey(Product, on_delete=models.CASCADE)\n" +
        "    stars = models.IntegerField()\n" +
        '    class Meta:\n        indexes = [models.Index(fields=["stars"], name="review_stars_idx")]\n';
      const r = await release(PRODUCT, to);
      assertSafe(r);
      assert.ok(
        r.ops[0].sql.some((s) => /^CREATE INDEX/.test(s)),
        r.ops[0].sql.join("\n"),
      );
    });

    it("AlterField max_length 50 -> 120 and null=False -> null=True: widening, no rewrite", async () => {
      const r = await release(
        PRODUCT,
        PRODUCT.replace("max_length=50, blank=True", "max_length=120, blank=True, null=True"),
      );
      assertSafe(r);
      assert.ok(
        r.ops[0].sql.some((s) => /TYPE varchar\(120\)/.test(s)),
        r.ops[0].sql.join("\n"),
      );
    });

    it("a renamed field that keeps its column (db_column): no SQL at all", async () => {
      const r = await release(
        PRODUCT,
        PRODUCT.replace(
          "    code = models.CharField(max_length=50, blank=True)",
          '    sku = models.CharField(max_length=50, blank=True, db_column="code")',
        ),
        ["y"],
      );
      assertSafe(r);
      assert.deepStrictEqual(
        r.ops.map((o) => o.sql),
        r.ops.map(() => []),
      );
    });

    // Django cannot generate these two: they are written as the README says, and their SQL
    // still comes from Django.
    it("the README's two-release drop: state-only RemoveField, then RunSQL DROP COLUMN, each safe in turn", async () => {
      const project = await serving(PRODUCT);
      const without = PRODUCT.replace(/ {4}code = .*\n/, "");
      project.models(without);
      project.migration(
        "0002_forget_code",
        "0001_initial",
        "migrations.AlterField('product', 'code', models.CharField(max_length=50, blank=True, null=True)),\n" +
          "        migrations.SeparateDatabaseAndState(state_operations=[migrations.RemoveField('product', 'code')]),",
      );
      const first = await project.check();
      assert.strictEqual(first.report.verdict, "safe", describeOps(first.report));
      assert.deepStrictEqual(first.report.plan[0].operations[1].sql, [], "the column stays");
      await project.migrate();
      // Release 1 serves now, and it no longer knows the column: release 2 drops it.
      project.migration(
        "0003_drop_code",
        "0002_forget_code",
        'migrations.RunSQL(\'ALTER TABLE "shop_product" DROP COLUMN "code"\', migrations.RunSQL.noop),',
      );
      const second = await project.check();
      assert.strictEqual(second.report.verdict, "safe", describeOps(second.report));
      // The same RunSQL on a column the serving release still has is refused.
      project.migration(
        "0004_drop_name",
        "0003_drop_code",
        'migrations.RunSQL(\'ALTER TABLE "shop_product" DROP COLUMN "name"\', migrations.RunSQL.noop),',
      );
      const third = await project.check();
      assert.deepStrictEqual(
        third.report.plan.map((m) => m.verdict),
        ["safe", "unsafe"],
      );
      assert.strictEqual(third.report.plan[1].operations[0].findings[0].kind, "drop-column");
    });

    it("after a rollback the serving release's own models decide (--serving), not the database's state", async () => {
      const r1 = await serving(PRODUCT);
      const r2 = r1.clone();
      r2.models(PRODUCT.replace(/ {4}code = .*\n/, ""));
      r2.migration(
        "0002_forget_code",
        "0001_initial",
        "migrations.AlterField('product', 'code', models.CharField(max_length=50, blank=True, null=True)),\n" +
          "        migrations.SeparateDatabaseAndState(state_operations=[migrations.RemoveField('product', 'code')]),",
      );
      await r2.migrate();
      // Rolled back: r1 serves again on r2's schema, and still reads "code". r3 drops it.
      const r3 = r2.clone();
      r3.migration(
        "0003_drop_code",
        "0002_forget_code",
        'migrations.RunSQL(\'ALTER TABLE "shop_product" DROP COLUMN "code"\', migrations.RunSQL.noop),',
      );
      const serving1 = ["--serving", r1.dir, "--serving-python", python];
      const refused = await r3.check(serving1);
      assert.strictEqual(refused.code, 3, refused.stderr);
      assert.strictEqual(operationsOf(refused.report, "0003_drop_code")[0].findings[0].kind, "drop-column");
      assert.strictEqual(refused.report.serving, "the serving release's models");
      // With r2 serving (no rollback), the same drop is the safe second step.
      const allowed = await r3.check(["--serving", r2.dir, "--serving-python", python]);
      assert.strictEqual(allowed.report.verdict, "safe", describeOps(allowed.report));
    });

    it("AddIndexConcurrently in a non-atomic migration: CREATE INDEX CONCURRENTLY", async () => {
      const project = await serving(PRODUCT);
      project.models(
        PRODUCT + '\n    class Meta:\n        indexes = [models.Index(fields=["code"], name="product_code_idx")]\n',
      );
      project.migration(
        "0002_code_index",
        "0001_initial",
        "AddIndexConcurrently('product', models.Index(fields=['code'], name='product_code_idx')),",
        { atomic: false, imports: "from django.contrib.postgres.operations import AddIndexConcurrently\n" },
      );
      const { report, code } = await project.check();
      assert.strictEqual(report.verdict, "safe", describeOps(report));
      assert.strictEqual(code, 0);
      assert.match(report.plan[0].operations[0].sql[0], /^CREATE INDEX CONCURRENTLY "product_code_idx"/);
    });

    it("the first release on an empty database: nothing serves, so every operation is safe; the plan is migrate --plan's", async () => {
      const name = `mig${++count}`;
      await pg!.createRoleAndDatabase(name, "first-pw");
      const project = new DjangoProject(
        python,
        `postgres://${name}:first-pw@127.0.0.1:${pg!.port}/${name}?sslmode=require`,
      );
      project.models(PRODUCT);
      await project.makemigrations();
      project.models(PRODUCT + "    stock = models.IntegerField(default=0)\n");
      await project.makemigrations();
      const { report, code } = await project.check();
      assert.strictEqual(code, 0, JSON.stringify(report));
      assert.strictEqual(report.verdict, "safe");
      assert.deepStrictEqual(report.pending, await project.migratePlan());
      assert.deepStrictEqual(report.pending, ["shop.0001_initial", "shop.0002_product_stock"]);
      // Sent through stdin, as a step can send it without a file on the host: the same report.
      assert.deepStrictEqual((await project.check([], { stdin: true })).report, report);
    });

    it("a column added and removed within the same release is unknown to the serving one", async () => {
      const project = await serving(PRODUCT);
      project.models(PRODUCT + "    draft = models.IntegerField(default=0)\n");
      await project.makemigrations();
      project.models(PRODUCT);
      await project.makemigrations();
      const { report } = await project.check();
      const removal = report.plan[1].operations[0];
      assert.strictEqual(removal.operation, "RemoveField");
      assert.strictEqual(removal.verdict, "safe", JSON.stringify(removal));
      // The AddField before it still is not: the serving release inserts into shop_product.
      assert.strictEqual(report.plan[0].operations[0].verdict, "unsafe");
    });
  });
});
