// The rig's mixed read/write load (test/rig/load.ts) against a small server on 127.0.0.1: what
// it counts, in which phase, and that it stops by itself and talks only to allowed addresses.
import * as assert from "assert";
import * as http from "http";
import { AddressInfo } from "net";
import { MAINTENANCE, checkTarget, describeTallies, startMixedLoad } from "../rig/load";

interface Site {
  base: string;
  failWrites: boolean;
  created: number;
  updated: Set<number>;
  bodies: string[];
  close(): Promise<void>;
}

async function site(): Promise<Site> {
  const s: Partial<Site> = { failWrites: false, created: 0, updated: new Set(), bodies: [] };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (req.url === "/slow") return; // never answers: the client's timeout decides
      if (req.method === "GET" && req.url === "/json") {
        res.end(JSON.stringify({ release: "r7", notes: [] }));
      } else if (req.method === "GET") {
        res.end("ok");
      } else if (s.failWrites) {
        res.writeHead(500).end("broken");
      } else {
        s.bodies!.push(Buffer.concat(chunks).toString());
        const m = /^\/api\/notes\/(\d+)$/.exec(req.url ?? "");
        if (m) {
          s.updated!.add(Number(m[1]));
          res.end("{}");
        } else {
          res.writeHead(201, { "content-type": "application/json" }).end(JSON.stringify({ id: ++s.created! }));
        }
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  s.base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  s.close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return s as Site;
}

/** Polls (bounded) until `cond` holds. */
async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("rig mixed load", () => {
  it("sends reads and writes, and counts each failure in the phase it happened in", async () => {
    const s = await site();
    try {
      const load = startMixedLoad({ bases: [s.base], reads: ["/", "/api/notes"], phase: "fetch", concurrency: 3 });
      await until("fetch-phase traffic", () => load.count() >= 60);
      load.phase("migrate");
      s.failWrites = true;
      await until("migrate-phase traffic", () => load.count() >= 60);
      s.failWrites = false;
      load.phase("cutover");
      await until("cutover-phase traffic", () => load.count() >= 60);
      const phases = await load.stop();
      assert.deepEqual(
        phases.map((p) => p.phase),
        ["fetch", "migrate", "cutover"],
      );
      const [fetch, migrate, cutover] = phases;
      assert.ok(fetch.read.ok > 0 && fetch.write.ok > 0, describeTallies(phases));
      assert.equal(fetch.write.failed + fetch.read.failed, 0, describeTallies(phases));
      assert.ok(migrate.write.failed > 0, describeTallies(phases));
      assert.deepEqual(Object.keys(migrate.write.reasons), ["500"]);
      assert.equal(migrate.read.failed, 0, "reads kept working");
      // A write in flight at the phase change may land on either side; after it, none fails.
      assert.ok(cutover.write.failed <= 3, describeTallies(phases));
      assert.ok(s.created > 0 && s.bodies.every((b) => /^title=load\+\d+&body=by\+client\+\d$/.test(b)));
    } finally {
      await s.close();
    }
  });

  it("updates rows it created when the site has an update path", async () => {
    const s = await site();
    try {
      const load = startMixedLoad({
        bases: [s.base],
        reads: ["/"],
        update: (id) => `/api/notes/${id}`,
        concurrency: 2,
        writeEvery: 1,
      });
      await until("updates", () => s.updated.size >= 3);
      const phases = await load.stop();
      assert.ok([...s.updated].every((id) => id >= 1 && id <= s.created));
      assert.equal(phases[0].write.failed, 0);
    } finally {
      await s.close();
    }
  });

  it("tells a 503 with Retry-After (maintenance) from other failures, and keeps the acknowledged writes", async () => {
    let closed = true;
    const server = http.createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        if (closed) res.writeHead(503, { "retry-after": "30" }).end("down for maintenance");
        else if (req.method === "POST") res.writeHead(201).end(JSON.stringify({ id: 7 }));
        else res.writeHead(503).end("no retry-after: a plain failure");
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const load = startMixedLoad({ bases: [base], reads: ["/"], phase: "window", concurrency: 2, label: "t" });
      await until("maintenance answers", () => load.count() >= 30);
      assert.equal(load.phase("window").phase, "window", "the same phase again changes nothing");
      closed = false;
      load.phase("open");
      await until("open traffic", () => load.count() >= 30);
      const [window, open] = await load.stop();
      assert.deepEqual(Object.keys(window.read.reasons), [MAINTENANCE]);
      assert.equal(window.read.ok + window.write.ok, 0);
      assert.ok((open.read.reasons["503"] ?? 0) > 0, "a 503 without Retry-After is an ordinary failure");
      const acked = load.acknowledged();
      assert.ok(acked.length > 0 && acked.every((a) => a.phase === "open" && a.id === 7 && /^t \d+$/.test(a.title)));
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it("counts a timeout as a failure", async () => {
    const s = await site();
    try {
      const load = startMixedLoad({
        bases: [s.base],
        reads: ["/slow"],
        timeoutMs: 100,
        concurrency: 1,
        writeEvery: 100,
      });
      await until("a timeout", () => load.count() >= 2);
      const [p] = await load.stop();
      assert.ok((p.read.reasons.timeout ?? 0) >= 2, describeTallies([p]));
    } finally {
      await s.close();
    }
  });

  it("stops by itself at its bound", async () => {
    const s = await site();
    try {
      const load = startMixedLoad({ bases: [s.base], reads: ["/"], maxRequests: 50, concurrency: 4 });
      await until("the bound", () => load.bounded);
      const [p] = await load.stop();
      assert.equal(p.read.ok + p.write.ok + p.read.failed + p.write.failed, 50);
    } finally {
      await s.close();
    }
  });

  it("says which release answered the reads, and when each failure happened and of what kind", async () => {
    const s = await site();
    try {
      const t0 = Date.now();
      const load = startMixedLoad({ bases: [s.base], reads: ["/json", "/"], concurrency: 2 });
      await until("reads of both paths", () => load.count() >= 40);
      s.failWrites = true;
      load.phase("broken");
      await until("failed writes", () => load.count() >= 40);
      const [ok, broken] = await load.stop();
      assert.ok(ok.releases.r7 > 0 && ok.releases.ok > 0, JSON.stringify(ok.releases));
      assert.ok(ok.paths["/json"] > 0 && ok.paths["/api/notes"] > 0, JSON.stringify(ok.paths));
      assert.ok(broken.failures.length > 0);
      for (const f of broken.failures) {
        assert.equal(f.kind, "write");
        assert.equal(f.reason, "500");
        assert.ok(f.at >= t0 && f.at <= Date.now());
      }
      assert.equal(broken.failures.length, broken.write.failed + broken.read.failed);
    } finally {
      await s.close();
    }
  });

  it("paces its clients when given a rate, and until() waits for a count", async () => {
    const s = await site();
    try {
      const load = startMixedLoad({ bases: [s.base], reads: ["/"], concurrency: 2, ratePerClient: 10 });
      const started = Date.now();
      await load.until(6);
      const [p] = await load.stop();
      const ms = Date.now() - started;
      const n = p.read.ok + p.write.ok;
      assert.ok(n >= 6, `until(6) returned after ${n} requests`);
      // Unpaced, two clients on loopback send hundreds in this time; paced, about 10/s each.
      assert.ok(n <= 2 * (10 * (ms / 1000) + 2), `${n} requests in ${ms} ms at 2 x 10/s`);
    } finally {
      await s.close();
    }
  });

  it("talks only to loopback or the rig's named test hosts", () => {
    assert.throws(() => checkTarget("http://10.0.0.1:8001"), /not a loopback address/);
    assert.throws(() => checkTarget("http://192.168.1.10/"), /not a loopback address/);
    assert.throws(() => checkTarget("http://example.com/"), /not a loopback address/);
    assert.throws(() => checkTarget("https://127.0.0.1/"), /only http/);
    assert.equal(checkTarget("http://127.0.0.5:8001").hostname, "127.0.0.5");
    assert.equal(checkTarget("http://[::1]:8001").port, "8001");
    assert.equal(checkTarget("http://10.77.0.2:8001", ["10.77.0.2"]).hostname, "10.77.0.2");
    assert.throws(() => startMixedLoad({ bases: ["http://10.0.0.1"], reads: ["/"] }), /not a loopback/);
  });
});
