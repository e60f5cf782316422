// Background work across a release and a rollback, on two local Debian hosts (prod's shape)
// with Redis playing ElastiCache (TLS, AUTH), under the mixed load through the load balancer
// stand-in: the example site's Celery worker (every host) and beat (host 0 only), declared in
// its greenlight.json, moved to the live release by workers-stop / workers-start after each
// cutover exactly as the program sends them (components/remote.ts); then a reboot (supervisor
// starting again brings back what each host recorded) and Redis switched off (workers-start's
// delete). The site records in Redis each task's starts and completed runs, and each tick beat
// sent (notes/tasks.py).
import { S3Client } from "@aws-sdk/client-s3";
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { StepCall } from "../../components/remote";
import { artifactKey } from "../../scripts/cli/lib/stack";
import { uploadArtifact } from "../../scripts/cli/lib/upload";
import { AlbStandIn, startAlbStandIn } from "../rig/albStandIn";
import { siteArtifact } from "../rig/artifacts";
import { MixedLoad, underMixedLoad } from "../rig/load";
import { RigHost } from "../rig/hosts";
import { APP, REGION, SITE_HOST, World, httpRequest, startWorld } from "../rig/world";

type Slot = "blue" | "green";
const PORT: Record<Slot, number> = { blue: 8001, green: 8002 };
const TG: Record<Slot, string> = { blue: "tg-blue", green: "tg-green" };
const FORWARD = 80;
/** Beat's interval here (the site's BEAT_INTERVAL_SECONDS): short, so a run sees many ticks. */
const INTERVAL = 2;
/** How long the task that spans a cutover runs: longer than a worker takes to be told to stop. */
const LONG_TASK_SECONDS = 6;

/** Polls (bounded) until `cond` holds; never a fixed sleep. */
async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface TaskState {
  id: string;
  starts: number;
  runs: number;
  enqueuedBy: string | null;
  ranBy: string | null;
  finishedAt: number | null;
}
interface Tick {
  sent: number;
  ran: number;
  release: string;
}

describe("background work on real hosts: Celery worker and beat across a release and a rollback", function () {
  this.timeout(900_000);
  let w: World;
  let h0: RigHost;
  let h1: RigHost;
  let s3: S3Client;
  let alb: AlbStandIn;
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "gl-background-"));
  const transcript: string[] = [];
  const loads: string[] = [];

  const ok = async (host: RigHost, call: StepCall) => {
    const r = await w.step(host, call);
    transcript.push(r.stdout, r.stderr);
    assert.equal(r.code, 0, `${call.step} on ${host.name} failed:\n${r.stderr.slice(-3000)}`);
    return JSON.parse(r.stdout.trim().split("\n").pop()!) as Record<string, unknown>;
  };
  const sh = async (host: RigHost, script: string) => {
    const r = await host.exec(["bash", "-c", script]);
    assert.equal(r.code, 0, `${script}: ${r.stderr}`);
    return r.stdout.trim();
  };
  /** supervisor's state of the host's worker, beat or background-boot: "RUNNING", "STOPPED", ... */
  const state = async (host: RigHost, program: "worker" | "beat" | "background-boot") =>
    (await host.exec(["supervisorctl", "status", `${APP}-${program}`])).stdout.trim().split(/\s+/)[1];
  /** The host's record of what it runs (workers.sh start), null when there is none. */
  const record = async (host: RigHost) => {
    const r = await host.exec(["cat", `/srv/${APP}/background.json`]);
    return r.code === 0 ? (JSON.parse(r.stdout) as Record<string, unknown>) : null;
  };
  /**
   * A reboot as far as the rig's hosts can play one (they have no kernel of their own):
   * supervisord stops, and every program with it, then starts again as it does at boot, and
   * <app>-background-boot has run. Returns what background-boot logged.
   */
  const reboot = async (host: RigHost) => {
    await sh(host, "service supervisor stop");
    await until(
      `supervisord on ${host.name} gone`,
      async () => (await host.exec(["pgrep", "-x", "supervisord"])).code === 1,
    );
    await sh(host, `: >/var/log/${APP}/background-boot.log && service supervisor start`);
    await until(
      `background-boot on ${host.name} done`,
      async () => (await state(host, "background-boot")) === "EXITED",
    );
    return sh(host, `cat /var/log/${APP}/background-boot.log`);
  };

  let artifact: { key: string; sha256: string };
  /** A whole release into `slot`: fetch everywhere, check, backup + migrate on h0, activate everywhere. */
  const release = async (slot: Slot, id: string) => {
    await Promise.all([h0, h1].map((h) => ok(h, w.values.fetch(slot, id, artifact))));
    await ok(h0, w.values.check(id, slot));
    await ok(h0, w.values.backup(id, slot));
    await ok(h0, w.values.migrate(id, slot));
    await Promise.all([h0, h1].map((h) => ok(h, w.values.activate(slot, id))));
  };
  const lbServes = async () => (await httpRequest(`${alb.url(FORWARD)}/healthz`)).body;
  /** The listener moves to `slot` (the program's listener change), once its targets are healthy. */
  const cutover = async (slot: Slot, id: string) => {
    await until(`${slot}'s targets healthy`, () => Object.values(alb.health(TG[slot])).every(Boolean));
    await alb.listen(FORWARD, TG[slot], SITE_HOST);
    await until(`the load balancer serving ${id}`, async () => (await lbServes()) === id);
  };
  /**
   * What the program runs after the listener moved: workers-stop on every host, then
   * workers-start on every host. Returns when the start phase began and ended.
   */
  const switchWorkers = async (slot: Slot, id: string) => {
    const stops = await Promise.all([h0, h1].map((h, i) => ok(h, w.values.workers("stop", slot, id, i))));
    const startedAt = Date.now() / 1000;
    const starts = await Promise.all([h0, h1].map((h, i) => ok(h, w.values.workers("start", slot, id, i))));
    return { stops, starts, startedAt, endedAt: Date.now() / 1000 };
  };

  const api = async (method: "GET" | "POST", p: string, form?: Record<string, string>) => {
    let body: FormData | undefined;
    if (form) {
      body = new FormData();
      for (const [k, v] of Object.entries(form)) body.append(k, v);
    }
    const r = await httpRequest(`${alb.url(FORWARD)}${p}`, { method, body });
    assert.ok(r.status < 300, `${method} ${p}: ${r.status} ${r.body.slice(0, 300)}`);
    return JSON.parse(r.body) as Record<string, unknown>;
  };
  const enqueue = async (seconds = 0) => String((await api("POST", "/api/tasks", { seconds: String(seconds) })).id);
  const task = async (id: string) => (await api("GET", `/api/tasks/${id}`)) as unknown as TaskState;
  const ticks = async () => (await api("GET", "/api/beat")).ticks as Tick[];

  /**
   * Enqueues a task through the load balancer every `everyMs` until stopped: tasks enqueued by
   * whichever release the listener reaches, before, during and after the cutover.
   */
  const enqueueWhile = () => {
    const ids: string[] = [];
    let stopped = false;
    const loop = (async () => {
      while (!stopped) {
        ids.push(await enqueue());
        await new Promise((r) => setTimeout(r, 150));
      }
    })();
    return {
      ids,
      stop: async () => {
        stopped = true;
        await loop;
        return ids;
      },
    };
  };

  /** Runs `body` under the mixed load; no read and no write may fail in any phase. */
  const underLoad = async <T>(first: string, body: (load: MixedLoad) => Promise<T>): Promise<T> => {
    const { result } = await underMixedLoad(
      {
        bases: [alb.url(FORWARD)!],
        host: SITE_HOST,
        reads: ["/"],
        update: (id) => `/api/notes/${id}`,
        concurrency: 3,
        maxRequests: 60_000,
        maxMs: 9 * 60_000,
        phase: first,
        label: `b${loads.length + 1}`,
      },
      body,
      { log: loads },
    );
    return result;
  };

  /**
   * A move of the listener and the workers to `slot` (a release or a rollback) under load, with
   * a long task running on the old release's worker and tasks enqueued all along.
   */
  const move = async (slot: Slot, id: string, from: string, prepare?: (load: MixedLoad) => Promise<void>) =>
    underLoad("prepare", async (load) => {
      if (prepare) await prepare(load);
      load.phase("long task");
      const long = await enqueue(LONG_TASK_SECONDS);
      await until("the long task started", async () => (await task(long)).starts === 1, 30_000);
      const stream = enqueueWhile();
      // Some tasks from the serving release before the listener moves, the rest from the new one.
      await until("tasks enqueued before the cutover", () => stream.ids.length >= 5, 30_000);
      load.phase("cutover");
      await cutover(slot, id);
      load.phase("workers");
      const switched = await switchWorkers(slot, id);
      load.phase("after");
      // Tasks the new release's web enqueues while the new workers already run.
      await until("a few tasks after the switch", () => stream.ids.length >= 10, 30_000);
      const ids = await stream.stop();
      return { long, ids, switched, from };
    });

  const settle = async (ids: string[]) => {
    await until(`all ${ids.length} tasks ran`, async () =>
      (await Promise.all(ids.map(task))).every((t) => t.runs >= 1),
    );
    return Promise.all(ids.map(task));
  };

  before(async function () {
    this.timeout(900_000);
    w = await startWorld({
      hosts: 2,
      prefix: "glb",
      subnetIndex: 9,
      redis: true,
      settings: { BEAT_INTERVAL_SECONDS: String(INTERVAL) },
    });
    [h0, h1] = w.hosts;
    alb = startAlbStandIn({ intervalMs: 250 });
    for (const slot of ["blue", "green"] as const) {
      alb.targetGroup(TG[slot], "/healthz");
      for (const h of [h0, h1]) alb.attach(TG[slot], h.ip, PORT[slot]);
    }
    s3 = new S3Client({
      region: REGION,
      endpoint: w.aws.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: "test", secretAccessKey: "test" },
    });
    const a = await siteArtifact("base", out);
    await uploadArtifact(s3, w.artifactBucket, artifactKey(a.sha256), a.file, a.sha256);
    artifact = { key: artifactKey(a.sha256), sha256: a.sha256 };
    for (const h of [h0, h1]) await ok(h, w.values.bootstrap());
  });

  after(async () => {
    if (loads.length) console.log(`    mixed load:\n${loads.join("\n---\n").replace(/^/gm, "      ")}`);
    await alb?.close();
    s3?.destroy();
    await w?.stop();
    fs.rmSync(out, { recursive: true, force: true });
  });

  it("first release: the worker runs on every host and beat on the first host only, with the live release", async () => {
    await release("blue", "r1");
    await cutover("blue", "r1");
    const { starts } = await switchWorkers("blue", "r1");
    assert.deepEqual(
      starts.map((s) => [s.release, s.worker, s.beat]),
      [
        ["r1", true, true],
        ["r1", true, false],
      ],
    );
    for (const h of [h0, h1]) {
      assert.equal(await state(h, "worker"), "RUNNING", h.name);
      assert.equal(await sh(h, `readlink /srv/${APP}/background`), "releases/r1");
    }
    assert.equal(await state(h0, "beat"), "RUNNING");
    assert.equal(await state(h1, "beat"), "STOPPED", "one beat per environment: host 0's");
    // A task through the site runs once, on r1's code.
    const id = await enqueue();
    await until("the task ran", async () => (await task(id)).runs === 1);
    const t = await task(id);
    assert.deepEqual([t.starts, t.runs, t.enqueuedBy, t.ranBy], [1, 1, "r1", "r1"]);
    // Running the step again changes nothing (a retried or re-triggered step).
    const again = await ok(h1, w.values.workers("start", "blue", "r1", 1));
    assert.equal(again.worker, true);
  });

  let releaseMove: Awaited<ReturnType<typeof move>>;
  let rollbackMove: Awaited<ReturnType<typeof move>>;

  it("a release under load: the old worker finishes its running task, then the new one takes the queue; each task runs exactly once", async () => {
    releaseMove = await move("green", "r2", "r1", async (load) => {
      load.phase("release");
      await release("green", "r2");
    });
    const { long, ids, switched } = releaseMove;
    const l = await settle([long]);
    assert.equal(l[0].starts, 1, "the long task was not started twice");
    assert.equal(l[0].runs, 1);
    assert.equal(l[0].ranBy, "r1", "the old release's worker ran it to the end (warm shutdown)");
    assert.ok(Number(l[0].finishedAt ?? 0) <= switched.startedAt, "it finished before the new workers started");
    const all = await settle(ids);
    for (const t of all) assert.deepEqual([t.starts, t.runs], [1, 1], `task ${t.id} (by ${t.enqueuedBy}) ran once`);
    assert.ok(
      all.some((t) => t.enqueuedBy === "r1") && all.some((t) => t.enqueuedBy === "r2"),
      "both releases enqueued",
    );
    assert.ok(
      all.some((t) => t.ranBy === "r2"),
      "the new workers run tasks",
    );
    for (const h of [h0, h1]) assert.equal(await sh(h, `readlink /srv/${APP}/background`), "releases/r2");
    assert.equal(await state(h1, "beat"), "STOPPED");
  });

  it("a rollback under load: the same, back to r1; rollback's listener move waits for no worker", async () => {
    rollbackMove = await move("blue", "r1", "r2");
    const { long, ids, switched } = rollbackMove;
    const [l] = await settle([long]);
    assert.deepEqual([l.starts, l.runs, l.ranBy], [1, 1, "r2"], "r2's worker finished its task before it stopped");
    assert.ok(Number(l.finishedAt ?? 0) <= switched.startedAt);
    const all = await settle(ids);
    for (const t of all) assert.deepEqual([t.starts, t.runs], [1, 1], `task ${t.id} (by ${t.enqueuedBy}) ran once`);
    assert.ok(all.some((t) => t.ranBy === "r1"));
    for (const h of [h0, h1]) assert.equal(await sh(h, `readlink /srv/${APP}/background`), "releases/r1");
    assert.equal(await state(h0, "beat"), "RUNNING");
    assert.equal(await state(h1, "beat"), "STOPPED");
  });

  it("beat ticked once per interval, never twice, across the release and the rollback", async () => {
    const all = await ticks();
    const sent = [...new Set(all.map((t) => t.sent))].sort((a, b) => a - b);
    assert.equal(sent.length, all.length, "no tick ran twice");
    assert.ok(sent.length >= 10, `beat ticked all along: ${sent.length} ticks`);
    const gaps = sent.slice(1).map((s, i) => s - sent[i]);
    const shown = gaps.map((g) => g.toFixed(2)).join(" ");
    // One beat ticks every INTERVAL seconds (its first send after a start may lag by a TLS
    // handshake, so a gap may be a little short); a second beat would tick in between, half an
    // interval or less from one of the first one's ticks, and twice as often.
    assert.ok(Math.min(...gaps) >= INTERVAL * 0.6, `ticks about ${INTERVAL} s apart, never in between: ${shown}`);
    const span = sent[sent.length - 1] - sent[0];
    assert.ok(gaps.length <= span / (INTERVAL * 0.9), `${gaps.length} intervals in ${span.toFixed(1)} s: ${shown}`);
    const releases = new Set(all.map((t) => t.release));
    assert.ok(releases.has("r1") && releases.has("r2"), `ticks ran on both releases: ${[...releases]}`);
    // And it kept ticking through both moves: no gap longer than the moves themselves.
    for (const m of [releaseMove, rollbackMove]) {
      const during = sent.filter((s) => s >= m.switched.startedAt - 60 && s <= m.switched.endedAt + 60);
      assert.ok(during.length >= 5, `beat ticked around the move to ${m.switched.starts[0].release}`);
    }
  });

  it("a reboot: the worker comes back on the live release on every host, and beat on the first host only", async () => {
    // Live is blue r1 (the rollback): what each host recorded when its workers started.
    assert.deepEqual(await record(h0), { slot: "blue", release: "r1", worker: true, beat: true });
    assert.deepEqual(await record(h1), { slot: "blue", release: "r1", worker: true, beat: false });
    const before = (await ticks()).length;
    const booted = await Promise.all([h0, h1].map(reboot));
    assert.match(booted[0], /release r1 \(blue\): started worker beat/);
    assert.match(booted[1], /release r1 \(blue\): started worker \(/);
    for (const h of [h0, h1]) assert.equal(await state(h, "worker"), "RUNNING", h.name);
    assert.equal(await state(h0, "beat"), "RUNNING");
    assert.equal(await state(h1, "beat"), "STOPPED", "one beat per environment, after a reboot too");
    // The slots came back by themselves (autostart); a task through the site runs once on r1.
    for (const h of [h0, h1]) {
      await until(`${h.name}'s blue slot answering again`, async () => {
        try {
          return (await w.get(h, PORT.blue, "/healthz")).body === "r1";
        } catch {
          return false;
        }
      });
    }
    await until("blue's targets healthy again", () => Object.values(alb.health(TG.blue)).every(Boolean));
    assert.equal(await lbServes(), "r1");
    const id = await enqueue();
    await until("the task after the reboot ran", async () => (await task(id)).runs === 1);
    const t = await task(id);
    assert.deepEqual([t.starts, t.runs, t.enqueuedBy, t.ranBy], [1, 1, "r1", "r1"]);
    // Beat ticks again, on r1, and still once per interval (one beat).
    await until("beat ticking after the reboot", async () => (await ticks()).length >= before + 3);
    const all = await ticks();
    assert.ok(
      all.slice(before).every((x) => x.release === "r1"),
      "the ticks after the reboot ran on r1",
    );
    const sent = [...new Set(all.map((x) => x.sent))].sort((a, b) => a - b);
    assert.equal(sent.length, all.length, "no tick ran twice");
    const gaps = sent.slice(1).map((x, i) => x - sent[i]);
    assert.ok(Math.min(...gaps) >= INTERVAL * 0.6, `ticks about ${INTERVAL} s apart: ${gaps.map((g) => g.toFixed(2))}`);
  });

  it("Redis switched off: workers-start's delete stops them for its own release; a stale one's changes nothing", async () => {
    // The delete of a step a newer one replaced (green r2's, after the rollback to blue r1).
    const stale = await Promise.all([h0, h1].map((h, i) => ok(h, w.values.workers("off", "green", "r2", i))));
    assert.deepEqual(
      stale.map((x) => [x.matched, x.stopped]),
      [
        [false, ""],
        [false, ""],
      ],
    );
    for (const h of [h0, h1]) assert.equal(await state(h, "worker"), "RUNNING", `${h.name}: r1's worker runs on`);
    assert.equal(await state(h0, "beat"), "RUNNING");
    assert.equal((await record(h0))?.release, "r1");
    assert.equal((await record(h1))?.release, "r1");
    // The delete of the live release's steps (the stack no longer has Redis): stopped, no record.
    const off = await Promise.all([h0, h1].map((h, i) => ok(h, w.values.workers("off", "blue", "r1", i))));
    assert.deepEqual(
      off.map((x) => [x.matched, x.stopped]),
      [
        [true, "beat worker"],
        [true, "worker"],
      ],
    );
    for (const h of [h0, h1]) {
      assert.equal(await state(h, "worker"), "STOPPED", h.name);
      assert.equal(await state(h, "beat"), "STOPPED", h.name);
      assert.equal(await record(h), null, `${h.name}: no record`);
    }
    // A retried delete: nothing left to stop.
    assert.equal((await ok(h1, w.values.workers("off", "blue", "r1", 1))).stopped, "");
    // And a reboot now starts nothing.
    assert.match(await reboot(h0), /no record \S+: nothing to start/);
    assert.equal(await state(h0, "worker"), "STOPPED");
    assert.equal(await state(h0, "beat"), "STOPPED");
  });

  it("no step printed the Redis password", () => {
    const text = transcript.join("\n");
    assert.ok(w.secrets.redisPassword && !text.includes(w.secrets.redisPassword));
  });
});
