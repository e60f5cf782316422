// Stand-in for pulumi-tls (which cannot be built offline): PrivateKey, as ssh-keygen makes it.
// The program uses ED25519 keys for SSH host keys and the deploy key; every input replaces.
import { randomBytes } from "crypto";
import { generateHostKey } from "../hosts";
import { StandInProvider } from "./standIn";

export const tlsStandIn: StandInProvider = {
  version: "5.6.1",
  replaces: () => "all",
  secretOutputs: () => ["privateKeyOpenssh", "privateKeyPem", "privateKeyPemPkcs8"],
  async create(r, i) {
    if (r.type !== "tls:index/privateKey:PrivateKey") throw new Error(`the tls stand-in has no ${r.type}`);
    if (i.algorithm !== "ED25519")
      throw new Error(`the tls stand-in makes ED25519 keys only, not ${String(i.algorithm)}`);
    const k = generateHostKey();
    return {
      id: randomBytes(20).toString("hex"),
      outs: { privateKeyOpenssh: k.privateKey, publicKeyOpenssh: `${k.publicKey}\n` },
    };
  },
};
