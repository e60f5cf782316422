// The hosts' installer in the artifact (scripts/cli/lib/installer.ts): a cached uv wheel is used
// only when it is the pinned one, and when none can be had the artifact goes without it (fetch
// then builds with pip), with a note that says so. No network: pip is a stand-in that fails.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { UV, installerWheel } from "../../scripts/cli/lib/installer";

describe("the uv wheel for the artifact", () => {
  let dir: string;
  const saved = { cache: process.env.GREENLIGHT_TOOLS_CACHE, installer: process.env.GREENLIGHT_INSTALLER };
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "gl-installer-"));
    process.env.GREENLIGHT_TOOLS_CACHE = path.join(dir, "tools");
    delete process.env.GREENLIGHT_INSTALLER;
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
    for (const [k, v] of [
      ["GREENLIGHT_TOOLS_CACHE", saved.cache],
      ["GREENLIGHT_INSTALLER", saved.installer],
    ] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
  const opts = (notes: string[]) => ({
    python: "/nonexistent/python3", // any download attempt fails
    cacheDir: path.join(dir, "wheels"),
    scratch: dir,
    note: (m: string) => notes.push(m),
  });

  it("GREENLIGHT_INSTALLER=pip: no wheel, and a note that the hosts build with pip", async () => {
    process.env.GREENLIGHT_INSTALLER = "pip";
    const notes: string[] = [];
    assert.equal(await installerWheel(opts(notes)), undefined);
    assert.match(notes.join("\n"), /GREENLIGHT_INSTALLER=pip.*pip/);
  });

  it("a cached file that is not the pinned wheel is not used; without a download the artifact goes without", async () => {
    fs.mkdirSync(process.env.GREENLIGHT_TOOLS_CACHE!, { recursive: true });
    fs.writeFileSync(path.join(process.env.GREENLIGHT_TOOLS_CACHE!, UV.filename), "not uv");
    const notes: string[] = [];
    assert.equal(await installerWheel(opts(notes)), undefined);
    assert.match(notes.join("\n"), new RegExp(`no uv ${UV.version.replace(/\./g, "\\.")} wheel.*build venvs with pip`));
  });

  it("pins a PyPI wheel by version and sha256 for the hosts' platform", () => {
    assert.match(
      UV.filename,
      new RegExp(`^uv-${UV.version.replace(/\./g, "\\.")}-py3-none-manylinux[\\w.]*x86_64\\.whl$`),
    );
    assert.match(UV.sha256, /^[0-9a-f]{64}$/);
  });
});
