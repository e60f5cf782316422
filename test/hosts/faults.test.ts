// Faults on real local hosts (issue 11), each injected while a mixed read/write load runs
// against the colour that serves, on both hosts: an SSM failure during fetch and settings, the
// SSH connection dropped in the middle of each release step and the step retried as `pulumi up`
// retries a failed create (the same command again), a restore dropped and retried (it restores
// once; a new restore request restores again), a full disk during fetch and backup, a
// setting that stops the app booting, and rollback's look before it leaps. After each: not one
// request to the serving colour failed, and every write it acknowledged is in the database.
import { S3Client } from "@aws-sdk/client-s3";
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { StepCall, recordPath } from "../../components/remote";
import { artifactKey, writeConfig } from "../../scripts/cli/lib/stack";
import { uploadArtifact } from "../../scripts/cli/lib/upload";
import { Variant, siteArtifact } from "../rig/artifacts";
import { RigHost } from "../rig/hosts";
import { MAINTENANCE, MixedLoad, PhaseTally, describeTallies, startMixedLoad } from "../rig/load";
import { ROOT } from "../rig/stackConfig";
import { RunResult } from "../rig/ssh";
import { APP, REGION, SITE_HOST, World, startWorld } from "../rig/world";

type Slot = "blue" | "green";
const PORT: Record<Slot, number> = { blue: 8001, green: 8002 };

/** Polls `cond` every 100 ms until it holds, for at most `ms`. */
async function until(what: string, cond: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("faults on real hosts: the serving colour answers throughout, nothing is lost", function () {
  this.timeout(600_000);
  let w: World;
  let h0: RigHost;
  let h1: RigHost;
  let s3: S3Client;
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "gl-faults-"));
  const uploaded = new Map<string, { key: string; sha256: string }>();
  /** The colour the load balancer would send traffic to. */
  let serving: Slot = "blue";

  const artifact = async (variant: Variant) => {
    if (!uploaded.has(variant)) {
      const a = await siteArtifact(variant, out);
      await uploadArtifact(s3, w.artifactBucket, artifactKey(a.sha256), a.file, a.sha256);
      uploaded.set(variant, { key: artifactKey(a.sha256), sha256: a.sha256 });
    }
    return uploaded.get(variant)!;
  };
  const sh = async (host: RigHost, script: string) => {
    const r = await host.exec(["bash", "-c", script]);
    assert.equal(r.code, 0, `${script}: ${r.stderr}`);
    return r.stdout.trim();
  };
  const logOf = async (host: RigHost, r: RunResult) => {
    const file = /\(log: (\S+)\)$|The whole log stays on the host: (\S+)$/m.exec(r.stderr);
    assert.ok(file, `the step names its log: ${r.stderr}`);
    return sh(host, `cat -- '${file[1] ?? file[2]}'`);
  };
  const ok = async (host: RigHost, call: StepCall) => {
    const r = await w.step(host, call);
    assert.equal(r.code, 0, `${call.step} on ${host.name} failed:\n${r.stderr.slice(-3000)}`);
    return { ...r, result: JSON.parse(r.stdout.trim().split("\n").pop()!) as Record<string, unknown> };
  };
  const fails = async (host: RigHost, call: StepCall, why: RegExp) => {
    const r = await w.step(host, call);
    assert.notEqual(r.code, 0, `${call.step} on ${host.name} should have failed`);
    assert.match(r.stderr, why, "the failure says why, in the message pulumi shows");
    return r;
  };
  const serves = async (host: RigHost, slot: Slot) => (await w.get(host, PORT[slot], "/healthz")).body;
  const envHash = (host: RigHost) =>
    sh(host, `sha256sum /srv/${APP}/shared/.env | cut -d' ' -f1; stat -c %s /srv/${APP}/shared/.env`);
  const loadRows = async () =>
    Number((await w.pg.query("select count(*) from notes_note where title like 'load %'", APP)).trim());

  /**
   * Runs `fn` while a mixed load (reads of the index page and the health path, writes through
   * POST /api/notes) runs against the serving colour on both hosts; then asserts that not one
   * request failed and that each acknowledged write is in the database.
   */
  const underLoad = async <T>(phase: string, fn: (load: MixedLoad) => Promise<T>): Promise<T> => {
    const rows = await loadRows();
    const load = startMixedLoad({
      bases: [h0, h1].map((h) => `http://${h.ip}:${PORT[serving]}`),
      host: SITE_HOST,
      reads: ["/", "/healthz"],
      testHosts: [h0.ip, h1.ip],
      concurrency: 3,
      phase,
    });
    let result: T;
    let phases: PhaseTally[];
    try {
      result = await fn(load);
    } finally {
      phases = await load.stop();
    }
    const all = phases.reduce(
      (t, p) => ({
        ok: t.ok + p.read.ok + p.write.ok,
        failed: t.failed + p.read.failed + p.write.failed,
        writes: t.writes + p.write.ok,
      }),
      { ok: 0, failed: 0, writes: 0 },
    );
    assert.equal(all.failed, 0, `requests to the serving colour (${serving}) failed:\n${describeTallies(phases)}`);
    assert.ok(all.ok >= 20 && all.writes >= 5, `the load ran:\n${describeTallies(phases)}`);
    assert.equal((await loadRows()) - rows, all.writes, "every acknowledged write is in the database");
    return result;
  };

  /**
   * Starts `call` on `host`, waits until `midway` says the step is in the middle of its work on
   * the host, then drops the SSH connection as a network would. Returns the step's record path.
   */
  const dropMidway = async (host: RigHost, call: StepCall, midway: () => Promise<boolean>) => {
    const drop = new AbortController();
    const first = w.step(host, call, { drop: drop.signal });
    const settled = first.then(
      () => "finished",
      () => "dropped",
    );
    await until(`${call.step} to be under way on ${host.name}`, async () => (await midway()) || false);
    drop.abort();
    assert.equal(await settled, "dropped", `${call.step} was still running when the connection dropped`);
  };
  /** Where step.sh records `call`'s result (per slot and release; per request for a restore). */
  const record = (call: StepCall) => recordPath(call);
  const exists = async (host: RigHost, file: string) => (await host.exec(["test", "-s", file])).code === 0;
  /** The newest log of `call`'s step on `host` contains `text`. */
  const logSays = (host: RigHost, call: StepCall, text: string) => async () => {
    const name = path.basename(record(call), ".json");
    const r = await host.exec([
      "bash",
      "-c",
      `f=$(ls -t /srv/${APP}/steps/log/${APP}.${name}.*.log 2>/dev/null | head -1); [ -n "$f" ] && grep -qF -- "$1" "$f"`,
      "-",
      text,
    ]);
    return r.code === 0;
  };

  before(async function () {
    this.timeout(900_000);
    w = await startWorld({ hosts: 2, prefix: "glf", subnetIndex: 23 });
    [h0, h1] = w.hosts;
    s3 = new S3Client({
      region: REGION,
      endpoint: w.aws.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: "test", secretAccessKey: "test" },
    });
    for (const h of [h0, h1]) await ok(h, w.values.bootstrap());
    // r1 in blue, then r2 in green, which serves: the life of an environment after two releases.
    for (const [slot, id, variant] of [
      ["blue", "r1", "base"],
      ["green", "r2", "pinned"],
    ] as const) {
      const a = await artifact(variant);
      for (const h of [h0, h1]) await ok(h, w.values.fetch(slot, id, a));
      await ok(h0, w.values.backup(id, slot));
      await ok(h0, w.values.migrate(id, slot));
      for (const h of [h0, h1]) await ok(h, w.values.activate(slot, id));
      serving = slot;
    }
  });

  after(async () => {
    w?.aws.clearFaults();
    await w?.rig.limitDisk().catch(() => undefined);
    s3?.destroy();
    await w?.stop();
    fs.rmSync(out, { recursive: true, force: true });
  });

  afterEach(async () => {
    w.aws.clearFaults();
    await w.rig.limitDisk();
  });

  it("an SSM failure during fetch fails the fetch and leaves .env whole: a live worker that restarts still boots", async () => {
    const before = await Promise.all([h0, h1].map(envHash));
    await underLoad("ssm-fetch", async () => {
      w.aws.fault("GetParametersByPath", "throttle"); // throttled for as long as boto3 retries
      await fails(
        h0,
        w.values.fetch("blue", "r3", await artifact("fixed-migration")),
        /could not read the settings from \/greenlight\/hosttest\/.*shared\/\.env is unchanged/,
      );
      w.aws.clearFaults();
      assert.deepEqual(await Promise.all([h0, h1].map(envHash)), before, "the .env is as it was");
      assert.equal(
        await sh(h0, `ls -A /srv/${APP}/shared/.settings; ls /srv/${APP}/releases`),
        "r1\nr2",
        "no partial file or release",
      );
      // A serving worker that restarts (a timeout kill, a crash) reads .env as it boots: it comes back.
      const master = await sh(h0, `supervisorctl pid ${APP}-${serving}`);
      const worker = (await sh(h0, `pgrep -P ${master} | head -1`)).trim();
      await sh(h0, `kill -TERM ${worker}`);
      await until("a new worker in its place", async () => {
        const now = (await sh(h0, `pgrep -P ${master} || true`)).split("\n").filter(Boolean);
        return now.length === 2 && !now.includes(worker);
      });
      assert.equal(await sh(h0, `supervisorctl pid ${APP}-${serving}`), master, "the master lives on");
      assert.equal(await serves(h0, serving), "r2");
    });
  });

  it("an SSM failure during settings fails the step before any reload: .env whole, no slot touched", async () => {
    const before = await envHash(h0);
    const masters = () => Promise.all(["blue", "green"].map((c) => sh(h0, `supervisorctl pid ${APP}-${c}`)));
    const running = await masters();
    await underLoad("ssm-settings", async () => {
      w.aws.fault("GetParametersByPath", "throttle");
      await fails(
        h0,
        w.values.settings(),
        /could not read the settings from \/greenlight\/hosttest\/.*shared\/\.env is unchanged/,
      );
    });
    assert.equal(await envHash(h0), before);
    assert.deepEqual(await masters(), running, "no slot was reloaded");
  });

  it("the SSH connection dropped in the middle of each step; the same step retried finishes the release and repeats nothing", async () => {
    const a = await artifact("fixed-migration"); // notes.0004_untitled_notes: a migration to run once
    const backupsBefore = w.aws
      .listKeys(w.backupBucket)
      .filter((k) => k.includes("before-r3") && k.endsWith(".dump")).length;
    await underLoad("drops", async (load) => {
      // fetch: dropped while the artifact downloads (the stand-in answers slowly).
      load.phase("fetch");
      const fetch = w.values.fetch("blue", "r3", a);
      w.aws.fault("GetObject", { delayMs: 4000 });
      await dropMidway(h0, fetch, logSays(h0, fetch, "downloading and unpacking"));
      w.aws.clearFaults();
      const fetched = await ok(h0, fetch);
      assert.equal(fetched.result.release, "r3");
      assert.equal(
        await sh(h0, `cat /srv/${APP}/releases/r3/REVISION; ls /srv/${APP}/releases`),
        "r3\nr1\nr2\nr3",
        "one whole release, no leftovers",
      );
      await ok(h1, fetch);

      // backup: dropped while the dump uploads.
      load.phase("backup");
      const backup = w.values.backup("r3", "blue");
      w.aws.fault("PutObject", { delayMs: 4000 });
      w.aws.fault("CreateMultipartUpload", { delayMs: 4000 });
      await dropMidway(h0, backup, logSays(h0, backup, "pg_dump of"));
      w.aws.clearFaults();
      // The first run goes on on the host and finishes: its result is recorded.
      await until("the first backup to finish on the host", () => exists(h0, record(backup)));
      const recorded = JSON.parse(await sh(h0, `cat ${record(backup)}`)) as Record<string, unknown>;
      const backedUp = await ok(h0, backup);
      assert.deepEqual(backedUp.result, recorded, "the retry prints the backup the first run took");
      assert.match(await logOf(h0, backedUp), /already done for release r3 .*: not running it again/);
      assert.equal(
        w.aws.listKeys(w.backupBucket).filter((k) => k.includes("before-r3") && k.endsWith(".dump")).length,
        backupsBefore + 1,
        "one backup for r3, not two",
      );

      // migrate: dropped while the migration waits for a row a transaction holds.
      load.phase("migrate");
      await w.pg.query(
        "insert into notes_note (title, body, created_at, attachment, pinned) values ('', 'held', now(), '', false)",
        APP,
      );
      const holder = w.pg
        .query("BEGIN; SELECT id FROM notes_note WHERE title = '' FOR UPDATE; SELECT pg_sleep(120); COMMIT;\n", APP)
        .catch(() => "terminated");
      await until("the row lock", async () =>
        /\d/.test(
          await w.pg.query(
            "select pid from pg_stat_activity where query like '%pg_sleep(120)%' and state = 'active' and pid <> pg_backend_pid()",
            APP,
          ),
        ),
      );
      const migrate = w.values.migrate("r3", "blue");
      await dropMidway(
        h0,
        migrate,
        async () =>
          (
            await w.pg.query(
              "select count(*) from pg_stat_activity where usename = 'site' and wait_event_type = 'Lock' and query ilike 'update%'",
              APP,
            )
          ).trim() !== "0",
      );
      await w.pg.query(
        "select pg_terminate_backend(pid) from pg_stat_activity where query like '%pg_sleep(120)%' and pid <> pg_backend_pid()\n",
      );
      await holder;
      await until("the first migrate to finish on the host", () => exists(h0, record(migrate)), 120_000);
      const migrated = await ok(h0, migrate);
      assert.deepEqual(
        migrated.result.applied,
        ["notes.0004_untitled_notes"],
        "the retry reports what the first run applied",
      );
      assert.match(await logOf(h0, migrated), /already done for release r3 .*: not running it again/);
      assert.equal(
        (await w.pg.query("select count(*) from django_migrations where name = '0004_untitled_notes'", APP)).trim(),
        "1",
      );
      assert.equal(
        (await w.pg.query("select count(*) from notes_note where title = ''", APP)).trim(),
        "0",
        "the migration ran",
      );

      // activate: dropped while the step waits for the app's lock (a cleanup holds it).
      load.phase("activate");
      const activate = w.values.activate("blue", "r3");
      const held = h0.exec([
        "bash",
        "-c",
        `flock /srv/${APP}/.lock bash -c 'until [ -e /tmp/gl-release-lock ]; do sleep 0.1; done'`,
      ]);
      await until(
        "the lock held",
        async () => (await h0.exec(["bash", "-c", `! flock -n /srv/${APP}/.lock true`])).code === 0,
      );
      await dropMidway(h0, activate, logSays(h0, activate, "another greenlight step holds"));
      await sh(h0, "touch /tmp/gl-release-lock");
      await held;
      await sh(h0, "rm -f /tmp/gl-release-lock");
      await ok(h0, activate);
      await ok(h1, activate);
      for (const h of [h0, h1]) assert.equal(await serves(h, "blue"), "r3");
      assert.equal(await serves(h0, "green"), "r2", "the serving colour was never touched");
    });
    serving = "blue"; // the cutover
  });

  it("the SSH connection dropped in the middle of a restore: the retry restores nothing again, a new restore request does", async () => {
    const b = await ok(h0, w.values.backup("r30"));
    const key = String(b.result.key);
    const reason = `restore ${key}`;
    const call = w.values.restore(key, reason);
    const again = w.values.restore(key, reason, "again-2");
    assert.notEqual(record(call), record(again), "another request, another record");
    const safetyBackups = () => w.aws.listKeys(w.backupBucket).filter((k) => k.endsWith("-before-restore.dump")).length;
    const safetyBefore = safetyBackups();
    const titles = async () => new Set((await w.pg.query("select title from notes_note", APP)).trim().split("\n"));
    const marker = `written-after-the-first-restore-${Date.now()}`;
    const on = () => Promise.all([h0, h1].map((h) => ok(h, w.values.maintenance("on", reason))));
    const off = () => Promise.all([h0, h1].map((h) => ok(h, w.values.maintenance("off"))));
    const load = startMixedLoad({
      bases: [h0, h1].map((h) => `http://${h.ip}:${PORT[serving]}`),
      host: SITE_HOST,
      reads: ["/"], // not the health path: it stays open in maintenance mode, for the load balancer
      update: (id) => `/api/notes/${id}`,
      testHosts: [h0.ip, h1.ip],
      concurrency: 3,
      // Paced: maintenance answers come back at once, and an unpaced load would spend its bound
      // on them inside the window.
      ratePerClient: 20,
      maxRequests: 60_000,
      phase: "before",
      label: "restore-load",
    });
    let phases: PhaseTally[] = [];
    let retried: Awaited<ReturnType<typeof ok>>;
    let fresh: Awaited<ReturnType<typeof ok>>;
    let recorded: Record<string, unknown>;
    try {
      // Writes the restore discards: acknowledged after the backup it restores was taken.
      await until(
        "writes after the backup",
        async () => load.acknowledged().filter((a) => a.op === "create").length >= 10,
      );
      load.phase("maintenance on");
      await on();
      // The first run: dropped while it downloads the backup (the stand-in answers slowly),
      // after its safety dump.
      load.phase("restore");
      w.aws.fault("GetObject", { delayMs: 4000 });
      await dropMidway(h0, call, logSays(h0, call, "downloading s3://"));
      w.aws.clearFaults();
      await until("the first restore to finish on the host", () => exists(h0, record(call)));
      load.forget(); // the rows it created are gone: it must not update them
      recorded = JSON.parse(await sh(h0, `cat ${record(call)}`)) as Record<string, unknown>;
      assert.equal(recorded.restored, key);
      // A write acknowledged after the first restore and before the retry (the site is in
      // maintenance: an operator's fix through dbshell, say). A second restore would discard it.
      await w.pg.query(
        `insert into notes_note (title, body, created_at, attachment) values ('${marker}', '', now(), '')`,
        APP,
      );
      load.phase("retry");
      retried = await ok(h0, call);
      assert.deepEqual(retried.result, recorded, "the retry prints what the first run restored");
      assert.match(await logOf(h0, retried), new RegExp(`already done for restore ${key} .*: not running it again`));
      assert.deepEqual(JSON.parse((await w.update(h0, call)).stdout), recorded, "and so does its update");
      assert.ok((await titles()).has(marker), "the write acknowledged after the first restore survived the retry");
      load.phase("maintenance off");
      await off();
      load.phase("after");
      let n = load.count();
      await until("requests after maintenance", async () => load.count() >= n + 30);

      // A new request of the same key (restoreId): it does restore, after a safety dump of its own.
      load.phase("maintenance on again");
      await on();
      load.phase("new restore request");
      fresh = await ok(h0, again);
      load.forget();
      load.phase("maintenance off again");
      await off();
      load.phase("after again");
      n = load.count();
      await until("requests after the second window", async () => load.count() >= n + 30);
    } finally {
      w.aws.clearFaults();
      phases = await load.stop();
    }
    const tallies = describeTallies(phases);
    const closed = ["restore", "retry", "new restore request"];
    for (const p of phases) {
      const allowed = p.phase.startsWith("maintenance") || closed.includes(p.phase) ? [MAINTENANCE] : [];
      for (const kind of ["read", "write"] as const) {
        assert.deepEqual(
          Object.keys(p[kind].reasons).filter((r) => !allowed.includes(r)),
          [],
          `no ${kind} failed in ${p.phase} but with ${allowed.join(" ") || "-"}:\n${tallies}`,
        );
        if (closed.includes(p.phase))
          assert.equal(p[kind].ok, 0, `only maintenance answers in ${p.phase}:\n${tallies}`);
      }
    }
    const after = phases.find((p) => p.phase === "after again")!;
    assert.ok(after.read.ok > 0 && after.write.ok > 0, `the load read and wrote after it:\n${tallies}`);

    // Restored once: the write between the first run and the retry survived the retry, and one
    // safety dump was taken for the request; the new request restored again (the marker is gone)
    // after a safety dump of its own.
    assert.equal(safetyBackups(), safetyBefore + 2, "one safety dump per request, not one per run");
    assert.doesNotMatch(await logOf(h0, fresh!), /already done/);
    assert.equal(fresh!.result.restoreId, "again-2");
    assert.notDeepEqual(fresh!.result.safetyBackup, recorded!.safetyBackup);
    const live = await titles();
    assert.ok(!live.has(marker), "the new request restored the backup again");
    // Every write acknowledged after the second window is in the database, each row as its last
    // acknowledged write left it; none of those made before the first window.
    const wrote = load.acknowledged();
    const rows = new Map(
      (await w.pg.query("select id || '|' || title from notes_note", APP))
        .trim()
        .split("\n")
        .map((l) => [Number(l.slice(0, l.indexOf("|"))), l.slice(l.indexOf("|") + 1)] as const),
    );
    const last = wrote.filter((x) => x.phase === "after again");
    assert.ok(last.some((a) => a.op === "create"));
    for (const a of last.filter((x) => x.id !== undefined)) {
      const said = last.filter((x) => x.id === a.id).map((x) => x.title);
      assert.ok(
        said.includes(rows.get(a.id!) ?? ""),
        `note ${a.id}, acknowledged after the restore, is in the database`,
      );
    }
    for (const a of wrote.filter((x) => x.phase === "before"))
      assert.ok(!live.has(a.title), `${a.title}, written after the restored backup was taken, was discarded`);
    assert.equal(await sh(h0, "ls -A /var/tmp | grep '^\\.greenlight-' || true"), "", "no work directory is left");
  });

  it("a full disk during fetch: the fetch fails saying so, leaves nothing behind, and the serving colour answers", async () => {
    const a = await artifact("restyled");
    await underLoad("disk-fetch", async () => {
      await w.rig.limitDisk(3);
      const free = await sh(h0, `df -Pk /srv | awk 'NR == 2 { print $4 }'`);
      // The message pulumi shows says it, although the disk was too full for the log to take
      // anything more when the unpack failed: the step frees its work files first.
      await fails(
        h0,
        w.values.fetch("green", "r4", a),
        /greenlight fetch: error: the disk is full \(\d+ MB free on \/\S*\): (could not download or unpack|the venv could not be built|collectstatic failed)/,
      );
      assert.equal(await sh(h0, `ls /srv/${APP}/releases`), "r1\nr2\nr3", "no partial release");
      assert.equal(
        await sh(h0, `ls -A /srv/${APP}/releases | grep -c '^\\.greenlight-' || true`),
        "0",
        "no work directory",
      );
      const after = await sh(h0, `df -Pk /srv | awk 'NR == 2 { print $4 }'`);
      assert.ok(Number(after) >= Number(free) - 512, `the space came back (${free} KB free before, ${after} KB after)`);
      assert.equal(await serves(h0, serving), "r3");
    });
    await w.rig.limitDisk();
    assert.equal((await ok(h0, w.values.fetch("green", "r4", a))).result.release, "r4", "with room again it works");
  });

  it("a full disk during backup: refused before the dump starts; and a dump bigger than the free space streams past it", async () => {
    await underLoad("disk-backup", async () => {
      await w.rig.limitDisk(3);
      await fails(
        h0,
        w.values.backup("r4", "green"),
        /only [0-3] MB free on \/\S* \(at least 256 MB needed\): no backup started/,
      );
      assert.deepEqual(
        w.aws.listKeys(w.backupBucket).filter((k) => k.includes("before-r4")),
        [],
      );
      assert.equal(
        await exists(h0, `/srv/${APP}/steps/green.r4.backup.json`),
        false,
        "nothing recorded: a retry backs up",
      );
    });
    // 38 MB of hex rows (about 20 MB in the dump): more than the disk has left. Nothing of the dump touches it.
    await w.pg.query(
      "create table filler as select g, md5(random()::text) || md5(random()::text) as t from generate_series(1, 600000) g; alter table filler owner to site",
      APP,
    );
    try {
      await underLoad("disk-backup-stream", async () => {
        await w.rig.limitDisk(8);
        const call = w.values.backup("r4s", "green");
        const r = await ok(h0, { ...call, values: { ...call.values, GL_BACKUP_MIN_FREE_MB: "1" } });
        assert.ok(
          Number(r.result.size) > 12 << 20,
          `the dump is bigger than the free space (${String(r.result.size)} bytes)`,
        );
      });
    } finally {
      await w.pg.query("drop table filler", APP);
    }
  });

  it("a setting that stops the app booting: caught before any reload, while the serving colour answers", async () => {
    const masters = async (h: RigHost) =>
      Promise.all(["blue", "green"].map((c) => sh(h, `supervisorctl pid ${APP}-${c}`)));
    const running = await Promise.all([h0, h1].map(masters));
    const before = await envHash(h0);
    await underLoad("bad-setting", async () => {
      w.aws.deleteParameter(`${w.parameterPath}SECRET_KEY`);
      try {
        // blue serves, and settings.sh goes blue first: without the boot check it is the canary.
        await fails(
          h0,
          w.values.settings(),
          /the new settings stop slot blue's release from booting on h0: \.env is back as it was and no slot was reloaded/,
        );
      } finally {
        w.aws.putParameter(`${w.parameterPath}SECRET_KEY`, w.secrets.secretKey, "SecureString");
      }
    });
    assert.equal(await envHash(h0), before);
    assert.deepEqual(await Promise.all([h0, h1].map(masters)), running, "no slot reloaded on either host");
  });

  describe("rollback looks before it leaps (npm run rollback over real SSH)", () => {
    let dir: string;
    const rollback = () =>
      spawnSync(
        process.execPath,
        [
          "-r",
          "ts-node/register/transpile-only",
          path.join(ROOT, "scripts/cli/rollback.ts"),
          "--stack",
          "qa",
          "--dir",
          dir,
        ],
        {
          encoding: "utf8",
          cwd: ROOT,
          env: { ...process.env, PATH: `${path.join(dir, "bin")}:${process.env.PATH}` },
          timeout: 120_000,
        },
      );
    const triggersOf = (colour: Slot, release: string, sha256: string, i: number) => ({
      type: "command:remote:Command",
      urn: `urn:pulumi:qa::greenlight::greenlight:release:Release$command:remote:Command::qa-release-${colour}-activate-${i}`,
      outputs: { triggers: [release, sha256, `i-${i}`] },
    });
    const writeOutputs = (knownHosts: string) =>
      fs.writeFileSync(
        path.join(dir, "outputs.json"),
        JSON.stringify({
          hosts: [h0, h1].map((h, i) => ({ id: `i-${i}`, address: h.ip })),
          knownHosts,
          sshPrivateKey: w.deployKey.privateKey,
        }),
      );
    const knownHosts = () => [h0, h1].map((h) => `${h.ip} ${h.hostKey.publicKey}`).join("\n") + "\n";

    before(async () => {
      dir = fs.mkdtempSync(path.join(out, "stack-"));
      const r2 = await artifact("pinned");
      const r3 = await artifact("fixed-migration");
      const text = writeConfig(fs.readFileSync(path.join(ROOT, "Pulumi.qa.yaml"), "utf8"), {
        live: "blue",
        blueRelease: "r3",
        blueArtifact: r3.key,
        blueSha256: r3.sha256,
        greenRelease: "r2",
        greenArtifact: r2.key,
        greenSha256: r2.sha256,
      });
      fs.writeFileSync(path.join(dir, "Pulumi.qa.yaml"), text);
      fs.writeFileSync(
        path.join(dir, "state.json"),
        JSON.stringify({
          deployment: {
            resources: [0, 1].flatMap((i) => [
              triggersOf("blue", "r3", r3.sha256, i),
              triggersOf("green", "r2", r2.sha256, i),
            ]),
          },
        }),
      );
      fs.mkdirSync(path.join(dir, "bin"));
      // A stand-in `pulumi`: the state and the outputs of this world's stack.
      fs.writeFileSync(
        path.join(dir, "bin", "pulumi"),
        `#!/bin/sh\ncase "$1 $2" in\n"stack export") exec cat '${dir}/state.json' ;;\n"stack output") exec cat '${dir}/outputs.json' ;;\nesac\nexit 255\n`,
        { mode: 0o755 },
      );
    });

    it("refuses when the target colour does not answer on one host, naming the host, the colour and what failed", async () => {
      writeOutputs(knownHosts());
      await sh(h1, `supervisorctl stop ${APP}-green`);
      try {
        const r = rollback();
        assert.equal(r.status, 1, r.stdout);
        assert.match(
          r.stderr,
          new RegExp(
            `^error: green \\(release r2\\) is not healthy on every host, so the load balancer must not move to it: host ${h1.ip.replace(/\./g, "\\.")}: slot green port 8002 did not answer /healthz: curl: \\((7|22)\\)`,
          ),
        );
        assert.doesNotMatch(
          r.stderr,
          new RegExp(`host ${h0.ip.replace(/\./g, "\\.")}:`),
          "the healthy host is not blamed",
        );
        assert.match(
          fs.readFileSync(path.join(dir, "Pulumi.qa.yaml"), "utf8"),
          /greenlight:live: blue/,
          "nothing written",
        );
      } finally {
        await sh(h1, `supervisorctl start ${APP}-green`);
      }
      await until("green to serve again on h1", async () => (await serves(h1, "green").catch(() => "")) === "r2");
    });

    it("refuses a host whose key is not the pinned one", async () => {
      writeOutputs(knownHosts().replace(h1.hostKey.publicKey, h0.hostKey.publicKey));
      const r = rollback();
      assert.equal(r.status, 1, r.stdout);
      assert.match(
        r.stderr,
        new RegExp(
          `host ${h1.ip.replace(/\./g, "\\.")}: slot green cannot connect over SSH: its host key is not the one pinned`,
        ),
      );
    });

    it("flips live when the target colour answers its release on every host", async () => {
      writeOutputs(knownHosts());
      const r = rollback();
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`green serves r2 on every host \\(${h0.ip}, ${h1.ip}\\)`));
      assert.match(r.stdout, /live: blue -> green \(release r2\)/);
      assert.match(fs.readFileSync(path.join(dir, "Pulumi.qa.yaml"), "utf8"), /greenlight:live: green/);
    });
  });
});
