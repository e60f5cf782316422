// Stand-in for pulumi-random (which cannot be built offline: see scripts/dev/pulumi-toolchain.sh):
// RandomPassword, RandomString and RandomId, generated from node's CSPRNG with the same inputs.
// Every input of a random resource forces a new value, as in the real provider.
import { randomBytes, randomInt } from "crypto";
import { StandInProvider } from "./standIn";
import { Props } from "./wire";

const LOWER = "abcdefghijklmnopqrstuvwxyz";
const UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS = "0123456789";
const SPECIAL = "!@#$%&*()-_=+[]{}<>:?";

function randomText(i: Props): string {
  const classes: [string, number][] = [];
  if (i.lower !== false) classes.push([LOWER, Number(i.minLower ?? 0)]);
  if (i.upper !== false) classes.push([UPPER, Number(i.minUpper ?? 0)]);
  if (i.numeric !== false && i.number !== false) classes.push([DIGITS, Number(i.minNumeric ?? 0)]);
  if (i.special !== false) classes.push([String(i.overrideSpecial ?? SPECIAL), Number(i.minSpecial ?? 0)]);
  const alphabet = classes.map(([a]) => a).join("");
  const length = Number(i.length);
  if (!alphabet || !(length > 0)) throw new Error("random: an empty alphabet or length");
  const chars: string[] = [];
  for (const [a, min] of classes) for (let n = 0; n < min; n++) chars.push(a[randomInt(a.length)]);
  while (chars.length < length) chars.push(alphabet[randomInt(alphabet.length)]);
  for (let k = chars.length - 1; k > 0; k--) {
    const j = randomInt(k + 1);
    [chars[k], chars[j]] = [chars[j], chars[k]];
  }
  return chars.join("");
}

export const randomStandIn: StandInProvider = {
  version: "4.21.2",
  replaces: () => "all",
  secretOutputs: (type) => (type === "random:index/randomPassword:RandomPassword" ? ["result", "bcryptHash"] : []),
  async create(r, i) {
    const id = randomBytes(8).toString("hex");
    switch (r.type) {
      case "random:index/randomPassword:RandomPassword":
      case "random:index/randomString:RandomString":
        return { id, outs: { result: randomText(i) } };
      case "random:index/randomId:RandomId": {
        const b = randomBytes(Number(i.byteLength));
        const hex = b.toString("hex");
        return {
          id: b.toString("base64url"),
          outs: {
            hex,
            b64Url: b.toString("base64url"),
            b64Std: b.toString("base64"),
            dec: BigInt(`0x${hex}`).toString(),
          },
        };
      }
      default:
        throw new Error(`the random stand-in has no ${r.type}`);
    }
  },
};
