#!/usr/bin/env python3
"""greenlight migration check: which migrations a release will apply, and whether each of
their operations is safe while the previous release still serves and after a rollback to it.

Run with the release's own venv python, from anywhere, against the real database (the
release's .env), as a file or through stdin (`python - --project ...`):

    <release>/venv/bin/python migration_check.py --project <release> [--release ID] [--stack S] [--allow-unsafe]
        [--serving <serving release>]

Everything comes from Django itself: the plan is the one `manage.py migrate` would run
(MigrationExecutor.migration_plan of the graph's leaf nodes against the applied migrations in
the database, exactly what `migrate --plan` prints), and the SQL of each operation is the SQL
`manage.py sqlmigrate` prints for it (the operation run through a schema editor in collect_sql
mode), one operation at a time so that deferred statements (indexes, foreign keys) are
attributed to the operation that makes them. Nothing is written: the session is read-only,
RunPython is never called, RunSQL only collected.

What the serving release uses is its own models' state (--serving: the serving release's
directory, read with its own venv; needed after a rollback, when the database is ahead of
the serving release), or else the project state of the migrations already applied: a table
or column in it is in use (a release's models match its migrations); one that is not (new in
this release, or removed from the models' state by an earlier SeparateDatabaseAndState) is
not.

stdout: one JSON document (see `report` below). stderr: on an unsafe plan, the refusal message.
Exit status: 0 safe (or unsafe but allowed with --allow-unsafe), 3 unsafe and refused,
1 the check could not run (the message says why).
"""
import argparse
import json
import os
import re
import sys

EXIT_UNSAFE = 3

# --------------------------------------------------------------------------------------------
# SQL text helpers: Django's PostgreSQL schema editor quotes every identifier.

IDENT = r'(?:"(?:[^"]|"")+"(?:\."(?:[^"]|"")+")?|[A-Za-z_][A-Za-z0-9_$.]*)'


def unquote(ident):
    """Last part of a possibly schema-qualified identifier, unquoted."""
    parts = re.findall(r'"((?:[^"]|"")+)"|([A-Za-z_][A-Za-z0-9_$]*)', ident)
    quoted, bare = parts[-1]
    return quoted.replace('""', '"') if quoted else bare.lower()


def split_top(text, sep):
    """Splits on `sep` outside quotes and parentheses."""
    out, depth, buf, quote = [], 0, [], None
    for ch in text:
        if quote:
            buf.append(ch)
            if ch == quote:
                quote = None
            continue
        if ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == sep and depth == 0:
            out.append("".join(buf).strip())
            buf = []
            continue
        buf.append(ch)
    out.append("".join(buf).strip())
    return [s for s in out if s]


def strip_comments(text):
    """SQL without its -- comments (outside quotes)."""
    out, quote, i = [], None, 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif text.startswith("--", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def statements(collected):
    """Django's collected SQL (one string may hold `...; SET CONSTRAINTS ...`) as statements."""
    result = []
    for chunk in collected:
        for stmt in split_top(strip_comments(chunk), ";"):
            stmt = re.sub(r"\s+", " ", stmt).strip()
            if stmt:
                result.append(stmt)
    return result


# --------------------------------------------------------------------------------------------
# Column types: which changes narrow, which PostgreSQL does without rewriting the table.

INT_RANK = {"smallint": 1, "integer": 2, "bigint": 3, "smallserial": 1, "serial": 2, "bigserial": 3}


def parse_type(t):
    t = re.sub(r"\s+", " ", (t or "").strip().lower())
    m = re.fullmatch(r"(?:varchar|character varying)(?:\((\d+)\))?", t)
    if m:
        return ("varchar", int(m.group(1)) if m.group(1) else None)
    if t == "text":
        return ("varchar", None)
    m = re.fullmatch(r"numeric(?:\((\d+)(?:, ?(\d+))?\))?", t)
    if m:
        return ("numeric", (int(m.group(1)), int(m.group(2) or 0)) if m.group(1) else None)
    if t in INT_RANK:
        return ("int", INT_RANK[t])
    if t in ("real", "double precision"):
        return ("float", 1 if t == "real" else 2)
    return (t, None)


def type_change(old, new):
    """'same', 'widen' (no rewrite, old values and writes still fit), 'narrow' or 'rewrite'."""
    if old is None:
        return "unknown"
    (ok, oa), (nk, na) = parse_type(old), parse_type(new)
    if (ok, oa) == (nk, na):
        return "same"
    if ok == nk == "varchar":
        if na is None:
            return "widen"
        return "narrow" if oa is None or na < oa else "widen"
    if ok == nk == "numeric":
        if na is None:
            return "widen"
        if oa is None:
            return "narrow"
        (op, os_), (np_, ns) = oa, na
        if np_ < op or ns < os_ or (np_ - ns) < (op - os_):
            return "narrow"
        return "widen" if ns == os_ else "rewrite"
    if ok == nk and ok in ("int", "float"):
        return "narrow" if na < oa else "rewrite"
    if ok == "varchar" and nk != "varchar" or ok == "numeric" and nk == "int":
        return "narrow"
    return "rewrite"


# --------------------------------------------------------------------------------------------
# Safe ways, named in the refusal.


def safe_ways(has_db_default):
    default = (
        "give it a database default with db_default=<value> (this site's Django has it), so INSERTs that leave the "
        "column out get the default"
        if has_db_default
        else "upgrade to Django 5.0 or later and give it db_default=<value>"
    )
    return {
        "not-null-without-default": (
            "add it with null=True in this release (the serving release's INSERTs leave it NULL), fill it, and "
            f"make it NOT NULL in a later release; or {default}"
        ),
        "drop-column": (
            "two releases (expand/contract): first take the field out of the models with "
            "migrations.SeparateDatabaseAndState(state_operations=[migrations.RemoveField(...)]), the column "
            "nullable (null=True) or with a db_default; in the next release drop it with migrations.RunSQL"
            "('ALTER TABLE ... DROP COLUMN ...'), once no serving release knows it"
        ),
        "drop-table": (
            "two releases (expand/contract): first take the model out of the code with "
            "migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(...)]); in the next "
            "release drop the table with migrations.RunSQL('DROP TABLE ...')"
        ),
        "rename-column": (
            "keep the column: rename only the Python field and set db_column='<old name>' (no SQL); or, across "
            "releases, add the new field (null=True), write both and backfill, switch reads, then drop the old one "
            "as for a removed field"
        ),
        "rename-table": (
            "keep the table: rename only the model and set Meta.db_table='<old name>' (no SQL); or create the new "
            "table, write both, backfill, and drop the old one in a later release"
        ),
        "narrowing": (
            "do not narrow in place: add a new column of the narrower type (null=True), copy and check the data, "
            "switch the code, and drop the old column a release later; or keep the wider type and validate in "
            "the model or form"
        ),
        "table-rewrite": (
            "do not change the type in place: add a new column of the new type (null=True), backfill it in "
            "batches, switch the code, and drop the old column a release later"
        ),
        "set-not-null": (
            "keep null=True while a serving release may write NULL; backfill; in a later release add "
            "CHECK (<column> IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT it, then SET NOT NULL "
            "(PostgreSQL 12+ skips the scan)"
        ),
        "index-lock": (
            "build the index without blocking writes: django.contrib.postgres.operations.AddIndexConcurrently "
            "(RemoveIndexConcurrently) in a migration with atomic = False; for a ForeignKey, db_index=False in "
            "the field and the index built concurrently"
        ),
        "constraint-lock": (
            "add it as NOT VALID and validate it in a second migration (VALIDATE CONSTRAINT does not block "
            "writes): for a check constraint django.contrib.postgres.operations.AddConstraintNotValid, then "
            "ValidateConstraint; for a foreign key db_constraint=False on the field, then RunSQL('ALTER TABLE ... "
            "ADD CONSTRAINT ... FOREIGN KEY ... NOT VALID') and RunSQL('ALTER TABLE ... VALIDATE CONSTRAINT ...')"
        ),
        "unique-lock": (
            "build its index first without blocking writes: RunSQL('CREATE UNIQUE INDEX CONCURRENTLY ...') in a "
            "migration with atomic = False, then RunSQL('ALTER TABLE ... ADD CONSTRAINT ... UNIQUE USING INDEX ...') "
            "(with SeparateDatabaseAndState, so the models know the constraint)"
        ),
        "drop-object": "drop it in a later release, once no serving release uses it",
        "unknown-sql": (
            "greenlight cannot tell what this statement does to the serving release: review it, and if it is "
            "safe let this release through on purpose (allowUnsafeMigrations)"
        ),
        "sql-unavailable": (
            "run `manage.py sqlmigrate` for this migration to see why; if the operation is safe, let this "
            "release through on purpose (allowUnsafeMigrations)"
        ),
        "unapply": "releases only add migrations; unapply by restoring the backup instead",
    }


# --------------------------------------------------------------------------------------------
# Classification


class Columns:
    """{table: {column: {"type", "null", "db_default"}}} of a project state's models."""

    def __init__(self, state, connection):
        try:
            from django.db.models.fields import NOT_PROVIDED
        except ImportError:  # pragma: no cover
            NOT_PROVIDED = None
        self.tables = {}
        for model in state.apps.get_models(include_auto_created=True):
            meta = model._meta
            if meta.proxy or not meta.managed and not meta.auto_created:
                continue
            cols = self.tables.setdefault(meta.db_table, {})
            for field in meta.local_fields:
                if field.column is None:
                    continue
                db_default = getattr(field, "db_default", NOT_PROVIDED)  # Django >= 5.0
                cols[field.column] = {
                    "type": field.db_type(connection),
                    "null": field.null,
                    "db_default": db_default is not NOT_PROVIDED,
                }

    @classmethod
    def from_json(cls, tables):
        self = cls.__new__(cls)
        self.tables = tables
        return self

    def table(self, name):
        return self.tables.get(name)

    def column(self, table, column):
        return (self.tables.get(table) or {}).get(column)


class Classifier:
    def __init__(self, prev, before, after, ways):
        self.prev = prev  # what the serving release knows
        self.before = before  # state right before the operation (for old column types)
        self.after = after
        self.ways = ways
        self.findings = []
        self.notes = []

    def unsafe(self, kind, reason, stmt):
        self.findings.append({"kind": kind, "reason": reason, "safe_way": self.ways[kind], "statement": stmt})

    def served(self, table):
        return self.prev.table(table) is not None

    def note_new(self, table):
        self.notes.append(f'"{table}" is new in this release: the serving release does not use it')

    def run(self, stmts):
        for i, stmt in enumerate(stmts):
            self.statement(stmt, stmts[i + 1 :])

    def statement(self, stmt, rest):
        up = stmt.upper()
        if re.match(r"(CREATE TABLE|SET CONSTRAINTS|COMMENT ON|SELECT|INSERT|UPDATE|DELETE|WITH)\b", up):
            return
        if re.match(r"CREATE (OR REPLACE )?(EXTENSION|SCHEMA|SEQUENCE|VIEW|FUNCTION|TRIGGER|TYPE|COLLATION)\b", up):
            return
        if re.match(r"ALTER SEQUENCE\b", up) or re.match(r"DROP INDEX\b", up):
            return
        m = re.match(rf"CREATE (UNIQUE )?INDEX (CONCURRENTLY )?(?:IF NOT EXISTS )?(?:{IDENT} )?ON (?:ONLY )?({IDENT})", stmt, re.I)
        if m:
            table = unquote(m.group(3))
            if m.group(2):
                return
            if self.served(table):
                self.unsafe(
                    "index-lock",
                    f'CREATE INDEX on "{table}" without CONCURRENTLY blocks every write to the table while the index '
                    "builds",
                    stmt,
                )
            else:
                self.note_new(table)
            return
        m = re.match(rf"DROP TABLE (?:IF EXISTS )?({IDENT})", stmt, re.I)
        if m:
            table = unquote(m.group(1))
            if self.served(table):
                self.unsafe("drop-table", f'drops table "{table}", which the serving release uses', stmt)
            return
        m = re.match(r"DROP (VIEW|FUNCTION|TRIGGER|TYPE|SCHEMA|EXTENSION|COLLATION|SEQUENCE)\b", up)
        if m:
            self.unsafe("drop-object", f"drops a {m.group(1).lower()} the serving release may use", stmt)
            return
        m = re.match(rf"ALTER TABLE (?:IF EXISTS )?(?:ONLY )?({IDENT}) (.*)$", stmt, re.I)
        if m:
            table = unquote(m.group(1))
            for action in split_top(m.group(2), ","):
                self.alter(table, action, stmt, rest)
            return
        self.unsafe("unknown-sql", "a statement greenlight does not know", stmt)

    def alter(self, table, action, stmt, rest):
        up = action.upper()
        served = self.served(table)
        m = re.match(rf"RENAME TO ({IDENT})", action, re.I)
        if m:
            if served:
                self.unsafe(
                    "rename-table",
                    f'renames table "{table}" to "{unquote(m.group(1))}": the serving release still uses "{table}"',
                    stmt,
                )
            return
        m = re.match(rf"RENAME (?:COLUMN )?({IDENT}) TO ({IDENT})", action, re.I)
        if m:
            old, new = unquote(m.group(1)), unquote(m.group(2))
            if self.prev.column(table, old):
                self.unsafe(
                    "rename-column",
                    f'renames column "{table}"."{old}" to "{new}": the serving release still reads and writes "{old}"',
                    stmt,
                )
            return
        m = re.match(rf"ADD (?:COLUMN )?(?:IF NOT EXISTS )?({IDENT}) (.*)$", action, re.I)
        if m and not re.match(r"ADD (CONSTRAINT|PRIMARY KEY|UNIQUE|CHECK|FOREIGN KEY|EXCLUDE)\b", up):
            column, definition = unquote(m.group(1)), m.group(2)
            d = definition.upper()
            not_null = re.search(r"\bNOT NULL\b", d) is not None or re.search(r"\bPRIMARY KEY\b", d) is not None
            has_default = re.search(r"\bDEFAULT\b", d) is not None
            dropped = any(
                re.match(rf"ALTER TABLE (?:ONLY )?{IDENT} .*ALTER (?:COLUMN )?{re.escape(quote(column))} DROP DEFAULT", s, re.I)
                and unquote(re.match(rf"ALTER TABLE (?:ONLY )?({IDENT})", s, re.I).group(1)) == table
                for s in rest
            )
            if served and not_null and (not has_default or dropped):
                how = (
                    "with a DEFAULT that the same migration drops again"
                    if has_default
                    else "without a default"
                )
                self.unsafe(
                    "not-null-without-default",
                    f'adds NOT NULL column "{table}"."{column}" {how}: every INSERT from the serving release (which '
                    "does not know the column) fails with a NOT NULL violation, until the cutover and after a "
                    "rollback",
                    stmt,
                )
            if served and re.search(r"\b(REFERENCES|UNIQUE|PRIMARY KEY|CHECK)\b", d):
                self.unsafe(
                    "unique-lock" if re.search(r"\b(UNIQUE|PRIMARY KEY)\b", d) else "constraint-lock",
                    f'adds column "{table}"."{column}" with a constraint that is validated (or indexed) while the '
                    "table is locked against writes",
                    stmt,
                )
            if not served:
                self.note_new(table)
            return
        m = re.match(rf"ALTER (?:COLUMN )?({IDENT}) (?:SET DATA )?TYPE (.*?)(?: USING .*)?$", action, re.I)
        if m:
            column, new_type = unquote(m.group(1)), m.group(2).strip()
            before = self.before.column(table, column)
            change = type_change(before["type"] if before else None, new_type)
            if change in ("same", "widen") or not served:
                return
            old = before["type"] if before else "its current type"
            if change == "narrow":
                self.unsafe(
                    "narrowing",
                    f'narrows "{table}"."{column}" from {old} to {new_type}: values the serving release writes may '
                    "no longer fit, and the table is locked while every row is checked",
                    stmt,
                )
            else:
                self.unsafe(
                    "table-rewrite",
                    f'changes "{table}"."{column}" from {old} to {new_type}: PostgreSQL rewrites the whole table '
                    "under a lock that blocks reads and writes",
                    stmt,
                )
            return
        m = re.match(rf"ALTER (?:COLUMN )?({IDENT}) (SET|DROP) (NOT NULL|DEFAULT)\b", action, re.I)
        if m:
            column, verb, what = unquote(m.group(1)), m.group(2).upper(), m.group(3).upper()
            if not served:
                return
            if (verb, what) == ("SET", "NOT NULL"):
                known = self.prev.column(table, column)
                self.unsafe(
                    "set-not-null",
                    f'sets "{table}"."{column}" NOT NULL: the table is locked while every row is checked'
                    + (", and the serving release may still write NULL there" if known and known["null"] else ""),
                    stmt,
                )
            elif (verb, what) == ("DROP", "DEFAULT"):
                known = self.prev.column(table, column)
                after = self.after.column(table, column)
                if known and known["db_default"] and after and not after["null"]:
                    self.unsafe(
                        "not-null-without-default",
                        f'drops the database default of NOT NULL column "{table}"."{column}": the serving release '
                        "leaves the column out of its INSERTs, which then fail",
                        stmt,
                    )
            return
        m = re.match(rf"ADD CONSTRAINT ({IDENT}) (.*)$", action, re.I) or re.match(r"ADD ()(.*)$", action, re.I)
        if m and re.match(r"(PRIMARY KEY|UNIQUE|CHECK|FOREIGN KEY|EXCLUDE)\b", m.group(2).upper()):
            body = m.group(2).upper()
            if not served or re.search(r"\bNOT VALID\b", body) or re.search(r"\bUSING INDEX\b", body):
                return
            kind = body.split("(")[0].strip().lower()
            self.unsafe(
                "constraint-lock" if kind in ("check", "foreign key") else "unique-lock",
                f'adds a {kind} constraint to "{table}" that is validated (or indexed) while the table is locked '
                "against writes",
                stmt,
            )
            return
        if re.match(r"(VALIDATE CONSTRAINT|DROP CONSTRAINT)\b", up):
            return
        m = re.match(rf"DROP (?:COLUMN )?(?:IF EXISTS )?({IDENT})", action, re.I)
        if m:
            column = unquote(m.group(1))
            if self.prev.column(table, column):
                self.unsafe(
                    "drop-column",
                    f'drops column "{table}"."{column}": the serving release still selects and inserts it',
                    stmt,
                )
            return
        self.unsafe("unknown-sql", f'an ALTER TABLE "{table}" action greenlight does not know ({action})', stmt)


def quote(name):
    return '"' + name.replace('"', '""') + '"'


# --------------------------------------------------------------------------------------------
# Django


def settings_module(project):
    if os.environ.get("DJANGO_SETTINGS_MODULE"):
        return os.environ["DJANGO_SETTINGS_MODULE"]
    try:
        with open(os.path.join(project, "manage.py"), encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise SystemExit(f"greenlight migration check: {project} has no manage.py") from None
    m = re.search(r"""DJANGO_SETTINGS_MODULE['"]\s*,\s*['"]([\w.]+)['"]""", text)
    if not m:
        raise SystemExit("greenlight migration check: manage.py does not name DJANGO_SETTINGS_MODULE; pass --settings")
    return m.group(1)


def operation_sql(op, app_label, migration, state, new_state, connection):
    """The SQL sqlmigrate prints for this one operation (collected, never executed)."""
    with connection.schema_editor(collect_sql=True, atomic=migration.atomic) as editor:
        op.database_forwards(app_label, editor, state, new_state)
    return editor.collected_sql


def operation_table(op, app_label, state, new_state, connection):
    """The table of the model an operation works on (AddField, AlterUniqueTogether, RenameIndex...), or None."""
    from django.db.backends.utils import truncate_name

    name = getattr(op, "model_name", None) or getattr(op, "name", None)
    if not isinstance(name, str):
        return None
    model = new_state.models.get((app_label, name.lower())) or state.models.get((app_label, name.lower()))
    if model is None:
        return None
    table = model.options.get("db_table")
    if table:
        return table
    return truncate_name(f"{app_label}_{model.name_lower}", connection.ops.max_name_length())


def runs_python(op):
    if not op.reduces_to_sql:
        return True
    return any(runs_python(o) for o in getattr(op, "database_operations", []) or [])


def setup(project):
    sys.path.insert(0, project)
    os.chdir(project)
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module(project)
    import django

    django.setup()


def dump_state(project):
    """The tables and columns of the project's own models (its migrations' leaf state), no database."""
    setup(project)
    from django.db import DEFAULT_DB_ALIAS, connections
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(None, ignore_no_migrations=True)
    return Columns(loader.project_state(), connections[DEFAULT_DB_ALIAS]).tables


def serving_columns(serving, python):
    """What the serving release (another release directory, its own venv) uses: --dump-state there."""
    import subprocess

    if not os.path.isfile(python):
        raise SystemExit(f"greenlight migration check: the serving release's python {python} does not exist")
    script = os.path.abspath(__file__) if os.path.isfile(__file__) else None
    if not script:
        raise SystemExit("greenlight migration check: --serving needs this script as a file, not on stdin")
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    r = subprocess.run(
        [python, script, "--dump-state", "--project", serving],
        cwd=serving,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=600,
        check=False,
    )
    if r.returncode != 0:
        tail = r.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        raise SystemExit(f"greenlight migration check: could not read the serving release's models: {tail[0]}")
    return Columns.from_json(json.loads(r.stdout))


def check(project, release, stack, allow, serving=None):
    setup(project)
    import django
    from django.db import DEFAULT_DB_ALIAS, connections
    from django.db.migrations.executor import MigrationExecutor

    connection = connections[DEFAULT_DB_ALIAS]
    if connection.vendor == "postgresql":
        # Belt and braces: nothing here writes, and the database refuses it if something tried.
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    executor = MigrationExecutor(connection)
    loader = executor.loader
    loader.check_consistent_history(connection)
    conflicts = loader.detect_conflicts()
    if conflicts:
        names = "; ".join(f"{app}: {', '.join(sorted(ms))}" for app, ms in sorted(conflicts.items()))
        raise SystemExit(f"greenlight migration check: conflicting migrations ({names}); run makemigrations --merge")
    targets = loader.graph.leaf_nodes()
    plan = executor.migration_plan(targets)  # what `manage.py migrate --plan` prints

    ways = safe_ways(django.VERSION >= (5, 0))
    # The tables the database has now: no serving release uses one it does not have yet.
    existing = set(connection.introspection.table_names())
    # A first release: no serving release, and a database without a table. Nothing reads or
    # writes it until this release goes live, so no statement can break a serving release.
    first = serving is None and not existing
    state = executor._create_project_state(with_applied_migrations=True)
    # What the serving release uses: its own models when we are told where it is (after a
    # rollback the database is ahead of it), else the state of the applied migrations.
    prev = serving if serving is not None else Columns(state, connection)
    report_plan = []
    for migration, backwards in plan:
        name = f"{migration.app_label}.{migration.name}"
        entry = {"migration": name, "atomic": migration.atomic, "operations": []}
        if backwards:
            entry["operations"].append(
                {
                    "index": 0,
                    "operation": "(unapply)",
                    "description": f"unapplies {name}",
                    "sql": [],
                    "verdict": "unsafe",
                    "findings": [
                        {"kind": "unapply", "reason": "the plan unapplies a migration", "safe_way": ways["unapply"]}
                    ],
                }
            )
            report_plan.append(entry)
            continue
        for index, op in enumerate(migration.operations, start=1):
            new_state = state.clone()
            op.state_forwards(migration.app_label, new_state)
            result = {"index": index, "operation": type(op).__name__, "description": op.describe()}
            before = Columns(state, connection)
            after = Columns(new_state, connection)
            classifier = Classifier(prev, before, after, ways)
            if runs_python(op):
                result["sql"] = []
                classifier.notes.append(
                    "runs Python that greenlight cannot see into: it must leave data the serving release can read"
                )
            else:
                try:
                    collected = operation_sql(op, migration.app_label, migration, state, new_state, connection)
                except Exception as e:  # noqa: BLE001 - reported, not hidden
                    result["sql"] = []
                    table = operation_table(op, migration.app_label, state, new_state, connection)
                    if table is not None and table not in existing:
                        # Its SQL needs the database as the earlier operations of this plan leave
                        # it (AlterUniqueTogether, RenameIndex and AddField introspect it), which a
                        # read-only check cannot produce; a table this release creates is one no
                        # serving release uses (every table of a first release is).
                        classifier.notes.append(
                            f'"{table}" is new in this release: the serving release does not use it '
                            f"(its SQL exists only as migrate runs: {type(e).__name__})"
                        )
                    else:
                        classifier.findings.append(
                            {
                                "kind": "sql-unavailable",
                                "reason": f"Django could not produce this operation's SQL ({type(e).__name__}: {e})",
                                "safe_way": ways["sql-unavailable"],
                            }
                        )
                else:
                    result["sql"] = statements(collected)
                    classifier.run(result["sql"])
            if first and classifier.findings:
                kinds = ", ".join(sorted({f["kind"] for f in classifier.findings}))
                classifier.notes.append(f"a first release on an empty database: nothing serves from it yet ({kinds})")
                classifier.findings = []
            result["verdict"] = "unsafe" if classifier.findings else "safe"
            result["findings"] = classifier.findings
            if classifier.notes:
                result["notes"] = sorted(set(classifier.notes))
            entry["operations"].append(result)
            state = new_state
        report_plan.append(entry)

    unsafe = [(entry["migration"], op) for entry in report_plan for op in entry["operations"] if op["findings"]]
    for entry in report_plan:
        entry["verdict"] = "unsafe" if any(op["verdict"] == "unsafe" for op in entry["operations"]) else "safe"
    report = {
        "release": release,
        "django": django.get_version(),
        "database": connection.vendor,
        "serving": "the serving release's models" if serving is not None else "the applied migrations",
        "firstRelease": first,
        "pending": [entry["migration"] for entry in report_plan],
        "verdict": "unsafe" if unsafe else "safe",
        "allowed": bool(unsafe) and allow,
        "plan": report_plan,
    }
    if unsafe:
        report["message"] = refusal(release, stack, unsafe, allow)
    return report


def refusal(release, stack, unsafe, allow):
    rel = f"release {release}" if release else "this release"
    lines = [
        (
            f"greenlight: {rel} has unsafe migrations and goes out anyway (allowUnsafeMigrations = {release}):"
            if allow
            else f"greenlight: {rel} is refused before the backup: its migrations are unsafe while the previous "
            "release still serves, and after a rollback to it. Nothing has changed."
        )
    ]
    for migration, op in unsafe:
        reasons = "; ".join(f["reason"] for f in op["findings"])
        lines.append(f"  {migration}, operation {op['index']} {op['operation']} ({op['description']}): {reasons}.")
        ways = []
        for f in op["findings"]:
            if f["safe_way"] not in ways:
                ways.append(f["safe_way"])
        lines.extend(f"    Safe way: {way}." for way in ways)
    if not allow:
        lines.append(
            "To let this one release through on purpose (under maintenance mode, or when you know the serving "
            f"release does not use what changes): pulumi config set allowUnsafeMigrations {release or '<release id>'}"
            f" --stack {stack or '<stack>'}"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="migration_check.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", required=True, help="the release's directory (with manage.py and .env)")
    parser.add_argument("--settings", help="settings module (default: DJANGO_SETTINGS_MODULE, else manage.py's)")
    parser.add_argument("--release", default="", help="release id, for the message")
    parser.add_argument("--stack", default="", help="stack name, for the message")
    parser.add_argument("--allow-unsafe", action="store_true", help="report unsafe operations but exit 0")
    parser.add_argument("--serving", help="the serving release's directory: judge against its models")
    parser.add_argument("--serving-python", help="its python (default: SERVING/venv/bin/python)")
    parser.add_argument("--dump-state", action="store_true", help="print the project's models' tables and exit")
    args = parser.parse_args(argv)
    project = os.path.abspath(args.project)
    if args.settings:
        os.environ["DJANGO_SETTINGS_MODULE"] = args.settings
    try:
        if args.dump_state:
            json.dump(dump_state(project), sys.stdout, separators=(",", ":"))
            return 0
        serving = None
        if args.serving:
            where = os.path.abspath(args.serving)
            serving = serving_columns(where, args.serving_python or os.path.join(where, "venv", "bin", "python"))
        report = check(project, args.release, args.stack, args.allow_unsafe, serving)
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001 - one line, never a value from .env
        print(f"greenlight migration check: could not run: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    json.dump(report, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")
    if report["verdict"] == "unsafe":
        print(report["message"], file=sys.stderr)
        return 0 if args.allow_unsafe else EXIT_UNSAFE
    return 0


if __name__ == "__main__":
    sys.exit(main())
