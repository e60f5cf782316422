// `npm run rehearse -- --stack qa --artifact FILE --release ID` with the example site's own
// artifact, as a user runs it with theirs: the first release through the real program under
// the real Pulumi CLI (fetch, check, backup, migrate, activate, cutover), then the health path
// and / through the load balancer stand-in, and everything stopped.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ArtifactRehearsalResult, rehearseArtifact } from "../rig/artifactRehearsal";
import { siteArtifact } from "../rig/artifacts";

describe("rehearsal of a user's artifact (qa, the first release, real Pulumi CLI)", function () {
  this.timeout(20 * 60_000);
  const lines: string[] = [];
  let result: ArtifactRehearsalResult;
  let work: string;

  before(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), "gl-own-artifact-"));
    const a = await siteArtifact("base", work);
    result = await rehearseArtifact({ stack: "qa", artifact: a.file, release: "mine-1", log: (l) => lines.push(l) });
  });
  after(() => fs.rmSync(work, { recursive: true, force: true }));

  it("deploys it through fetch, check, backup, migrate (once), activate and serves it: health path and /", () => {
    const failed = result.checks.filter((c) => !c.ok).map((c) => `${c.what} ${c.detail ?? ""}`);
    assert.deepEqual(failed, [], lines.join("\n"));
    assert.ok(result.ok);
    assert.equal(result.release, "mine-1");
    const kinds = result.steps.map((s) => s.kind);
    for (const k of ["fetch", "check", "backup", "migrate", "activate"]) assert.ok(kinds.includes(k), kinds.join(" "));
    assert.ok(
      kinds.indexOf("backup") < kinds.indexOf("migrate") && kinds.indexOf("migrate") < kinds.indexOf("activate"),
    );
    // The example's / links no static file (a site whose / does is fetched one more GET).
    assert.deepEqual(
      result.served.map((s) => [s.path, s.status]),
      [
        ["/healthz", 200],
        ["/", 200],
      ],
    );
    assert.equal(result.served[0].body, "mine-1");
  });

  it("prints per step what it said, and stops everything it started", () => {
    const migrate = result.steps.find((s) => s.kind === "migrate")!;
    assert.match(migrate.said, /notes\.0001_initial/, "migrate says what it applied");
    assert.ok(
      lines.some((l) => /^ {3}ok {4} migrate: \{"release":"mine-1","applied":\[\d+: /.test(l)),
      lines.join("\n"),
    );
    assert.ok(
      lines.some((l) => /^ {3}ok {4} fetch on h0: .*"release":"mine-1"/.test(l)),
      lines.join("\n"),
    );
    assert.ok(lines.some((l) => l.includes("stopped every process")));
    assert.match(lines[lines.length - 1], /^\n?rehearsal of site-base\.tar\.gz \(release mine-1\) passed in /);
  });
});
