// The rehearsal's scenario: what `npm run rehearse` prints and what the end-to-end test
// asserts. Each step does what a user does (npm run release / rollback, pulumi up) and checks
// what a user would check; any failed check makes the whole rehearsal fail.
import * as http from "http";
import { MAINTENANCE, MixedLoad, PhaseTally, describeTallies, startMixedLoad } from "./load";
import { Rehearsal, UpResult, getThrough } from "./rehearsal";

/**
 * The load phase a resource the engine starts on begins: the release's steps by their names
 * (fetch, backup, migrate, activate, restore, maintenance on/off) and the forwarding listener's
 * change (cutover); nothing for the rest (bootstrap, settings, cleanup, the test listener).
 */
export function phaseOf(name: string, type: string): string | undefined {
  if (type === "aws:lb/listener:Listener") return /-alb-test$/.test(name) ? undefined : "cutover";
  if (type !== "command:remote:Command") return undefined;
  const m = /-(fetch|backup|migrate|activate|restore|maintenance-on|maintenance-off)(?:-\d+)?$/.exec(name);
  return m?.[1].replace("-", " ");
}

/** Phases inside a maintenance window in which every answer must be the maintenance page. */
const CLOSED = ["backup", "migrate", "activate", "cutover"];

export interface Check {
  what: string;
  ok: boolean;
  detail?: string;
}

export interface StepResult {
  name: string;
  /** What the step shows, in a sentence. */
  about: string;
  ms: number;
  up?: UpResult;
  checks: Check[];
  serving?: string;
}

export interface RehearsalResult {
  ok: boolean;
  stack: string;
  steps: StepResult[];
  outputs: Record<string, unknown>;
  /** The `pulumi preview --diff` text of the second release: what a PR comment shows. */
  preview: string;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)}s`;

export async function rehearse(opts: { stack: string; log?: (line: string) => void }): Promise<RehearsalResult> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const begun = Date.now();
  const stamp = () => {
    const s = Math.floor((Date.now() - begun) / 1000);
    return `[${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}]`;
  };
  const steps: StepResult[] = [];
  let result: RehearsalResult = { ok: false, stack: opts.stack, steps, outputs: {}, preview: "" };
  let previewText = "";
  log(
    `${stamp()} greenlight rehearsal of stack ${opts.stack}: the real Pulumi CLI and engine; ` +
      "local hosts, PostgreSQL, S3/SSM and ALB stand-ins",
  );
  // keepReleases 2 so the cleanup at the end has something to remove.
  const r = await Rehearsal.start({
    stack: opts.stack,
    log,
    overrides: {
      keepReleases: "2",
      // Beat ticks every 5 s here (60 s by default), so that a rehearsal sees it tick across moves.
      settings: JSON.stringify({ BEAT_INTERVAL_SECONDS: String(BEAT_INTERVAL) }),
    },
  });
  log(`${stamp()} stand-ins up; stack file copied to ${r.stackFile}`);

  const step = async (name: string, about: string, body: (s: StepResult) => Promise<void>) => {
    log(`\n${stamp()} == ${steps.length + 1}. ${name}: ${about}`);
    const s: StepResult = { name, about, ms: 0, checks: [] };
    const t = Date.now();
    try {
      await body(s);
    } catch (e) {
      s.checks.push({ what: "the step ran", ok: false, detail: e instanceof Error ? e.message : String(e) });
    }
    s.ms = Date.now() - t;
    s.serving = await served(r);
    steps.push(s);
    for (const c of s.checks) log(`   ${c.ok ? "ok  " : "FAIL"} ${c.what}${c.detail ? ` (${c.detail})` : ""}`);
    log(`${stamp()}    ${name}: ${s.checks.every((c) => c.ok) ? "ok" : "FAILED"} in ${seconds(s.ms)}`);
  };
  const check = (s: StepResult, what: string, ok: boolean, detail?: string) => s.checks.push({ what, ok, detail });
  const up = async (s: StepResult, onStep?: (name: string, type: string) => void) => {
    log(`   pulumi up --stack ${opts.stack}`);
    const u = await r.up({ onStep });
    s.up = u;
    const byOp = u.changes.reduce<Record<string, number>>((m, c) => ({ ...m, [c.op]: (m[c.op] ?? 0) + 1 }), {});
    log(
      `   ${u.ok ? "update succeeded" : "update FAILED"} in ${seconds(u.ms)}: ` +
        `${
          Object.entries(byOp)
            .map(([op, n]) => `${n} ${op}d`.replace("created", "created").replace("replaced", "replaced"))
            .join(", ") || "no changes"
        }; ${u.commands.length} remote command(s) ran`,
    );
    return u;
  };
  const servedRelease = async () => (await getThrough(r.albUrl()!, "/healthz")).body;
  const release = async (s: StepResult, variant: Parameters<Rehearsal["release"]>[0], id: string) => {
    const said = await r.release(variant, id);
    check(s, `the release goes to a slot (${said.slot})`, !!said.slot);
    return said;
  };
  const commandsOf = (u: UpResult, pattern: RegExp) => u.commands.filter((c) => pattern.test(c));

  /**
   * The mixed load (reads, and writes that create and update notes) through the load balancer
   * for the whole of a step, its phase following the steps the engine starts (`onStep`, for
   * `pulumi up`); `listener` names the phase of the listener's change (cutover, rollback).
   */
  const mixedLoad = (first: string, o: { listener?: string } = {}) => {
    const load = startMixedLoad({
      bases: [r.albUrl()!],
      reads: ["/"],
      update: (id) => `/api/notes/${id}`,
      concurrency: 2,
      maxRequests: 60_000,
      maxMs: 9 * 60_000,
      phase: first,
      label: `step${steps.length + 1}`,
    });
    let at = first;
    const phase = (p: string) => {
      if (p !== at) load.phase(p);
      at = p;
    };
    const onStep = (name: string, type: string) => {
      const p = phaseOf(name, type);
      if (p) phase(p === "cutover" && o.listener ? o.listener : p);
    };
    return { load, phase, onStep };
  };
  /** Some more requests (bounded) after the change, so the load sees what serves now too. */
  const settle = async (load: MixedLoad, n = 30) => {
    const want = load.count() + n;
    for (let i = 0; i < 300 && load.count() < want; i++) await new Promise((res) => setTimeout(res, 100));
  };
  /**
   * Stops the load and prints its reads and writes per phase; checks that none failed, or, for a
   * maintenance window (`window`), that outside it none failed, inside it nothing but 503 with
   * Retry-After was answered, and in its closed phases nothing else at all.
   */
  const finish = async (
    s: StepResult,
    m: ReturnType<typeof mixedLoad>,
    o: { window?: boolean; closed?: string[] } = {},
  ) => {
    const phases = await m.load.stop();
    for (const l of describeTallies(phases).split("\n")) log(`   load ${l}`);
    const total = (k: "read" | "write") => phases.reduce((n, p) => n + p[k].ok + p[k].failed, 0);
    const failed = (ps: PhaseTally[]) => ps.reduce((n, p) => n + p.read.failed + p.write.failed, 0);
    const other = (ps: PhaseTally[]) =>
      ps.reduce(
        (n, p) =>
          n + p.read.failed + p.write.failed - (p.read.reasons[MAINTENANCE] ?? 0) - (p.write.reasons[MAINTENANCE] ?? 0),
        0,
      );
    check(
      s,
      `the load read and wrote (${total("read")} reads, ${total("write")} writes)`,
      total("read") > 0 && total("write") > 0,
    );
    check(s, "the load ran for the whole step, not up to its bound", !m.load.bounded);
    if (!o.window) {
      check(s, "0 failed reads and 0 failed writes through the load balancer, in every phase", failed(phases) === 0);
      return phases;
    }
    const opened = phases.findIndex((p) => p.phase === "maintenance on");
    const closed = o.closed ?? CLOSED;
    const closedOk = phases.filter((p) => closed.includes(p.phase)).reduce((n, p) => n + p.read.ok + p.write.ok, 0);
    const answered = phases.reduce(
      (n, p) => n + (p.read.reasons[MAINTENANCE] ?? 0) + (p.write.reasons[MAINTENANCE] ?? 0),
      0,
    );
    check(
      s,
      "0 failed reads and writes before maintenance mode began",
      opened > 0 && failed(phases.slice(0, opened)) === 0,
    );
    check(
      s,
      `the window answered 503 with Retry-After (${answered} times) and no other failure`,
      answered > 0 && other(phases) === 0,
    );
    check(
      s,
      `inside the window (${closed.filter((c) => phases.some((p) => p.phase === c)).join(", ")}) nothing but the maintenance page was answered`,
      closedOk === 0 && phases.some((p) => closed.includes(p.phase)),
    );
    const after = phases.filter((p) => p.phase === "after");
    check(
      s,
      "after it, 0 failed reads and writes",
      after.length === 1 && failed(after) === 0 && after[0].read.ok > 0 && after[0].write.ok > 0,
    );
    return phases;
  };

  /** The upload of release r1's step, served again after the rollback. */
  let upload: { url: string } = { url: "/media/none" };
  /** GETs `url` through the load balancer 2 x hosts times (it sends them round-robin): every one the upload. */
  const servedEverywhere = async (url: string, hosts: number) => {
    for (let i = 0; i < 2 * hosts; i++) {
      const a = await getThrough(r.albUrl()!, url).catch((e: Error) => ({ status: 0, body: e.message }));
      if (a.status !== 200 || a.body !== UPLOADED)
        return { ok: false, why: `GET ${url}: ${a.status} ${a.body.slice(0, 80)}` };
    }
    return { ok: true, why: "" };
  };
  /** GETs `url` through the load balancer 2 x hosts times: every one a 404 (no host serves it). */
  const goneEverywhere = async (url: string, hosts: number) => {
    for (let i = 0; i < 2 * hosts; i++) {
      const a = await getThrough(r.albUrl()!, url).catch((e: Error) => ({ status: 0, body: e.message }));
      if (a.status !== 404) return { ok: false, why: `GET ${url}: ${a.status} ${a.body.slice(0, 80)}` };
    }
    return { ok: true, why: "" };
  };

  /** Enqueued tasks (through the load balancer), by the step that enqueued them. */
  const enqueued: string[] = [];
  /** Waits (bounded) until every task in `ids` has run, then checks each started and ran exactly once. */
  const ranOnce = async (s: StepResult, ids: string[], what: string) => {
    const url = r.albUrl()!;
    let seen: Awaited<ReturnType<typeof taskOf>>[] = [];
    for (let i = 0; i < 600; i++) {
      seen = await Promise.all(ids.map((id) => taskOf(url, id)));
      if (seen.every((t) => t.runs > 0)) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    const wrong = seen.filter((t) => t.runs !== 1 || t.starts !== 1);
    check(
      s,
      `${what}: ${ids.length} tasks, each started and ran exactly once (ran by ${[...new Set(seen.map((t) => t.ranBy))].join(", ")})`,
      ids.length > 0 && seen.length === ids.length && wrong.length === 0,
      JSON.stringify(wrong.length ? wrong : seen).slice(0, 300),
    );
    return seen;
  };

  try {
    await step("provision", "the whole environment, hosts bootstrapped one after another", async (s) => {
      const u = await up(s);
      check(s, "pulumi up succeeds", u.ok, u.error);
      check(
        s,
        "only bootstrap and settings commands run (no release yet)",
        u.commands.every((c) => /-(bootstrap|settings)-\d+$/.test(c)),
        u.commands.join(" "),
      );
      const hosts = (u.outputs.hosts as unknown[] | undefined)?.length ?? 0;
      const bootstraps = u.commands.filter((c) => c.includes("-bootstrap-")).length;
      check(s, `every host is bootstrapped (${hosts})`, bootstraps === hosts && hosts > 0);
      const h = await getThrough(r.albUrl()!, "/healthz").catch(() => ({ status: 0, body: "" }));
      check(s, "the load balancer answers 503 before the first release", h.status === 503, `status ${h.status}`);
    });

    await step("release r1", "fetch, backup, migrate once, activate, cutover", async (s) => {
      await release(s, "base", "r1");
      const u = await up(s);
      check(s, "pulumi up succeeds", u.ok, u.error);
      check(s, "migrate ran exactly once (first host)", commandsOf(u, /-migrate$/).length === 1);
      check(s, "a backup was taken before it", commandsOf(u, /-backup$/).length === 1);
      const body = await servedRelease();
      check(s, "the load balancer serves r1", body === "r1", body);
      for (const title of ["first", "second"]) {
        await postNote(r.albUrl()!, title);
      }
      upload = await postUpload(r.albUrl()!, "rehearsal.txt", UPLOADED);
      const hosts = (u.outputs.hosts as unknown[] | undefined)?.length ?? 1;
      const served = await servedEverywhere(upload.url, hosts);
      check(
        s,
        `an upload is served by every host (${hosts}; from the media bucket, through the load balancer)`,
        served.ok,
        served.why,
      );
      if (u.outputs.redisEndpoint) {
        const id = await enqueueTask(r.albUrl()!);
        enqueued.push(id);
        const [t] = await ranOnce(s, [id], "a task enqueued through the load balancer (Redis, the workers)");
        check(s, "it ran on r1's worker", t?.ranBy === "r1", JSON.stringify(t));
      }
    });

    await step("release r2", "to the idle colour, cutover while requests flow", async (s) => {
      await release(s, "pinned", "r2");
      // What the pull request's preview comment shows (pulumi/actions posts this text).
      log(`   $ pulumi preview --diff --policy-pack policy --stack ${opts.stack}`);
      const p = await r.preview();
      previewText = p.text;
      check(s, "the preview succeeds", p.ok, p.error?.split("\n").slice(-5).join(" | "));
      for (const l of p.text.trim().split("\n").slice(-12)) log(`     | ${l}`);
      check(s, "the policy pack ran in the preview", /Policies:|greenlight-policy|policy pack/i.test(p.text));
      // pulumi/actions trims a comment beyond 64,000 characters (keeping the summary); our budget
      // for a readable one is 30,000. prod (two hosts, Redis's workers steps, media) is near 25,500.
      check(
        s,
        `the preview text fits a PR comment (${p.text.length} < 30,000 characters)`,
        p.text.length < PREVIEW_BUDGET,
      );
      const shows = (what: string, re: RegExp) => check(s, `the preview shows ${what}`, re.test(p.text));
      shows("the release id", /r2/);
      shows("the colour going live (green)", /greenlight:live|live[^\n]*green|green-activate/);
      shows("the backup", /green-backup/);
      shows("the migrations", /green-migrate/);
      shows("the release's migrations, named (green-check's trigger)", /notes\.0003_note_pinned/);
      shows("the listener change", /aws:lb\/listener:Listener|lb:Listener/);
      const m = mixedLoad("fetch");
      const redis = !!r.outputs().redisEndpoint;
      const tryEnqueue = () =>
        enqueueTask(r.albUrl()!).then(
          (id) => ({ id, error: "" }),
          (e: Error) => ({ id: "", error: e.message }),
        );
      const tasks: Promise<{ id: string; error: string }>[] = redis ? [tryEnqueue()] : [];
      const u = await up(s, (name, type) => {
        m.onStep(name, type);
        // Tasks enqueued as the listener moves, by either release, while the workers switch.
        if (redis && phaseOf(name, type) === "cutover") tasks.push(tryEnqueue(), tryEnqueue());
      });
      if (redis) tasks.push(tryEnqueue());
      m.phase("after");
      // Keep the load on for a moment after the cutover, so it sees the new release too.
      for (let i = 0; i < 50 && (await servedRelease()) !== "r2"; i++) await new Promise((res) => setTimeout(res, 100));
      await settle(m.load);
      const wrote = m.load.acknowledged();
      await finish(s, m);
      check(s, "pulumi up succeeds", u.ok, u.error);
      check(
        s,
        "r1 created and updated notes while r2 migrated",
        ["create", "update"].every((op) => wrote.some((a) => a.op === op && a.phase === "migrate")),
      );
      check(
        s,
        "r2 took writes after the cutover",
        wrote.some((a) => a.phase === "after"),
      );
      const migrations = (await r.resource(`${opts.stack}-release-green-migrate`))?.outputs.stdout as
        string | undefined;
      check(s, "the new migration was applied once", /notes\.0003_note_pinned/.test(migrations ?? ""), migrations);
      const judged = (u.outputs.migrations as Record<string, Record<string, unknown>> | undefined)?.green;
      check(
        s,
        "the migrations output has the check's verdict: pending notes.0003_note_pinned, safe",
        judged?.verdict === "safe" && JSON.stringify(judged?.pending) === '["notes.0003_note_pinned"]',
        JSON.stringify(judged)?.slice(0, 200),
      );
      check(s, "the load balancer serves r2", (await servedRelease()) === "r2");
      if (redis) {
        const got = await Promise.all(tasks);
        const refused = got.filter((g) => g.error);
        check(
          s,
          `every task was accepted (${got.length})`,
          refused.length === 0,
          refused.map((g) => g.error).join("; "),
        );
        const ids = got.filter((g) => g.id).map((g) => g.id);
        enqueued.push(...ids);
        await ranOnce(s, ids, "tasks enqueued before, during and after the cutover");
      }
      const media = (u.outputs.lastBackup as { media?: { key?: string; objects?: number } } | undefined)?.media;
      check(
        s,
        "the backup names the media state that goes with its dump (lastBackup.media)",
        /\.media\.json$/.test(media?.key ?? "") && (media?.objects ?? 0) >= 1,
        JSON.stringify(media),
      );
    });

    await step("an update that is not a release", "a step setting changes: outputs keep their values", async (s) => {
      const before = r.outputs();
      const { writeConfig } = await import("../../scripts/cli/lib/stack");
      const fs = await import("fs");
      fs.writeFileSync(r.stackFile, writeConfig(fs.readFileSync(r.stackFile, "utf8"), { commandTimeoutMinutes: "25" }));
      log(`   $ pulumi config set commandTimeoutMinutes 25 (in ${r.stackFile})`);
      const m = mixedLoad("settings");
      const u = await up(s, m.onStep);
      m.phase("after");
      await settle(m.load);
      await finish(s, m);
      check(s, "pulumi up succeeds", u.ok, u.error);
      check(
        s,
        "the release steps were updated (their time limit is part of what they run)",
        u.commands.some((c) => /-(backup|migrate)$/.test(c)),
        u.commands.join(" "),
      );
      for (const k of ["backups", "lastBackup", "migrations"]) {
        const same = JSON.stringify(u.outputs[k]) === JSON.stringify(before[k]);
        check(s, `${k} keeps its value`, same && !!before[k], JSON.stringify(u.outputs[k])?.slice(0, 200));
      }
      check(s, "the load balancer still serves r2", (await servedRelease()) === "r2");
    });

    await step("rollback", "flip live back: the listener moves; with Redis, then only the workers", async (s) => {
      const m = mixedLoad("rollback cli", { listener: "rollback" });
      await r.rollback();
      const u = await up(s, m.onStep);
      m.phase("after");
      await settle(m.load);
      await finish(s, m);
      check(s, "pulumi up succeeds", u.ok, u.error);
      // With Redis (prod's default) the workers follow the listener: workers-stop/start on
      // every host, after it (docs/architecture.md); nothing else changes, nothing else runs.
      const redis = !!u.outputs.redisEndpoint;
      const workers = (name: string) => /-workers-(stop|start)-\d+$/.test(name);
      const others = u.changes.filter((c) => !(redis && workers(c.name)));
      check(
        s,
        redis ? "only the listener and the workers' steps changed" : "exactly one resource changed (the listener)",
        others.length === 1 && others[0].type === "aws:lb/listener:Listener",
        u.changes.map((c) => c.name).join(" "),
      );
      check(
        s,
        redis ? "no remote command ran but the workers' stop and start" : "no remote command ran",
        u.commands.every((c) => redis && workers(c)) && (!redis || u.commands.length > 0),
        u.commands.join(" "),
      );
      const body = await servedRelease();
      check(s, "r1 is served at once", body === "r1", body);
      const served = await servedEverywhere(upload.url, (u.outputs.hosts as unknown[] | undefined)?.length ?? 1);
      check(s, "the upload made under r1 is still served by every host", served.ok, served.why);
      if (redis) {
        const id = await enqueueTask(r.albUrl()!);
        const seen = await ranOnce(s, [...enqueued, id], "every task enqueued so far, and one after the rollback");
        const last = seen[seen.length - 1];
        check(s, "the rollback's task ran on r1's worker again", last?.ranBy === "r1", JSON.stringify(last));
        const { ticks } = await beatTicks(r.albUrl()!);
        const sent = [...new Set(ticks.map((k) => k.sent))].sort((a, b) => a - b);
        const gaps = sent.slice(1).map((x, i) => x - sent[i]);
        const releases = [...new Set(ticks.map((k) => k.release))];
        check(
          s,
          `beat ticked all along (${ticks.length} ticks), on r1 and on r2`,
          sent.length >= 5 && ["r1", "r2"].every((x) => releases.includes(x)),
          releases.join(" "),
        );
        check(
          s,
          `one beat in the environment: no tick twice, ticks ${BEAT_INTERVAL} s apart, never in between`,
          sent.length === ticks.length && gaps.length > 0 && Math.min(...gaps) >= BEAT_INTERVAL * 0.6,
          gaps.map((g) => g.toFixed(1)).join(" "),
        );
      }
    });

    if (opts.stack === "qa")
      await step(
        "unsafe release r2u",
        "a NOT NULL column without a database default: refused at the check, before the backup; nothing changes",
        async (s) => {
          await release(s, "unsafe-migration", "r2u");
          const p = await r.preview();
          check(s, "the preview names the migration it would apply", /notes\.0004_note_priority/.test(p.text));
          const u = await up(s);
          check(s, "pulumi up fails", !u.ok, u.error?.split("\n")[0]);
          const failed = Object.keys(u.errors).find((name) => /-check$/.test(name)) ?? "";
          check(s, "it failed at the migration check", failed !== "", Object.keys(u.errors).join(" "));
          const message = u.errors[failed] ?? "";
          for (const l of message.trim().split("\n").slice(0, 12)) log(`     > ${l}`);
          check(s, "it is refused before the backup", /release r2u is refused before the backup/.test(message));
          check(
            s,
            "the message names the migration and the operation",
            /notes\.0004_note_priority, operation 1 AddField \(Add field priority to note\)/.test(message),
          );
          check(s, "and the safe way", /Safe way: add it with null=True/.test(message) && /db_default/.test(message));
          check(s, "and how to let it through on purpose", /allowUnsafeMigrations r2u --stack qa/.test(message));
          check(s, `the message is short (${message.length} < 4,096 characters)`, message.length < 4096);
          check(
            s,
            "no backup, no migration, no activation ran",
            !u.commands.some((c) => /-(backup|migrate|activate-\d+)$/.test(c)),
            u.commands.join(" "),
          );
          check(s, "the listener is untouched", !u.changes.some((c) => /-alb-http/.test(c.name) && c.ok));
          const body = await servedRelease();
          check(s, "r1 is still served", body === "r1", body);
        },
      );

    await step(
      "failed release r3",
      "its migration fails: the listener stays, the live release keeps serving",
      async (s) => {
        const m = mixedLoad("release cli");
        await release(s, "bad-migration", "r3");
        const u = await up(s, m.onStep);
        m.phase("after");
        await settle(m.load);
        await finish(s, m);
        check(s, "pulumi up fails", !u.ok, u.error?.split("\n")[0]);
        check(s, "it failed at the migration", /migrate/.test(u.error ?? ""), u.error?.split("\n")[0]);
        check(
          s,
          "the backup before it was taken",
          u.commands.some((c) => /-backup$/.test(c)),
        );
        check(
          s,
          "no activation and no listener change",
          !u.changes.some((c) => /-activate-|-alb-http/.test(c.name) && c.ok),
        );
        // What `pulumi up` prints for the failed step: short, where and why, never app output.
        const message = Object.entries(u.errors).find(([name]) => /-migrate$/.test(name))?.[1] ?? "";
        for (const l of message.trim().split("\n").slice(0, 8)) log(`     > ${l}`);
        check(
          s,
          `the failed step's message is short (${message.length} < 4,096 characters)`,
          message.length > 0 && message.length < 4096,
        );
        check(s, "it names the step and the host", /greenlight migrate failed on h0/.test(message));
        check(
          s,
          "it gives the path of the whole log on the host",
          /The whole log stays on the host: \/\S+\.log/.test(message),
        );
        check(s, "it carries none of the app's own output (a secret)", !message.includes("app-output-marker"));
        const body = await servedRelease();
        check(s, "r1 is still served", body === "r1", body);
      },
    );

    if (opts.stack === "qa")
      await step("hung release r3b", "its migration never ends: stopped at the step's limit on the host", async (s) => {
        const fs = await import("fs");
        const { writeConfig } = await import("../../scripts/cli/lib/stack");
        fs.writeFileSync(
          r.stackFile,
          writeConfig(fs.readFileSync(r.stackFile, "utf8"), { commandTimeoutMinutes: "2" }),
        );
        log(`   $ pulumi config set commandTimeoutMinutes 2 (in ${r.stackFile})`);
        const m = mixedLoad("release cli");
        await release(s, "hung-migration", "r3b");
        const t = Date.now();
        const u = await up(s, m.onStep);
        m.phase("after");
        await settle(m.load);
        await finish(s, m);
        const ms = Date.now() - t;
        const message = Object.entries(u.errors).find(([name]) => /-migrate$/.test(name))?.[1] ?? "";
        for (const l of message.trim().split("\n").slice(0, 3)) log(`     > ${l}`);
        check(s, "pulumi up fails", !u.ok);
        check(
          s,
          "the migration timed out after its limit",
          /greenlight migrate timed out after 2 min/.test(message),
          message.split("\n")[0],
        );
        check(s, `pulumi up ended within the limit and a margin (${seconds(ms)} < 4 min)`, ms < 4 * 60_000);
        check(s, "r1 is still served", (await servedRelease()) === "r1");
        fs.writeFileSync(
          r.stackFile,
          writeConfig(fs.readFileSync(r.stackFile, "utf8"), { commandTimeoutMinutes: "20" }),
        );
        // The next `pulumi up` (the fixed release) needs the stack lock and the host's deploy lock:
        // that it succeeds shows both were released.
      });

    await step("fixed release r4", "replaces the release that never went live, and goes live", async (s) => {
      const m = mixedLoad("release cli");
      const plan = await release(s, "fixed-migration", "r4");
      check(
        s,
        `it replaces ${opts.stack === "qa" ? "r3b" : "r3"}, which never went live`,
        plan.neverLive === (opts.stack === "qa" ? "r3b" : "r3"),
      );
      const u = await up(s, m.onStep);
      m.phase("after");
      await settle(m.load);
      await finish(s, m);
      check(s, "pulumi up succeeds", u.ok, u.error);
      const body = await servedRelease();
      check(s, "the load balancer serves r4", body === "r4", body);
    });

    await step("cleanup", "keeps 2 releases per host, and every slot's release", async (s) => {
      const cleanup = (await r.resource(`${opts.stack}-release-cleanup-0`))?.outputs.stdout as string | undefined;
      const result = JSON.parse(cleanup ?? "{}") as { kept?: string[]; removed?: string[] };
      log(`   cleanup-0 kept ${JSON.stringify(result.kept)}, removed ${JSON.stringify(result.removed)}`);
      check(
        s,
        "both slots' releases are kept (r1 blue, r4 green)",
        !!result.kept?.includes("r1") && !!result.kept?.includes("r4"),
      );
      check(
        s,
        "an old release was removed",
        (result.removed ?? []).some((x) => x === "r2" || x === "r3"),
      );
      const host = r.host(0)!;
      const ls = await host.exec(["ls", "/srv/site/releases"]);
      check(
        s,
        "the host holds what cleanup kept",
        ls.stdout.trim().split("\n").sort().join(" ") === [...(result.kept ?? [])].sort().join(" "),
        ls.stdout.trim().replace(/\n/g, " "),
      );
    });
    if (opts.stack === "qa")
      await step(
        "maintenance release r5",
        "breaks compatibility on purpose (allowUnsafeMigrations): answers only 503 with Retry-After, then r5",
        async (s) => {
          const fs = await import("fs");
          const { writeConfig } = await import("../../scripts/cli/lib/stack");
          const m = mixedLoad("release cli");
          await release(s, "unsafe-column", "r5");
          fs.writeFileSync(
            r.stackFile,
            writeConfig(fs.readFileSync(r.stackFile, "utf8"), { allowUnsafeMigrations: "r5" }),
          );
          log(`   $ pulumi config set allowUnsafeMigrations r5 (in ${r.stackFile})`);
          let page: Answer | undefined;
          const u = await up(s, (name, type) => {
            m.onStep(name, type);
            // What a visitor sees while it migrates.
            if (phaseOf(name, type) === "migrate" && !page) void answer(r.albUrl()!, "/").then((a) => (page = a));
          });
          m.phase("after");
          await settle(m.load);
          await finish(s, m, { window: true });
          check(s, "pulumi up succeeds", u.ok, u.error);
          check(
            s,
            "maintenance mode went on and off on every host, around the window",
            commandsOf(u, /-maintenance-on-\d+$/).length > 0 && commandsOf(u, /-maintenance-off-\d+$/).length > 0,
            u.commands.join(" "),
          );
          check(
            s,
            "a visitor got the maintenance page: 503, Retry-After",
            page?.status === 503 && !!page.retryAfter && /Down for maintenance/.test(page.body),
            page ? `${page.status} retry-after ${page.retryAfter}` : "no answer",
          );
          const migrations = (await r.resource(`${opts.stack}-release-blue-migrate`))?.outputs.stdout as
            string | undefined;
          check(s, "the unsafe migration was applied", /notes\.0005_note_rank/.test(migrations ?? ""), migrations);
          check(s, "the load balancer serves r5", (await servedRelease()) === "r5");
        },
      );
    // qa restores behind r5 (live on blue) and rolls back to r4 (green), whose schema the backup
    // has; prod, whose r4 is live on green, rolls back to r1 (blue), which runs on that schema too.
    const back = opts.stack === "qa" ? { colour: "green", release: "r4" } : { colour: "blue", release: "r1" };
    await step(
      "restore",
      `the backup taken before r4, through config, with a rollback to ${back.release} (${back.colour}): 503 with Retry-After meanwhile, then the backup's data and media`,
      async (s) => {
        const fs = await import("fs");
        const { writeConfig } = await import("../../scripts/cli/lib/stack");
        // As the README's runbook does: pick the key from the backups output.
        const outputs = r.outputs();
        const bucket = String(outputs.backupBucket);
        const hosts = (outputs.hosts as unknown[] | undefined)?.length ?? 1;
        const redis = !!outputs.redisEndpoint;
        const key = (outputs.backups as Record<string, { key?: string }> | undefined)?.green?.key ?? "";
        check(s, "the backups output names the backup taken before r4 (green)", /-before-r4\.dump$/.test(key), key);
        // An upload made after that backup: the media restore takes it away again.
        const later = await postUpload(r.albUrl()!, "after-the-backup.txt", UPLOADED);
        const m = mixedLoad("config", { listener: "rollback" });
        fs.writeFileSync(r.stackFile, writeConfig(fs.readFileSync(r.stackFile, "utf8"), { restoreBackup: key }));
        log(`   $ pulumi config set restoreBackup ${key} (in ${r.stackFile})`);
        // The release that matches the restored schema.
        const rolled = await r.rollback();
        check(
          s,
          `npm run rollback goes back to ${back.release} (${back.colour})`,
          rolled.to === back.colour && rolled.release === back.release,
          rolled.text,
        );
        // Writes the restore discards: acknowledged after the backup was taken (by r5 too).
        for (let i = 0; i < 300 && m.load.acknowledged().filter((a) => a.op === "create").length < 5; i++)
          await new Promise((res) => setTimeout(res, 100));
        let page: Answer | undefined;
        const u = await up(s, (name, type) => {
          m.onStep(name, type);
          const p = phaseOf(name, type);
          if (p === "restore" && !page) void answer(r.albUrl()!, "/").then((a) => (page = a));
          // The listener moves once the restore is done: the rows the load created are gone.
          if (p === "cutover") m.load.forget();
        });
        m.phase("after");
        await settle(m.load);
        await finish(s, m, { window: true, closed: ["restore", "rollback"] });
        // Every write it acknowledged, up to its last (the load has stopped).
        const wrote = m.load.acknowledged();
        check(s, "pulumi up succeeds", u.ok, u.error);
        // With Redis the workers follow the listener back, as in any rollback.
        const allowed = redis
          ? /-(restore|maintenance-(on|off)-\d+|workers-(stop|start)-\d+)$/
          : /-(restore|maintenance-(on|off)-\d+)$/;
        check(
          s,
          `the restore ran once, inside maintenance mode on every host; nothing else ran${redis ? " but the workers' stop and start" : ""}`,
          commandsOf(u, /-restore$/).length === 1 &&
            commandsOf(u, /-maintenance-on-\d+$/).length === hosts &&
            commandsOf(u, /-maintenance-off-\d+$/).length === hosts &&
            u.commands.every((c) => allowed.test(c)),
          u.commands.join(" "),
        );
        check(
          s,
          "a visitor got the maintenance page while it restored: 503, Retry-After",
          page?.status === 503 && !!page.retryAfter,
          page ? `${page.status} retry-after ${page.retryAfter}` : "no answer",
        );
        const result = JSON.parse(
          String((await r.resource(`${opts.stack}-release-restore`))?.outputs.stdout ?? "{}"),
        ) as {
          restored?: string;
          safetyBackup?: { key?: string };
          media?: { manifest?: string; removed?: number };
        };
        check(s, "the step reports the key it restored", result.restored === key, JSON.stringify(result));
        check(
          s,
          "and the media state its manifest names, removing what was uploaded since",
          result.media?.manifest === key.replace(/\.dump$/, ".media.json") && (result.media?.removed ?? 0) >= 1,
          JSON.stringify(result.media),
        );
        const kept = await servedEverywhere(upload.url, hosts);
        check(s, `r1's upload, in the backup, is served by every host (${hosts})`, kept.ok, kept.why);
        const gone = await goneEverywhere(later.url, hosts);
        check(s, "the upload made after the backup is gone: a 404 on every host", gone.ok, gone.why);
        // The data is the backup's: each of its notes as it was, and no other but those written after.
        const backup = r.backupRows(bucket, key, "notes_note").map((x) => `${x.id}\t${x.title}`);
        const live = (await r.sql("select id || E'\\t' || title from notes_note order by id")).trim().split("\n");
        const after = new Set(
          wrote.filter((a) => ["rollback", "maintenance off", "after"].includes(a.phase)).map((a) => a.title),
        );
        const liveSet = new Set(live);
        check(
          s,
          `every note of the backup is back as it was (${backup.length})`,
          backup.length > 0 && backup.every((row) => liveSet.has(row)),
        );
        const others = live.filter((row) => !backup.includes(row));
        check(
          s,
          `and the only other notes are the ${others.length} written after the restore`,
          others.every((row) => after.has(row.slice(row.indexOf("\t") + 1))),
          others.slice(0, 3).join(" | "),
        );
        // Every write acknowledged before the window (creates and updates): gone from the
        // database, and each note in the safety backup as its last acknowledged write left it.
        const before = wrote.filter((a) => !after.has(a.title));
        const titles = new Set(live.map((row) => row.slice(row.indexOf("\t") + 1)));
        check(
          s,
          `the ${before.length} writes made after the backup are gone from the database`,
          before.some((a) => a.op === "create") && before.every((a) => !titles.has(a.title)),
        );
        const safety = result.safetyBackup?.key ?? "";
        const saved = new Map(
          (/-before-restore\.dump$/.test(safety) ? r.backupRows(bucket, safety, "notes_note") : []).map(
            (x) => [Number(x.id), x.title] as const,
          ),
        );
        const lost = before.filter(
          (a) => a.id !== undefined && !before.some((b) => b.id === a.id && b.title === saved.get(a.id!)),
        );
        check(
          s,
          "and each of them is in the safety backup taken before the restore, as its last write left it",
          saved.size > 0 && lost.length === 0,
          `${safety}${
            lost.length
              ? `; missing: ${lost
                  .slice(0, 3)
                  .map((a) => `${a.id} ${a.title}`)
                  .join(", ")}`
              : ""
          }`,
        );
        if (opts.stack === "qa") {
          const schema = await r.sql(
            "select count(*) from information_schema.columns where table_name = 'notes_note' and column_name = 'rank'",
          );
          check(s, "the schema is the backup's too: r5's column is gone", schema.trim() === "0", schema.trim());
        } else {
          const applied = await r.sql(
            "select count(*) from django_migrations where app = 'notes' and name = '0004_untitled_notes'",
          );
          check(
            s,
            "the schema is the backup's too: r4's migration 0004_untitled_notes is not applied",
            applied.trim() === "0",
            applied.trim(),
          );
        }
        check(s, `the load balancer serves ${back.release}`, (await servedRelease()) === back.release);
      },
    );
  } finally {
    const outputs = r.outputs();
    await r.stop();
    log(`\n${stamp()} stopped every process and removed the work directory`);
    printSummary(log, steps, outputs);
    const ok =
      steps.length === (opts.stack === "qa" ? 12 : 9) &&
      steps.every((s) => s.checks.length > 0 && s.checks.every((c) => c.ok));
    log(`\nrehearsal ${ok ? "passed" : "FAILED"} in ${seconds(Date.now() - begun)}`);
    result = { ok, stack: opts.stack, steps, outputs, preview: previewText };
  }
  return result;
}

async function served(r: Rehearsal): Promise<string> {
  const url = r.albUrl();
  if (!url) return "-";
  try {
    const res = await getThrough(url, "/healthz");
    return res.status === 200 ? res.body : String(res.status);
  } catch {
    return "-";
  }
}

interface Answer {
  status: number;
  retryAfter?: string;
  body: string;
}

/** One GET through the load balancer, with the Retry-After header. */
function answer(url: string, requestPath: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    http
      .get(`${url}${requestPath}`, { timeout: 10_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            retryAfter: res.headers["retry-after"] as string | undefined,
            body: Buffer.concat(chunks).toString(),
          }),
        );
      })
      .on("error", reject);
  });
}

const UPLOADED = "uploaded during the rehearsal\n";

/** POST /api/uploads through the load balancer: the site stores the file in the stack's media bucket. */
async function postUpload(url: string, name: string, text: string): Promise<{ url: string }> {
  const form = new FormData();
  form.set("file", new Blob([text]), name);
  const res = await fetch(`${url}/api/uploads`, { method: "POST", body: form });
  if (res.status !== 201) throw new Error(`POST /api/uploads: ${res.status} ${(await res.text()).slice(0, 200)}`);
  return (await res.json()) as { url: string };
}

/** The preview text's budget: readable as a PR comment, well under pulumi/actions' 64,000. */
export const PREVIEW_BUDGET = 30_000;

/** The example site's beat interval in the rehearsal (its BEAT_INTERVAL_SECONDS setting). */
const BEAT_INTERVAL = 5;

/** POST /api/tasks through the load balancer: the example site enqueues a task (Celery on Redis). */
async function enqueueTask(url: string): Promise<string> {
  const res = await fetch(`${url}/api/tasks`, { method: "POST", body: new FormData() });
  if (res.status !== 202) throw new Error(`POST /api/tasks: ${res.status} ${(await res.text()).slice(0, 200)}`);
  return ((await res.json()) as { id: string }).id;
}

/** GET /api/tasks/<id>: how often the task started and ran, and which release ran it. */
async function taskOf(url: string, id: string): Promise<{ id: string; starts: number; runs: number; ranBy?: string }> {
  const res = await fetch(`${url}/api/tasks/${id}`);
  if (res.status !== 200) throw new Error(`GET /api/tasks/${id}: ${res.status}`);
  return (await res.json()) as { id: string; starts: number; runs: number; ranBy?: string };
}

/** GET /api/beat: every tick beat sent, with the release that ran it. */
async function beatTicks(url: string): Promise<{ ticks: { sent: number; release: string }[] }> {
  const res = await fetch(`${url}/api/beat`);
  if (res.status !== 200) throw new Error(`GET /api/beat: ${res.status}`);
  return (await res.json()) as { ticks: { sent: number; release: string }[] };
}

async function postNote(url: string, title: string): Promise<void> {
  const form = new FormData();
  form.set("title", title);
  const res = await fetch(`${url}/api/notes`, { method: "POST", body: form });
  if (res.status !== 201) throw new Error(`POST /api/notes: ${res.status}`);
}

function printSummary(log: (line: string) => void, steps: StepResult[], outputs: Record<string, unknown>): void {
  const rows = steps.map((s, i) => [
    String(i + 1),
    s.name,
    s.checks.every((c) => c.ok) ? "ok" : "FAILED",
    seconds(s.ms),
    s.up ? String(s.up.changes.length) : "-",
    s.up ? String(s.up.commands.length) : "-",
    s.serving ?? "-",
  ]);
  const head = ["#", "step", "result", "time", "changed", "commands", "serving"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ");
  log("\n" + line(head));
  log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const r of rows) log(line(r));
  const pick = [
    "url",
    "liveColour",
    "idleColour",
    "liveRelease",
    "releases",
    "hosts",
    "lastBackup",
    "migrations",
    "parameterPath",
  ];
  log("\nstack outputs (pulumi stack output --json):");
  log(JSON.stringify(Object.fromEntries(pick.filter((k) => k in outputs).map((k) => [k, outputs[k]])), null, 2));
}
