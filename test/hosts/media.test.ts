// Media every host sees (issue 13): prod's shape, two hosts behind the load balancer, the site's
// uploads in the stack's media bucket (the S3 stand-in, held to the hosts' real role) through
// django-storages. Under the mixed load (test/rig/load.ts), an upload through host 0 is served by
// host 1 and through the load balancer; a backup names the media state that goes with its dump
// (a manifest of keys and versions next to it); a restore brings the database and media back
// to that state together, under maintenance mode.
import { S3Client } from "@aws-sdk/client-s3";
import * as assert from "assert";
import * as fs from "fs";
import * as http from "http";
import * as os from "os";
import * as path from "path";
import { StepCall } from "../../components/remote";
import { artifactKey } from "../../scripts/cli/lib/stack";
import { uploadArtifact } from "../../scripts/cli/lib/upload";
import { AlbStandIn, startAlbStandIn } from "../rig/albStandIn";
import { siteArtifact } from "../rig/artifacts";
import { MixedLoad, PhaseTally, underMixedLoad } from "../rig/load";
import { RigHost } from "../rig/hosts";
import { REGION, SITE_HOST, World, startWorld } from "../rig/world";

const PORT = { blue: 8001, green: 8002 } as const;
const FORWARD = 80;

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** One request with the site's Host header; `file` posts a multipart upload of it. */
function call(
  url: string,
  file?: { name: string; data: Buffer },
): Promise<{ status: number; body: Buffer; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { host: SITE_HOST };
    let payload: Buffer | undefined;
    if (file) {
      const boundary = "----greenlight-media-test";
      payload = Buffer.concat([
        Buffer.from(
          `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${file.name}"\r\n` +
            "Content-Type: application/octet-stream\r\n\r\n",
        ),
        file.data,
        Buffer.from(`\r\n--${boundary}--\r\n`),
      ]);
      headers["content-type"] = `multipart/form-data; boundary=${boundary}`;
      headers["content-length"] = String(payload.length);
    }
    const req = http.request(url, { method: file ? "POST" : "GET", headers, timeout: 15_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), headers: res.headers }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end(payload);
  });
}

describe("media shared by every host (prod shape: two hosts)", function () {
  this.timeout(600_000);
  let w: World;
  let h0: RigHost;
  let h1: RigHost;
  let alb: AlbStandIn;
  let s3: S3Client;
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "gl-mediatest-"));
  const loads: string[] = [];

  const ok = async (host: RigHost, step: StepCall) => {
    const r = await w.step(host, step);
    assert.equal(r.code, 0, `${step.step} on ${host.name} failed:\n${r.stderr.slice(-3000)}`);
    return JSON.parse(r.stdout.trim().split("\n").pop()!) as Record<string, unknown>;
  };
  const slot = (host: RigHost) => `http://${host.ip}:${PORT.blue}`;
  const upload = async (host: RigHost, name: string, data: Buffer) => {
    const r = await call(`${slot(host)}/api/uploads`, { name, data });
    assert.equal(r.status, 201, r.body.toString());
    return JSON.parse(r.body.toString()) as { name: string; url: string; size: number };
  };

  /** `body` under the mixed load through the load balancer; no read or write may fail but as `maintenance` allows. */
  const underLoad = async <T>(
    first: string,
    body: (load: MixedLoad) => Promise<T>,
    maintenance: string[] = [],
  ): Promise<{ result: T; phases: PhaseTally[] }> => {
    const { result, phases } = await underMixedLoad(
      {
        bases: [alb.url(FORWARD)!],
        host: SITE_HOST,
        reads: ["/"],
        update: (id) => `/api/notes/${id}`,
        concurrency: 3,
        maxRequests: 60_000,
        maxMs: 9 * 60_000,
        phase: first,
        label: `m${loads.length + 1}`,
      },
      body,
      { log: loads, maintenance },
    );
    return { result, phases };
  };

  before(async function () {
    this.timeout(900_000);
    w = await startWorld({ hosts: 2, prefix: "glm", subnetIndex: 43 });
    [h0, h1] = w.hosts;
    alb = startAlbStandIn({ intervalMs: 250 });
    alb.targetGroup("tg-blue", "/healthz");
    for (const h of [h0, h1]) alb.attach("tg-blue", h.ip, PORT.blue);
    s3 = new S3Client({
      region: REGION,
      endpoint: w.aws.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: "test", secretAccessKey: "test" },
    });
    const a = await siteArtifact("base", out);
    await uploadArtifact(s3, w.artifactBucket, artifactKey(a.sha256), a.file, a.sha256);
    const art = { key: artifactKey(a.sha256), sha256: a.sha256 };
    for (const h of [h0, h1]) await ok(h, w.values.bootstrap());
    await Promise.all([h0, h1].map((h) => ok(h, w.values.fetch("blue", "r1", art))));
    await ok(h0, w.values.backup("r1"));
    await ok(h0, w.values.migrate("r1"));
    await Promise.all([h0, h1].map((h) => ok(h, w.values.activate("blue", "r1"))));
    await until("both targets healthy", () => Object.values(alb.health("tg-blue")).every(Boolean));
    await alb.listen(FORWARD, "tg-blue", SITE_HOST);
  });

  after(async () => {
    if (loads.length) console.log(`    mixed load:\n${loads.join("\n---\n").replace(/^/gm, "      ")}`);
    await alb?.close();
    s3?.destroy();
    await w?.stop();
    fs.rmSync(out, { recursive: true, force: true });
  });

  let kept: { name: string; url: string };
  const keptData = Buffer.from("uploaded through host 0, before the backup\n");

  it("an upload through host 0 is served by host 1 and through the load balancer, under load", async () => {
    await underLoad("upload", async (load) => {
      kept = await upload(h0, "report.txt", keptData);
      assert.match(kept.url, /^\/media\/uploads\/report[^/]*\.txt$/);
      load.phase("serve");
      for (const base of [slot(h1), slot(h0), alb.url(FORWARD)!]) {
        const r = await call(`${base}${kept.url}`);
        assert.equal(r.status, 200, `${base}${kept.url}: ${r.status}`);
        assert.deepEqual(r.body, keptData);
        assert.equal(r.headers["content-security-policy"], "sandbox");
      }
      // A second upload of the same name gets a name of its own: nothing is overwritten.
      const again = await upload(h1, "report.txt", Buffer.from("another report"));
      assert.notEqual(again.name, kept.name);
      assert.deepEqual((await call(`${slot(h0)}${kept.url}`)).body, keptData);
    });
    assert.ok(w.aws.getObject(w.mediaBucket, kept.name), "the file is in the media bucket");
    for (const h of [h0, h1]) {
      const r = await h.exec(["bash", "-c", `find /srv/site/shared/media -type f | wc -l`]);
      assert.equal(r.stdout.trim(), "0", `nothing on ${h.name}'s disk`);
    }
  });

  it("a backup names the media state next to its dump, and a restore brings media back with the database", async () => {
    const b = await ok(h0, w.values.backup("r2"));
    const media = b.media as { key: string; objects: number };
    assert.equal(media.key, String(b.key).replace(/\.dump$/, ".media.json"));
    assert.equal(media.objects, 2);
    const manifest = JSON.parse(w.aws.getObject(w.backupBucket, media.key)!.toString()) as {
      bucket: string;
      objects: { key: string; versionId: string }[];
    };
    assert.equal(manifest.bucket, w.mediaBucket);
    assert.ok(manifest.objects.some((o) => o.key === kept.name && o.versionId));

    // After the backup: an upload (with a note that names it), which the restore discards.
    const late = await upload(h1, "late.txt", Buffer.from("after the backup"));
    const reason = `restore ${String(b.key)}`;
    const { result: r } = await underLoad(
      "before",
      async (load) => {
        load.phase("maintenance on");
        await Promise.all([h0, h1].map((h) => ok(h, w.values.maintenance("on", reason))));
        load.phase("restore");
        const restored = await ok(h0, w.values.restore(String(b.key), reason));
        load.forget();
        load.phase("maintenance off");
        await Promise.all([h0, h1].map((h) => ok(h, w.values.maintenance("off"))));
        load.phase("after");
        const n = load.count();
        await until("requests after maintenance", () => load.count() >= n + 30);
        return restored;
      },
      ["maintenance on", "restore", "maintenance off"],
    );
    assert.deepEqual(r.media, { manifest: media.key, objects: 2, copiedBack: 0, removed: 1 });
    const safety = r.safetyBackup as { media: { key: string; objects: number } };
    assert.equal(safety.media.objects, 3, "the safety backup names the upload the restore removes");
    for (const h of [h0, h1]) {
      assert.deepEqual((await call(`${slot(h)}${kept.url}`)).body, keptData, `${h.name} serves what the backup had`);
      assert.equal((await call(`${slot(h)}${late.url}`)).status, 404, `${h.name}: the later upload is gone`);
    }
    // Hidden, not destroyed: its version is still in the bucket, named by the safety backup.
    const safetyManifest = JSON.parse(w.aws.getObject(w.backupBucket, safety.media.key)!.toString()) as {
      objects: { key: string }[];
    };
    assert.ok(safetyManifest.objects.some((o) => o.key === late.name));
  });
});
