// The release steps, exactly as the program sends them (the scripts copied as its
// remote.CopyToRemote copies them, each step one short command), over real SSH on two local
// Debian hosts (separate filesystems), with PostgreSQL, nginx, supervisor, gunicorn and
// Django from Debian, and S3/SSM stand-ins, behind the load balancer stand-in. The scenarios
// run in order, like the life of an environment: bootstrap, first release, a second release,
// a rollback and a settings change, then every way a release can fail, each followed by the
// retry that succeeds, a restore and a release under maintenance mode. Each of those runs under
// a mixed load of reads and writes through the load balancer (test/rig/load.ts) for its whole
// length, and none of its requests may fail, phase by phase (inside a maintenance window: none
// but 503s with Retry-After).
import { S3Client } from "@aws-sdk/client-s3";
import * as assert from "assert";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as os from "os";
import * as path from "path";
import { INSTALL_ROOT, SCRIPT_DIR, StepCall, createCommand, scriptsId } from "../../components/remote";
import { artifactKey } from "../../scripts/cli/lib/stack";
import { uploadArtifact } from "../../scripts/cli/lib/upload";
import { AlbStandIn, startAlbStandIn } from "../rig/albStandIn";
import { Artifact, Variant, siteArtifact } from "../rig/artifacts";
import { MixedLoad, PhaseTally, underMixedLoad } from "../rig/load";
import { RigHost } from "../rig/hosts";
import { RunResult } from "../rig/ssh";
import { APP, REGION, SITE_HOST, World, httpRequest, startWorld } from "../rig/world";

type Slot = "blue" | "green";
const PORT: Record<Slot, number> = { blue: 8001, green: 8002 };
/** The load balancer stand-in's target groups, and its listeners: forwarding, and a test listener. */
const TG: Record<Slot, string> = { blue: "tg-blue", green: "tg-green" };
const FORWARD = 80;
const TEST = 8443;

/** Polls (bounded) until `cond` holds; never a fixed sleep. */
async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("release steps on real hosts", function () {
  this.timeout(600_000);
  let w: World;
  let h0: RigHost;
  let h1: RigHost;
  let s3: S3Client;
  let alb: AlbStandIn;
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "gl-hosttest-"));
  /** Every byte any step printed: checked for secrets at the end. */
  const transcript: string[] = [];
  const artifacts = new Map<string, Artifact>();

  const artifact = async (variant: Variant) => {
    const a = await siteArtifact(variant, out);
    if (!artifacts.has(variant)) {
      await uploadArtifact(s3, w.artifactBucket, artifactKey(a.sha256), a.file, a.sha256);
      artifacts.set(variant, a);
    }
    return { key: artifactKey(a.sha256), sha256: a.sha256, lockHash: a.lockHash };
  };

  type RunOpts = { timeoutSeconds?: number; scriptsDir?: string; copy?: boolean };
  const run = async (host: RigHost, call: StepCall, opts: RunOpts = {}): Promise<RunResult> => {
    const r = await w.step(host, call, opts);
    transcript.push(r.stdout, r.stderr);
    return r;
  };
  /** The step's whole log on the host, from the path its summary names. */
  const logOf = async (host: RigHost, r: RunResult): Promise<string> => {
    const file = /\(log: (\S+)\)$|The whole log stays on the host: (\S+)$/m.exec(r.stderr);
    assert.ok(file, `the step names its log: ${r.stderr}`);
    return sh(host, `cat -- '${file[1] ?? file[2]}'`);
  };
  const ok = async (host: RigHost, call: StepCall) => {
    const r = await run(host, call);
    assert.equal(r.code, 0, `${call.step} on ${host.name} failed:\n${r.stderr.slice(-3000)}`);
    return JSON.parse(r.stdout.trim().split("\n").pop()!) as Record<string, unknown>;
  };
  /**
   * A step that must fail. Its message is built as pulumi-command 1.2 builds a failed command's
   * error (`Process exited with status N: running "<command>":` and all of stdout and stderr):
   * under 4 KB, naming the step and the host. `why` is looked for in the message and the whole
   * log on the host; the message must not contain `notInMessage` (what only the log may hold).
   */
  const fails = async (host: RigHost, call: StepCall, why: RegExp, o: RunOpts & { notInMessage?: RegExp } = {}) => {
    const r = await run(host, call, o);
    assert.notEqual(r.code, 0, `${call.step} on ${host.name} should have failed`);
    const command = createCommand(call, { timeoutSeconds: o.timeoutSeconds ?? 1200 });
    const message = `Process exited with status ${r.code}: running ${JSON.stringify(command)}:\n${r.stdout}${r.stderr}`;
    assert.ok(Buffer.byteLength(message) < 4096, `a ${Buffer.byteLength(message)}-byte error:\n${message}`);
    assert.match(r.stderr, new RegExp(`^greenlight ${call.step} .*\\b${host.name}\\b`, "m"), r.stderr);
    const log = /The whole log stays on the host/.test(r.stderr) ? await logOf(host, r) : "";
    assert.match(`${r.stderr}\n${log}`, why);
    if (o.notInMessage) {
      assert.doesNotMatch(message, o.notInMessage);
      assert.match(log, o.notInMessage, "the whole log keeps it");
    }
    return { ...r, message, log };
  };
  const sh = async (host: RigHost, script: string, user?: string) => {
    const r = await host.exec(["bash", "-c", script], user ? { user } : {});
    assert.equal(r.code, 0, `${script}: ${r.stderr}`);
    return r.stdout.trim();
  };
  const slotTarget = (host: RigHost, slot: Slot) => sh(host, `readlink /srv/${APP}/${slot} || true`);
  const serves = async (host: RigHost, slot: Slot) => (await w.get(host, PORT[slot], "/healthz")).body;

  /** A copy of scripts/remote (named "remote", as the copy on a host is), to change. */
  const scriptsCopy = () => {
    const dir = path.join(fs.mkdtempSync(path.join(out, "scripts-")), "remote");
    fs.mkdirSync(dir);
    for (const f of fs.readdirSync(SCRIPT_DIR)) fs.copyFileSync(path.join(SCRIPT_DIR, f), path.join(dir, f));
    return dir;
  };

  /**
   * A whole release into `slot`: fetch everywhere, the migration check (against the other
   * slot's release), backup + migrate on h0, activate everywhere; each step in its phase of
   * `load`, when given.
   */
  const release = async (slot: Slot, id: string, variant: Variant, load?: MixedLoad) => {
    const a = await artifact(variant);
    load?.phase("fetch");
    const fetched = await Promise.all([h0, h1].map((h) => ok(h, w.values.fetch(slot, id, a))));
    load?.phase("check");
    const check = await ok(h0, w.values.check(id, slot));
    load?.phase("backup");
    const backup = await ok(h0, w.values.backup(id, slot));
    load?.phase("migrate");
    const migrate = await ok(h0, w.values.migrate(id, slot));
    load?.phase("activate");
    const activated = await Promise.all([h0, h1].map((h) => ok(h, w.values.activate(slot, id))));
    return { fetched, check, backup, migrate, activated };
  };

  /** What the load balancer's listener `port` serves (its health path: the release id). */
  const lbServes = async (port = FORWARD) => (await httpRequest(`${alb.url(port)}/healthz`)).body;
  /** The listener moves to `slot` (what the program's listener change does), once its targets are healthy. */
  const cutover = async (slot: Slot, release: string, port = FORWARD) => {
    await until(`${slot}'s targets healthy`, () => Object.values(alb.health(TG[slot])).every(Boolean));
    await alb.listen(port, TG[slot], SITE_HOST);
    await until(`the load balancer serving ${release}`, async () => (await lbServes(port)) === release);
  };

  /** Every phase of every scenario's load, for the end of the run. */
  const loads: string[] = [];
  /**
   * Runs `body` under the mixed load through the load balancer (its forwarding listener, and
   * the test listener when `idle` is set), starting in phase `first`, and asserts that no read
   * and no write failed in any phase; in `maintenance` phases only 503s with Retry-After may
   * be answered, and in `closed` ones nothing else at all (the window is fully on).
   */
  const underLoad = <T>(
    first: string,
    body: (load: MixedLoad) => Promise<T>,
    o: { idle?: boolean; maintenance?: string[]; closed?: string[] } = {},
  ): Promise<{ result: T; phases: PhaseTally[]; load: MixedLoad }> =>
    underMixedLoad(
      {
        bases: [alb.url(FORWARD)!, ...(o.idle ? [alb.url(TEST)!] : [])],
        host: SITE_HOST,
        reads: ["/"],
        update: (id) => `/api/notes/${id}`,
        concurrency: 3,
        maxRequests: 60_000,
        maxMs: 9 * 60_000,
        phase: first,
        // Titles of their own per scenario: what a restore discards is told apart by them.
        label: `s${loads.length + 1}`,
      },
      body,
      { log: loads, maintenance: o.maintenance, closed: o.closed },
    );

  let first: Awaited<ReturnType<typeof release>>;

  before(async function () {
    this.timeout(900_000);
    w = await startWorld({ hosts: 2 });
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
  });

  after(async () => {
    if (loads.length)
      console.log(`    mixed load, scenario by scenario:\n${loads.join("\n---\n").replace(/^/gm, "      ")}`);
    await alb?.close();
    s3?.destroy();
    await w?.stop();
    fs.rmSync(out, { recursive: true, force: true });
  });

  it("bootstrap prepares each host (users, sudoers, supervisor, nginx, key-only sshd) and is idempotent", async () => {
    for (const h of [h0, h1]) assert.equal((await ok(h, w.values.bootstrap())).prepared, true);
    const again = await run(h0, w.values.bootstrap());
    assert.equal(again.code, 0);
    assert.match(await logOf(h0, again), /host already prepared by bootstrap/, "the same bootstrap does nothing again");
    // A changed bootstrap prepares the host again, idempotently: nothing is rewritten.
    const boot = w.values.bootstrap();
    const changed = await run(h0, { ...boot, values: { ...boot.values, GL_BOOTSTRAP_ID: "0123456789abcdef" } });
    assert.equal(changed.code, 0, changed.stderr);
    const log = await logOf(h0, changed);
    assert.match(log, /host ready for site/);
    assert.doesNotMatch(
      log.replace(/wrote \/srv\/site\/\.bootstrap$/m, ""),
      /wrote |installing /,
      "a second run changes nothing",
    );
    const sshd = await sh(
      h0,
      "sshd -T | grep -E '^(passwordauthentication|kbdinteractiveauthentication|permitrootlogin|hostkey) '",
    );
    assert.deepEqual(sshd.split("\n").sort(), [
      "hostkey /etc/ssh/ssh_host_ed25519_key",
      "kbdinteractiveauthentication no",
      "passwordauthentication no",
      "permitrootlogin no",
    ]);
    assert.equal(await sh(h0, "id -nG deploy"), "deploy adm app");
    assert.equal(await sh(h0, "getent passwd app | cut -d: -f7"), "/usr/sbin/nologin");
    assert.equal(
      await sh(h0, `stat -c '%U %a' /srv/${APP} /srv/${APP}/shared/media /etc/sudoers.d/greenlight-${APP}`),
      `deploy 755\napp 755\nroot 440`,
    );
    // deploy may restart its own slots and nothing else as root.
    const sudo = (await h0.exec(["sudo", "-n", "-l", "-U", "deploy"])).stdout.replace(/\s+/g, " ").trim();
    assert.match(sudo, /\(root\) NOPASSWD: \/usr\/bin\/supervisorctl start site-blue, /);
    assert.match(
      sudo,
      new RegExp(
        "\\(app\\) NOPASSWD: /usr/bin/tee /srv/site/shared/\\.settings/env\\.new, /srv/site/releases/\\*/venv/bin/python, " +
          "/usr/bin/kill -TERM -- -\\[0-9\\]\\*, /usr/bin/kill -KILL -- -\\[0-9\\]\\*$",
      ),
    );
    assert.doesNotMatch(sudo, /\(ALL\)|NOPASSWD: ALL/);
    assert.equal((await h0.exec(["sudo", "-u", "deploy", "sudo", "-n", "/usr/bin/id"])).code === 0, false);
    assert.match(await sh(h0, "grep -c 'Unattended-Upgrade \"1\"' /etc/apt/apt.conf.d/20auto-upgrades"), /^1$/);
    assert.match(await sh(h0, `cat /etc/logrotate.d/greenlight-${APP}`), /\/var\/log\/site\/\*\.log/);
  });

  it("the scripts reach each host once per version: installed root-owned under their content address", async () => {
    const id = scriptsId();
    for (const h of [h0, h1]) {
      assert.equal(await sh(h, `stat -c '%U %a' ${INSTALL_ROOT}/${id}`), "root 755");
      assert.equal(
        await sh(h, `cd ${INSTALL_ROOT}/${id} && stat -c '%U %a %n' *.sh *.py | sort -u -k1,2 | cut -d' ' -f1,2`),
        "root 644",
      );
      assert.equal(
        await sh(h, `ls ${INSTALL_ROOT}/${id}`),
        fs
          .readdirSync(SCRIPT_DIR)
          .filter((f) => f.endsWith(".sh") || f.endsWith(".py"))
          .sort()
          .join("\n"),
      );
    }
    assert.notEqual(
      (await h0.exec(["bash", "-c", `echo x >>${INSTALL_ROOT}/${id}/fetch.sh`], { user: "deploy" })).code,
      0,
    );
    // A new version of one step's script: the bootstrap installs it and prepares nothing again.
    const dir = scriptsCopy();
    fs.appendFileSync(path.join(dir, "cleanup.sh"), "# a new version\n");
    const next = scriptsId(dir);
    assert.notEqual(next, id);
    const r = await run(h1, w.values.bootstrap(), { scriptsDir: dir });
    assert.equal(r.code, 0, r.stderr);
    const log = await logOf(h1, r);
    assert.match(log, new RegExp(`installed scripts ${next} in ${INSTALL_ROOT}/${next}`));
    assert.match(log, /host already prepared by bootstrap/);
    assert.match(await sh(h1, `tail -n 1 ${INSTALL_ROOT}/${next}/cleanup.sh`), /^# a new version$/);
    assert.equal(await sh(h1, "ls /home/admin/.greenlight"), next, "the admin's earlier copies are removed");
    // A copy that does not match its content address is refused, and nothing is installed.
    fs.appendFileSync(path.join(dir, "cleanup.sh"), "# a third version\n");
    const third = scriptsId(dir);
    await w.copyScripts(h1, dir);
    await sh(h1, `echo 'echo tampered' >>/home/admin/.greenlight/${third}/remote/fetch.sh`);
    await fails(h1, w.values.bootstrap(), new RegExp(`are version [0-9a-f]{16}, not ${third}`), {
      scriptsDir: dir,
      copy: false,
    });
    assert.equal(await sh(h1, `test -e ${INSTALL_ROOT}/${third} && echo yes || echo no`), "no");
  });

  it("first release: fetch (cold venv) -> backup -> migrate -> activate, and the slot answers with its id", async () => {
    const r = await release("blue", "r1", "base");
    first = r;
    for (const f of r.fetched) assert.equal(f.venv, "built");
    assert.equal(r.check.verdict, "safe");
    assert.equal(r.check.serving, "the applied migrations", "a first release: nothing serves");
    assert.ok((r.check.pending as string[]).includes("notes.0002_note_attachment"), JSON.stringify(r.check.pending));
    assert.match(String(r.backup.key), /^db\/\d{8}T\d{6}Z-before-r1\.dump$/);
    assert.deepEqual(
      (r.migrate.applied as string[]).filter((m) => m.startsWith("notes.")),
      ["notes.0001_initial", "notes.0002_note_attachment"],
    );
    for (const h of [h0, h1]) {
      assert.equal(await serves(h, "blue"), "r1");
      assert.equal(await slotTarget(h, "blue"), "releases/r1");
      assert.equal(await sh(h, `stat -c '%U %a' /srv/${APP}/shared/.env`), "app 600", "the .env is the app's alone");
      assert.match(await sh(h, `cat /srv/${APP}/shared/.env`), /^SECRET_KEY=/m);
    }
    // Static files come from the slot's release, media from the shared dir, through nginx.
    const css = await w.get(h0, PORT.blue, "/static/admin/css/base.css");
    assert.equal(css.status, 200);
  });

  it("an update that is not a release prints each step's recorded result, so the outputs keep their values", async () => {
    const a = await artifact("base");
    const same = async (h: RigHost, call: StepCall, result: Record<string, unknown>) => {
      const u = await w.update(h, call);
      assert.equal(u.code, 0, u.stderr);
      assert.deepEqual(JSON.parse(u.stdout), result, `${call.step} on ${h.name}`);
    };
    for (const [i, h] of [h0, h1].entries()) {
      await same(h, w.values.fetch("blue", "r1", a), first.fetched[i]);
      await same(h, w.values.activate("blue", "r1"), first.activated[i]);
    }
    await same(h0, w.values.check("r1", "blue"), first.check);
    await same(h0, w.values.backup("r1", "blue"), first.backup);
    await same(h0, w.values.migrate("r1", "blue"), first.migrate);
    assert.match(String(first.backup.takenAt), /^\d{4}-/, "lastBackup has what the restore runbook picks from");
    // Nothing ran again: still one backup of r1 in the bucket.
    assert.equal(
      w.aws.listKeys(w.backupBucket).filter((k) => k.includes("before-r1") && k.endsWith(".dump")).length,
      1,
    );
    // No record (a step that never ran here): the update fails and says why, on which host.
    const u = await w.update(h1, w.values.migrate("r1", "blue"));
    assert.notEqual(u.code, 0);
    assert.match(
      u.stderr,
      new RegExp(`greenlight migrate: no recorded result /srv/site/steps/blue\\.r1\\.migrate\\.json on ${h1.name}`),
    );
  });

  it("a second release to green, and the cutover, under reads and writes through the load balancer: not one fails", async () => {
    // Data through the app (and the shared media dir) before the release.
    for (const title of ["one", "two", "three"]) {
      const form = new FormData();
      form.set("title", title);
      form.set("attachment", new Blob([`file ${title}`]), `${title}.txt`);
      const res = await httpRequest(`http://${h0.ip}:${PORT.blue}/api/notes`, { method: "POST", body: form });
      assert.equal(res.status, 201, res.body);
    }
    await cutover("blue", "r1");
    const { result: r, load } = await underLoad("fetch", async (load) => {
      const r = await release("green", "r2", "pinned", load);
      assert.equal(await lbServes(), "r1", "blue kept serving r1 until the cutover");
      load.phase("cutover");
      await cutover("green", "r2");
      const n = load.count();
      await until("requests after the cutover", () => load.count() >= n + 30);
      return r;
    });
    const wrote = load.acknowledged();
    assert.ok(
      wrote.some((a) => a.op === "create" && a.phase === "migrate"),
      "r1 created rows while r2 migrated",
    );
    assert.ok(
      wrote.some((a) => a.op === "update"),
      "and updated rows",
    );
    assert.ok(
      wrote.some((a) => a.phase === "cutover"),
      "r2 took writes after the cutover",
    );
    for (const f of r.fetched) assert.equal(f.venv, "reused", "same lock: the venv is reused");
    assert.deepEqual(r.migrate.applied, ["notes.0003_note_pinned"]);
    // db_default: the column is added with a database default that stays, so r1's INSERTs work.
    assert.deepEqual(
      [r.check.verdict, r.check.serving, r.check.servingRelease, r.check.pending],
      ["safe", "the serving release's models", "r1", ["notes.0003_note_pinned"]],
    );
    for (const h of [h0, h1]) {
      assert.equal(await serves(h, "green"), "r2");
      assert.equal(await serves(h, "blue"), "r1");
    }
    const notes = JSON.parse((await httpRequest(`http://${h1.ip}:${PORT.green}/api/notes`)).body) as {
      notes: { id: number; attachment: string }[];
    };
    const ids = new Set(notes.notes.map((n) => n.id));
    assert.ok(
      wrote.every((a) => a.op !== "create" || ids.has(a.id!)),
      "both hosts, both slots, one database: every acknowledged row is there",
    );
    // Uploads live in the host's shared/media, outside releases: the new release serves them.
    // (Each host has its own: several hosts need shared storage for media, see the README.)
    const media = await httpRequest(`http://${h0.ip}:${PORT.green}${notes.notes[0].attachment}`);
    assert.equal(media.status, 200, "uploads live outside releases, in shared/media");
    assert.match(media.body, /^file (one|two|three)$/);
  });

  it("rollback: the listener moves back to blue (r1) and forward again under reads and writes: not one fails", async () => {
    await underLoad("rollback", async (load) => {
      await cutover("blue", "r1");
      let n = load.count();
      await until("requests on r1", () => load.count() >= n + 30);
      load.phase("cutover");
      await cutover("green", "r2");
      n = load.count();
      await until("requests on r2", () => load.count() >= n + 30);
    });
  });

  it("a changed setting re-renders .env and reloads the running slots gracefully: not one request fails", async () => {
    const workers = async (h: RigHost) => sh(h, "pgrep -u app -f 'gunicorn' | sort | tr '\\n' ' '");
    const before = await Promise.all([h0, h1].map(workers));
    w.aws.putParameter(`${w.parameterPath}GREETING`, "hello from SSM", "String");
    // Through the forwarding listener (green) and a test listener on the idle colour (blue).
    await cutover("blue", "r1", TEST);
    const { result: results } = await underLoad(
      "settings",
      async () => Promise.all([h0, h1].map((h) => ok(h, w.values.settings()))),
      { idle: true },
    );
    for (const r of results) assert.equal(r.reloaded, "blue green");
    for (const h of [h0, h1]) assert.match(await sh(h, `cat /srv/${APP}/shared/.env`), /^GREETING=hello from SSM$/m);
    const after = await Promise.all([h0, h1].map(workers));
    for (let i = 0; i < 2; i++) assert.notEqual(after[i], before[i], "new workers took over");
    assert.equal(await serves(h0, "blue"), "r1");
    assert.equal(await serves(h1, "green"), "r2");
  });

  it("a bootstrap that changes the slots' supervisor program restarts no running slot; activation applies it", async () => {
    const pids = () => Promise.all(["blue", "green"].map((slot) => sh(h0, `supervisorctl pid ${APP}-${slot}`)));
    const before = await pids();
    const dir = scriptsCopy();
    const boot = path.join(dir, "bootstrap.sh");
    fs.writeFileSync(boot, fs.readFileSync(boot, "utf8").replace("startretries=3", "startretries=4"));
    const call = w.values.bootstrap();
    const r = await run(
      h0,
      { ...call, values: { ...call.values, GL_BOOTSTRAP_ID: "newsupervisor" } },
      { scriptsDir: dir },
    );
    assert.equal(r.code, 0, r.stderr);
    const log = await logOf(h0, r);
    for (const slot of ["blue", "green"]) {
      assert.match(
        log,
        new RegExp(`${APP}-${slot} is running: its new supervisor program applies at its next activation`),
      );
    }
    assert.deepEqual(await pids(), before, "neither slot restarted");
    assert.equal(await serves(h0, "blue"), "r1");
    assert.equal(await serves(h0, "green"), "r2");
    await ok(h0, w.values.activate("blue", "r1"));
    assert.equal(await sh(h0, "supervisorctl reread"), `${APP}-green: changed`, "blue runs its new program now");
    assert.equal(await serves(h0, "blue"), "r1");
  });

  it("a failed SSM read leaves .env whole: it is rendered to a temporary file, renamed only on success", async () => {
    const env = () => sh(h0, `sha256sum /srv/${APP}/shared/.env; stat -c '%U %a %s' /srv/${APP}/shared/.env`);
    const before = await env();
    assert.doesNotMatch(before, / 0$/, "a .env with settings");
    w.aws.failNext("GetParametersByPath", 10); // more than boto3's retries
    await fails(h0, w.values.settings(), /could not read the settings from \/greenlight\/hosttest\/ .*unchanged/);
    w.aws.clearFaults();
    assert.equal(await env(), before, "the .env is as it was");
    assert.equal(await sh(h0, `ls -A /srv/${APP}/shared/.settings`), "", "no partial file is left");
    assert.equal(await serves(h0, "blue"), "r1");
    assert.equal(await serves(h0, "green"), "r2");
  });

  it("a setting that stops the app booting is caught before any slot reloads: the previous .env comes back", async () => {
    const env = () => sh(h0, `sha256sum /srv/${APP}/shared/.env`);
    const before = await env();
    const masters = () => Promise.all(["blue", "green"].map((c) => sh(h0, `supervisorctl pid ${APP}-${c}`)));
    const running = await masters();
    w.aws.deleteParameter(`${w.parameterPath}SECRET_KEY`); // the site refuses to start without it
    let failed: Awaited<ReturnType<typeof fails>>;
    try {
      failed = await fails(
        h0,
        w.values.settings(),
        new RegExp(
          `the new settings stop slot blue's release from booting on ${h0.name}: \\.env is back as it was and no slot was reloaded`,
        ),
      );
    } finally {
      w.aws.putParameter(`${w.parameterPath}SECRET_KEY`, w.secrets.secretKey, "SecureString");
    }
    assert.match(failed.log, /the release of slot blue does not boot on the new settings/);
    assert.equal(await env(), before, "the previous .env is back");
    assert.deepEqual(await masters(), running, "neither slot was reloaded or restarted");
    assert.equal(await serves(h0, "blue"), "r1");
    assert.equal(await serves(h0, "green"), "r2");
  });

  it("migrations ran exactly once across hosts and releases", async () => {
    const dupes = await w.pg.query(
      "select app, name, count(*) from django_migrations group by 1, 2 having count(*) > 1",
      APP,
    );
    assert.equal(dupes.trim(), "");
    assert.equal((await w.pg.query("select count(*) from django_migrations where app = 'notes'", APP)).trim(), "3");
    // The same step again (a retried create): it prints what it applied the first time, runs nothing.
    const recorded = await sh(h0, `cat /srv/${APP}/steps/green.r2.migrate.json`);
    const r = await run(h0, w.values.migrate("r2", "green"));
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), JSON.parse(recorded), "the recorded result, as the first run printed it");
    assert.deepEqual(JSON.parse(r.stdout).applied, ["notes.0003_note_pinned"]);
    assert.match(await logOf(h0, r), /already done for release r2 .*: not running it again/);
    assert.doesNotMatch(await logOf(h0, r), /running: /, "the migrate command did not run");
  });

  it("an unsafe release is refused at the check, before the backup: no dump, no migration, the serving colours untouched", async () => {
    // r20 adds notes.0004_note_priority with default=0 (ADD COLUMN ... DEFAULT 0 NOT NULL, then
    // DROP DEFAULT): every INSERT of r1 and r2 would fail once it ran.
    const a = await artifact("unsafe-migration");
    // Fetched on the first host only: the check runs there (and h1's releases stay as they were).
    await ok(h0, w.values.fetch("blue", "r20", a));
    const applied = () => w.pg.query("select name from django_migrations where app = 'notes' order by id", APP);
    const column = () =>
      w.pg.query(
        "select count(*) from information_schema.columns where table_name = 'notes_note' and column_name = 'priority'",
        APP,
      );
    const before = await applied();
    const dumps = () => w.aws.listKeys(w.backupBucket).length;
    const dumpsBefore = dumps();
    // The serving colour is measured throughout, through the load balancer (underLoad asserts
    // that no read and no write failed).
    const { result: refused } = await underLoad("check", async (load) => {
      const refused = await fails(h0, w.values.check("r20", "blue"), /refused before the backup/);
      await until("requests during the check", () => load.count() >= 30);
      return refused;
    });
    assert.equal(refused.code, 3, "exit 3: unsafe and refused");
    // The message pulumi up fails with names the migration, the operation and the safe way.
    assert.match(
      refused.message,
      /greenlight: release r20 is refused before the backup: its migrations are unsafe while the previous release still serves/,
    );
    assert.match(
      refused.message,
      /notes\.0004_note_priority, operation 1 AddField \(Add field priority to note\): adds NOT NULL column "notes_note"\."priority" with a DEFAULT that the same migration drops again/,
    );
    assert.match(
      refused.message,
      /Safe way: add it with null=True in this release .* or give it a database default with db_default=<value>/,
    );
    assert.match(refused.message, /pulumi config set allowUnsafeMigrations r20 --stack qa/);
    // Nothing was written: no backup, no migration, no column, both slots as they were, serving.
    assert.equal(dumps(), dumpsBefore, "no dump was written");
    assert.equal(await applied(), before, "no migration was applied");
    assert.equal((await column()).trim(), "0");
    assert.equal(await sh(h0, `test -e /srv/${APP}/steps/blue.r20.check.json && echo yes || echo no`), "no");
    assert.equal(await sh(h0, `ls /srv/${APP}/steps | grep -c 'r20\\.\\(backup\\|migrate\\)' || true`), "0");
    for (const h of [h0, h1]) {
      assert.equal(await slotTarget(h, "blue"), "releases/r1");
      assert.equal(await slotTarget(h, "green"), "releases/r2");
      assert.equal(await serves(h, "green"), "r2");
    }
    // A retry is refused the same way (the check only reads).
    const again = await run(h0, w.values.check("r20", "blue"));
    assert.equal(again.code, 3);
    // Let through on purpose (allowUnsafeMigrations = r20): the check passes and says so, and
    // still writes nothing itself.
    const allowed = await ok(h0, w.values.check("r20", "blue", { allowUnsafe: true }));
    assert.deepEqual(
      [allowed.verdict, allowed.allowed, allowed.servingRelease, allowed.pending],
      ["unsafe", true, "r2", ["notes.0004_note_priority"]],
    );
    assert.equal(await applied(), before);
    // A safe release passes: r21 (pinned plus a data migration), judged against blue's r1.
    const fixed = await artifact("fixed-migration");
    await ok(h0, w.values.fetch("green", "r21", fixed));
    const safe = await ok(h0, w.values.check("r21", "green"));
    assert.deepEqual(
      [safe.verdict, safe.allowed, safe.servingRelease, safe.pending],
      ["safe", false, "r1", ["notes.0004_untitled_notes"]],
    );
    assert.equal(
      JSON.stringify(safe).includes('"sql"'),
      false,
      "the output carries no SQL (the log on the host has it)",
    );
    assert.equal(dumps(), dumpsBefore);
  });

  it("the backup restores into a fresh database with equal row counts", async () => {
    const b = await ok(h0, w.values.backup("r2"));
    const dump = w.aws.getObject(w.backupBucket, String(b.key));
    assert.ok(dump && dump.length === b.size, "the uploaded object is the dump");
    const file = path.join(out, "check.dump");
    fs.writeFileSync(file, dump);
    await w.pg.query(`create database restorecheck owner ${APP}`);
    try {
      // pg_restore from the machine, as the app's role over TLS, like a restore on a host.
      execFileSync(
        "pg_restore",
        [
          "--no-owner",
          "--exit-on-error",
          "-h",
          w.pg.host,
          "-p",
          String(w.pg.port),
          "-U",
          APP,
          "-d",
          "restorecheck",
          file,
        ],
        {
          env: { PATH: "/usr/bin:/bin", PGPASSWORD: w.secrets.dbPassword, PGSSLMODE: "require" },
          stdio: "pipe",
        },
      );
      const tables = (await w.pg.query("select tablename from pg_tables where schemaname = 'public' order by 1", APP))
        .trim()
        .split("\n");
      assert.ok(tables.includes("notes_note"));
      for (const t of tables) {
        const live = await w.pg.query(`select count(*) from "${t}"`, APP);
        const copy = await w.pg.query(`select count(*) from "${t}"`, "restorecheck");
        assert.equal(copy, live, `rows of ${t}`);
      }
    } finally {
      await w.pg.dropDatabase("restorecheck");
    }
  });

  it("a backup streams to the bucket, checked on the way, and refuses to start on a nearly full disk", async () => {
    const call = w.values.backup("r2s", "green");
    const keys = w.aws.listKeys(w.backupBucket).length;
    await fails(
      h0,
      { ...call, values: { ...call.values, GL_BACKUP_MIN_FREE_MB: "999999999" } },
      /only \d+ MB free on \S+ \(at least 999999999 MB needed\): no backup started/,
    );
    assert.equal(w.aws.listKeys(w.backupBucket).length, keys, "nothing was uploaded");
    const r = await run(h0, call);
    assert.equal(r.code, 0, r.stderr);
    assert.match(await logOf(h0, r), /verified [1-9]\d* entries, [1-9]\d* bytes, from the stream/);
  });

  // A failure at any step leaves the live slot serving and its link untouched; the retry
  // after the fix succeeds. green (r2) is live now; new releases go to blue (idle, r1).
  const unchanged = async () => {
    for (const h of [h0, h1]) {
      assert.equal(await slotTarget(h, "green"), "releases/r2");
      assert.equal(await serves(h, "green"), "r2");
    }
  };

  it("failed fetch, bad checksum: nothing is unpacked", async () => {
    const a = await artifact("restyled");
    await fails(h1, w.values.fetch("blue", "r3", { ...a, sha256: "0".repeat(64) }), /checksum mismatch/);
    assert.equal(await sh(h1, `ls /srv/${APP}/releases`), "r1\nr2");
    await unchanged();
    await ok(h1, w.values.fetch("blue", "r3", a));
    assert.match(await sh(h1, `ls /srv/${APP}/releases`), /r3/);
  });

  it("failed fetch, hostile archive: a link or a path outside the release is refused before it is written", async () => {
    const dir = fs.mkdtempSync(path.join(out, "evil-"));
    fs.mkdirSync(path.join(dir, "app"));
    fs.symlinkSync("/etc", path.join(dir, "app", "etc"));
    fs.writeFileSync(path.join(dir, "manifest.json"), JSON.stringify({ python: "3.11" }));
    const file = path.join(out, "evil.tar.gz");
    execFileSync("tar", ["-czf", file, "-C", dir, "manifest.json", "app"]);
    const sha256 = execFileSync("sha256sum", [file]).toString().split(" ")[0];
    await uploadArtifact(s3, w.artifactBucket, artifactKey(sha256), file, sha256);
    await fails(
      h0,
      w.values.fetch("blue", "r3x", { key: artifactKey(sha256), sha256 }),
      /the artifact has a link, an absolute path or \.\. \(app\/etc\)/,
    );
    assert.equal(await sh(h0, `test -e /srv/${APP}/releases/r3x && echo yes || echo no`), "no");
    await unchanged();
  });

  it("failed fetch, wheels for another Python: refused from the manifest, before anything else is unpacked", async () => {
    const other = await siteArtifact("other-python", out);
    await uploadArtifact(s3, w.artifactBucket, artifactKey(other.sha256), other.file, other.sha256);
    await fails(
      h0,
      w.values.fetch("blue", "r3p", { key: artifactKey(other.sha256), sha256: other.sha256 }),
      /the wheels of the artifact are for Python 3\.12, this host runs Python 3\.11: build it again with npm run package-site/,
    );
    assert.equal(await sh(h0, `test -e /srv/${APP}/releases/r3p && echo yes || echo no`), "no");
    await unchanged();
  });

  it("an artifact's dangerous modes do not survive unpacking (setuid, world-writable, mode 000)", async () => {
    const base = await siteArtifact("base", out);
    const file = path.join(out, "modes.tar.gz");
    execFileSync(
      "/usr/bin/python3",
      [
        "-c",
        `
import io, sys, tarfile
src, dst = sys.argv[1:3]
with tarfile.open(src, "r:gz") as a, tarfile.open(dst, "w:gz") as b:
    for m in a:
        b.addfile(m, a.extractfile(m) if m.isreg() else None)
    def add(name, mode, data=None):
        t = tarfile.TarInfo(name)
        t.mode = mode
        if data is None:
            t.type = tarfile.DIRTYPE
            b.addfile(t)
        else:
            t.size = len(data)
            b.addfile(t, io.BytesIO(data))
    add("app/suid", 0o4755, b"#!/bin/sh\\n")
    add("app/sgid", 0o2775, b"x")
    add("app/gw", 0o666, b"z")
    add("app/wide", 0o1777)
    add("app/locked", 0o000)
    add("app/locked/inside", 0o666, b"y")
`,
        base.file,
        file,
      ],
      { stdio: "pipe" },
    );
    const sha256 = execFileSync("sha256sum", [file]).toString().split(" ")[0];
    await uploadArtifact(s3, w.artifactBucket, artifactKey(sha256), file, sha256);
    await ok(h0, w.values.fetch("blue", "r3m", { key: artifactKey(sha256), sha256 }));
    const r = `/srv/${APP}/releases/r3m`;
    assert.equal(
      await sh(h0, `cd ${r} && stat -c '%n %a' suid sgid gw wide locked locked/inside`),
      "suid 755\nsgid 755\ngw 644\nwide 755\nlocked 755\nlocked/inside 644",
    );
    assert.equal(
      await sh(h0, `find ${r}/ -path ${r}/staticfiles -prune -o -perm /7022 -not -type l -print | head -3`),
      "",
      "no special or group/world-writable mode",
    );
    await unchanged();
  });

  it("failed fetch, venv build: the release is not created, the broken venv is not kept", async () => {
    const bad = await artifact("missing-wheel");
    await fails(h0, w.values.fetch("blue", "r4", bad), /venv could not be built/);
    assert.equal(await sh(h0, `test -e /srv/${APP}/releases/r4 && echo yes || echo no`), "no");
    assert.equal(
      await sh(h0, `test -e /srv/${APP}/shared/venvs/${bad.lockHash}/.complete && echo yes || echo no`),
      "no",
    );
    await unchanged();
    const fixed = await artifact("new-lock");
    const f = await ok(h0, w.values.fetch("blue", "r4", fixed));
    assert.equal(f.venv, "built");
  });

  it("failed backup: an upload error fails the step before any migration; the live colour answers every request", async () => {
    await underLoad("backup", async () => {
      w.aws.failNext("PutObject", 10); // more than the CLI's retries
      await fails(h0, w.values.backup("r5"), /no backup: the dump, its upload or its check failed/);
      w.aws.clearFaults();
    });
    assert.deepEqual(
      w.aws.listKeys(w.backupBucket).filter((k) => k.includes("before-r5")),
      [],
      "a failed backup leaves no object that looks like one",
    );
    await unchanged();
    await ok(h0, w.values.backup("r5"));
  });

  it("failed migration: the migrate step fails, the slot is not activated; the live colour answers every request", async () => {
    const a = await artifact("bad-migration");
    const { result: failed } = await underLoad("fetch", async (load) => {
      await Promise.all([h0, h1].map(async (h) => ok(h, w.values.fetch("blue", "r6", a))));
      load.phase("backup");
      await ok(h0, w.values.backup("r6"));
      load.phase("migrate");
      // The app's output (its traceback) stays in the log on the host: the message shows
      // greenlight's own lines only, as migrate's stderr is secret.
      return fails(h0, w.values.migrate("r6"), /the migrate command failed/, {
        notInMessage: /this migration always fails|Traceback/,
      });
    });
    assert.match(failed.log, /RuntimeError: greenlight test: this migration always fails/);
    for (const h of [h0, h1]) assert.equal(await slotTarget(h, "blue"), "releases/r1");
    await unchanged();
    const { result: r } = await underLoad("fetch", (load) => release("blue", "r7", "fixed-migration", load));
    assert.deepEqual(r.migrate.applied, ["notes.0004_untitled_notes"]);
  });

  it("failed health check: a release that cannot start puts its slot back and fails", async () => {
    const a = await artifact("broken-app");
    await underLoad("fetch", async (load) => {
      await ok(h1, w.values.fetch("blue", "r8", a));
      load.phase("activate");
      await fails(h1, w.values.activate("blue", "r8", 15), /failed its health check/);
    });
    assert.equal(await slotTarget(h1, "blue"), "releases/r7", "back on the previous release");
    assert.equal(await serves(h1, "blue"), "r7");
    await unchanged();
    await ok(h1, w.values.fetch("blue", "r9", await artifact("restyled")));
    await ok(h1, w.values.activate("blue", "r9"));
    assert.equal(await serves(h1, "blue"), "r9");
  });

  it("a hung step is stopped at its limit on the host: its processes are gone, its lock is free, the live slot serves", async () => {
    // A migration that waits forever: another session holds django_migrations (showmigrations,
    // run as the app user through sudo, blocks on it) until the test lets it go.
    const holder = w.pg
      .query("BEGIN; LOCK TABLE django_migrations IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(300); COMMIT;\n", APP)
      .catch(() => "terminated");
    const held = async () =>
      (
        await w.pg.query(
          "select count(*) from pg_locks l join pg_class c on c.oid = l.relation where c.relname = 'django_migrations' and l.mode = 'AccessExclusiveLock' and l.granted",
          APP,
        )
      ).trim() === "1";
    for (let i = 0; !(await held()); i++) assert.ok(i < 100, "the lock was taken");
    const started = Date.now();
    // (r2 under the blue record: green's migrate of r2 is recorded, and a recorded step does not run again.)
    const r = await fails(h0, w.values.migrate("r2", "blue"), /timed out after 6 s/, { timeoutSeconds: 6 });
    const took = (Date.now() - started) / 1000;
    assert.ok(took < 6 + 25, `stopped within its limit and the grace (${took} s)`);
    assert.match(r.stderr, new RegExp(`^greenlight migrate timed out after 6 s on ${h0.name}`, "m"));
    assert.equal(await sh(h0, "pgrep -u app -f 'manage.py' || true"), "", "nothing the step started runs on");
    await w.pg.query(
      "select pg_terminate_backend(pid) from pg_stat_activity where query like '%pg_sleep(300)%' and pid <> pg_backend_pid()\n",
    );
    await holder;
    // The step's lock went with it: the next step takes it at once.
    const next = await run(h0, w.values.cleanup(20));
    assert.equal(next.code, 0, next.stderr);
    assert.doesNotMatch(await logOf(h0, next), /another greenlight step holds/);
    await unchanged();
  });

  it("two deploys on one host serialise on the app's lock", async () => {
    const [a, b] = await Promise.all([
      run(h0, w.values.fetch("blue", "r10", await artifact("base"))),
      run(h0, w.values.cleanup(20)),
    ]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    const logs = await Promise.all([a, b].map((r) => logOf(h0, r)));
    const waited = logs.filter((l) => /another greenlight step holds .*\.lock; waiting/.test(l));
    assert.equal(waited.length, 1, "exactly one of them waited for the other");
  });

  it("cleanup keeps the newest N and every slot's release, and the venvs they use", async () => {
    await ok(h1, w.values.activate("blue", "r1"));
    const before = (await sh(h1, `ls /srv/${APP}/releases`)).split("\n");
    assert.ok(before.length > 4, before.join(" "));
    const r = await ok(h1, w.values.cleanup(2));
    const after = (await sh(h1, `ls /srv/${APP}/releases`)).split("\n").sort();
    // green -> r2 and blue -> r1 (the oldest) stay; so do the two newest: r9 and r3/r4/r8 order by fetch time.
    assert.ok(after.includes("r1") && after.includes("r2"), after.join(" "));
    assert.equal(after.length, 4, `two newest + two slot targets: ${after.join(" ")}`);
    assert.deepEqual([...(r.kept as string[])].sort(), after);
    assert.deepEqual(r.notRemoved, []);
    const venvs = (await sh(h1, `ls /srv/${APP}/shared/venvs`)).split("\n");
    for (const rel of after) {
      const v = await sh(h1, `readlink /srv/${APP}/releases/${rel}/venv`);
      assert.ok(venvs.includes(path.basename(v)), `${rel}'s venv is kept`);
    }
    assert.equal(await serves(h1, "blue"), "r1");
  });

  it("a release id or value with shell metacharacters cannot inject", async () => {
    const a = await artifact("base");
    const tampered = (call: StepCall, values: Record<string, string>): StepCall => ({
      ...call,
      values: { ...call.values, ...values },
    });
    for (const [call, why] of [
      [w.values.fetch("blue", "$(touch /tmp/pwned)", a), /GL_RELEASE is not a release id/],
      [
        tampered(w.values.fetch("blue", "r11", a), { GL_ARTIFACT_KEY: "x;touch /tmp/pwned" }),
        /GL_ARTIFACT_KEY is not an S3 key/,
      ],
      [
        tampered(w.values.activate("blue", "r1"), { GL_SLOT: "blue';touch /tmp/pwned;'" }),
        /GL_SLOT is not blue or green/,
      ],
      [tampered(w.values.cleanup(2), { GL_APP: "site`touch /tmp/pwned`" }), /GL_APP is not an app name/],
      [tampered(w.values.cleanup(2), { "GL_X=1 GL_Y": "1" }), /not a greenlight variable name/],
    ] as const) {
      if (/variable name/.test(why.source)) {
        assert.throws(() => createCommand(call, { timeoutSeconds: 60 }), why);
        continue;
      }
      await fails(h0, call, why);
    }
    assert.equal(await sh(h0, "ls /tmp/pwned 2>/dev/null || echo absent"), "absent");
  });

  it("no secret appears in process arguments or in any step's output", async () => {
    const secrets = [w.secrets.dbPassword, w.secrets.secretKey, w.secrets.adminPath];
    // Watch every process on the host while a backup and a fetch (which renders .env) run.
    const seen = new Set<string>();
    let watching = true;
    const watcher = (async () => {
      for (let i = 0; watching && i < 2000; i++) {
        const ps = await h0.exec(["ps", "-eo", "args"]);
        for (const line of ps.stdout.split("\n")) seen.add(line);
      }
    })();
    await ok(h0, w.values.backup("r12"));
    await ok(h0, w.values.fetch("green", "r12", await artifact("restyled")));
    watching = false;
    await watcher;
    assert.ok(
      [...seen].some((l) => l.includes("greenlight")),
      "the watcher saw the steps",
    );
    for (const s of secrets) {
      for (const l of seen) assert.ok(!l.includes(s), "a secret in a process's arguments");
      for (const t of transcript) assert.ok(!t.includes(s), "a secret in a step's output");
    }
  });

  /** Restores `file` (a pg_dump) into a new database `db`, from the machine as the app's role over TLS. */
  const restoreInto = async (db: string, file: string) => {
    await w.pg.query(`create database ${db} owner ${APP}`);
    execFileSync(
      "pg_restore",
      ["--no-owner", "--exit-on-error", "-h", w.pg.host, "-p", String(w.pg.port), "-U", APP, "-d", db, file],
      { env: { PATH: "/usr/bin:/bin", PGPASSWORD: w.secrets.dbPassword, PGSSLMODE: "require" }, stdio: "pipe" },
    );
  };
  const maintenanceOnEverywhere = (reason: string) =>
    Promise.all([h0, h1].map((h) => ok(h, w.values.maintenance("on", reason))));
  const maintenanceOffEverywhere = () => Promise.all([h0, h1].map((h) => ok(h, w.values.maintenance("off"))));
  /** What a client of `host`'s slot gets: status, Retry-After and the body (a POST creates a note). */
  const answer = (host: RigHost, slot: Slot, p: string, method = "GET") =>
    new Promise<{ status: number; retryAfter?: string; body: string }>((resolve, reject) => {
      const form = method === "POST" ? Buffer.from("title=probe") : undefined;
      const headers: Record<string, string> = { host: SITE_HOST };
      if (form) {
        headers["content-type"] = "application/x-www-form-urlencoded";
        headers["content-length"] = String(form.length);
      }
      const req = http.request(`http://${host.ip}:${PORT[slot]}${p}`, { method, headers, timeout: 10_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            retryAfter: res.headers["retry-after"] as string | undefined,
            body: Buffer.concat(chunks).toString("utf8"),
          }),
        );
      });
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", reject);
      req.end(form);
    });

  it("restore runs under maintenance mode: only 503s with Retry-After meanwhile, and no acknowledged write is lost", async () => {
    const b = await ok(h0, w.values.backup("r13"));
    const reason = `restore ${String(b.key)}`;
    const { result: r, load } = await underLoad(
      "before",
      async (load) => {
        // Writes the restore discards: acknowledged after the backup it restores was taken.
        await until("writes after the backup", () => load.acknowledged().filter((a) => a.op === "create").length >= 10);
        load.phase("maintenance on");
        await maintenanceOnEverywhere(reason);
        load.phase("restore");
        const r = await ok(h0, w.values.restore(String(b.key), reason));
        load.forget(); // the rows it created are gone: it must not update them
        load.phase("maintenance off");
        await maintenanceOffEverywhere();
        load.phase("after");
        const n = load.count();
        await until("requests after maintenance", () => load.count() >= n + 30);
        return r;
      },
      { maintenance: ["maintenance on", "restore", "maintenance off"], closed: ["restore"] },
    );
    const safety = r.safetyBackup as { key: string };
    assert.match(safety.key, /before-restore\.dump$/);
    const dump = w.aws.getObject(w.backupBucket, safety.key);
    assert.ok(dump, "the safety backup is in the bucket");
    // Its work directories (the database password's pgpass file in them) went with it, the
    // safety backup's too.
    assert.equal(await sh(h0, "ls -A /var/tmp | grep '^\\.greenlight-' || true"), "", "no work directory is left");
    // Every write acknowledged before the window is in the safety dump, each row as its last
    // acknowledged write left it; the restore discarded them from the live database.
    const wrote = load.acknowledged().filter((a) => a.phase === "before" || a.phase === "maintenance on");
    assert.ok(wrote.length > 0);
    const file = path.join(out, "safety.dump");
    fs.writeFileSync(file, dump);
    await restoreInto("safetycheck", file);
    try {
      const rows = new Map(
        (await w.pg.query("select id || '|' || title from notes_note", "safetycheck"))
          .trim()
          .split("\n")
          .map((l) => [Number(l.slice(0, l.indexOf("|"))), l.slice(l.indexOf("|") + 1)] as const),
      );
      for (const a of wrote.filter((x) => x.id !== undefined)) {
        assert.ok(rows.has(a.id!), `acknowledged ${a.op} of note ${a.id} is in the safety dump`);
        const titles = wrote.filter((x) => x.id === a.id).map((x) => x.title);
        assert.ok(titles.includes(rows.get(a.id!)!), `note ${a.id} as its last acknowledged write left it`);
      }
    } finally {
      await w.pg.dropDatabase("safetycheck");
    }
    const live = new Set((await w.pg.query("select title from notes_note", APP)).trim().split("\n"));
    const created = wrote.filter((a) => a.op === "create").map((a) => a.title);
    assert.ok(
      created.every((t) => !live.has(t)),
      "the restore discarded the rows written after the backup it restored",
    );
    // A restore that fails leaves the data, and maintenance mode, as they were, and says so.
    const failed = await fails(h0, w.values.restore("db/none.dump", "restore db/none.dump"), /404|NoSuchKey|Not Found/);
    assert.match(failed.stderr, /Maintenance mode stays on \(restore db\/none\.dump\)/);
    assert.match(failed.stderr, /step\.sh maintenance GL_APP=site GL_MODE=off/);
    const closed = await answer(h0, "green", "/");
    assert.deepEqual([closed.status, closed.retryAfter], [503, "30"]);
    assert.match(closed.body, /Down for maintenance/);
    assert.equal((await answer(h0, "green", "/healthz")).body, "r2", "the health path still reaches the slot");
    await ok(h0, w.values.maintenance("off"));
    assert.equal((await answer(h0, "green", "/")).status, 200);
  });

  it("a release that breaks compatibility goes out under maintenance mode: only 503s with Retry-After, then 200s", async () => {
    const reason = "release r14";
    const a = await artifact("unsafe-column");
    const { result: migrated } = await underLoad(
      "fetch",
      async (load) => {
        await Promise.all([h0, h1].map((h) => ok(h, w.values.fetch("blue", "r14", a))));
        load.phase("maintenance on");
        await maintenanceOnEverywhere(reason);
        load.phase("backup");
        await ok(h0, w.values.backup("r14", "blue", reason));
        load.phase("migrate");
        const migrated = await ok(h0, w.values.migrate("r14", "blue", reason));
        load.phase("activate");
        await Promise.all([h0, h1].map((h) => ok(h, w.values.activate("blue", "r14", undefined, reason))));
        load.phase("cutover");
        await cutover("blue", "r14");
        load.phase("maintenance off");
        await maintenanceOffEverywhere();
        load.phase("after");
        const n = load.count();
        await until("requests after maintenance", () => load.count() >= n + 30);
        return migrated;
      },
      {
        maintenance: ["maintenance on", "maintenance off"].concat(["backup", "migrate", "activate", "cutover"]),
        closed: ["backup", "migrate", "activate", "cutover"],
      },
    );
    assert.deepEqual(migrated.applied, ["notes.0005_note_rank"]);
    for (const h of [h0, h1])
      assert.equal(await sh(h, `test -e /srv/${APP}/maintenance && echo on || echo off`), "off");
    // It did break compatibility: the previous release's writes fail now.
    const old = await answer(h0, "green", "/api/notes", "POST");
    assert.equal(old.status, 500, "r2 cannot insert into the new schema");
  });
});
