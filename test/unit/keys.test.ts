// Issue 11, item 9: the deploy key is not the admin (sudo) key. Hosts authorise only the
// admin key for `admin`; the bastion also lets the deploy key jump, and only jump.
import * as assert from "assert";
import { parse } from "yaml";
import { ADMIN_USER, DEPLOY_USER, JUMP_ONLY } from "../../components/hosts";
import { ProgramRun, Registered, reveal } from "../rig/program";
import { byName, evaluate, slot } from "./fakeEngine";

type Conn = { user: string; privateKey: string; proxy?: { user: string; privateKey: string } };

describe("SSH keys: deploy and admin are separate", () => {
  const runs: Record<string, ProgramRun> = {};
  before(async () => {
    runs.qa = await evaluate("qa", slot("blue", "r1"));
    runs.prod = await evaluate("prod", slot("blue", "r1"));
  });
  const key = (stack: string, which: "deploy" | "admin") => {
    const state = byName(runs[stack], `${stack}-host-${which}-key`).state!;
    return { pub: String(state.publicKeyOpenssh).trim(), priv: String(state.privateKeyOpenssh) };
  };
  const authorised = (r: Registered) =>
    (parse(reveal<Record<string, string>>(r.inputs).userData) as { ssh_authorized_keys: string[] }).ssh_authorized_keys;

  for (const stack of ["qa", "prod"]) {
    it(`${stack}: hosts authorise the admin key for admin, and the deploy key nowhere in user data`, () => {
      const [admin, deploy] = [key(stack, "admin"), key(stack, "deploy")];
      assert.notEqual(admin.pub, deploy.pub);
      const hosts = runs[stack].resources.filter(
        (r) => r.type === "aws:ec2/instance:Instance" && !/bastion/.test(r.name),
      );
      assert.ok(hosts.length >= 1);
      for (const h of hosts) assert.deepEqual(authorised(h), [admin.pub], h.name);
    });

    it(`${stack}: the bootstrap connects as admin with the admin key, every release step as deploy with the deploy key`, () => {
      const [admin, deploy] = [key(stack, "admin"), key(stack, "deploy")];
      const commands = runs[stack].resources.filter((r) => r.type === "command:remote:Command");
      assert.ok(commands.some((c) => /bootstrap/.test(c.name)) && commands.some((c) => /fetch/.test(c.name)));
      for (const c of commands) {
        const conn = reveal<{ connection: Conn }>(c.inputs).connection;
        if (/bootstrap/.test(c.name)) {
          assert.equal(conn.user, ADMIN_USER, c.name);
          assert.equal(conn.privateKey, admin.priv, c.name);
        } else {
          assert.equal(conn.user, DEPLOY_USER, c.name);
          assert.equal(conn.privateKey, deploy.priv, `${c.name} runs with the deploy key`);
        }
        if (conn.proxy) assert.equal(conn.proxy.privateKey, deploy.priv, `${c.name}: jumps with the deploy key`);
      }
    });

    it(`${stack}: both private keys are secret outputs, and different`, () => {
      const run = runs[stack];
      assert.ok(run.secretOutputs.includes("sshPrivateKey") && run.secretOutputs.includes("adminSshPrivateKey"));
      assert.equal(run.outputs.sshPrivateKey, key(stack, "deploy").priv);
      assert.equal(run.outputs.adminSshPrivateKey, key(stack, "admin").priv);
    });
  }

  it("prod's bastion: admin key for admin; the deploy key may only forward (no shell, no command)", () => {
    const [admin, deploy] = [key("prod", "admin"), key("prod", "deploy")];
    const keys = authorised(byName(runs.prod, "prod-host-bastion"));
    assert.deepEqual(keys, [`${JUMP_ONLY} ${deploy.pub}`, admin.pub]);
    assert.match(JUMP_ONLY, /^restrict,/, "restrict first: no pty, agent or X11 forwarding");
    assert.match(JUMP_ONLY, /command="\/usr\/sbin\/nologin"/, "any session runs nologin instead");
  });
});
