// Names and formats shared by the program, the remote scripts' callers and the CLIs. Plain
// values only: the CLIs import this without loading the Pulumi SDK.
export const PROJECT = "greenlight";
export const COLOURS = ["blue", "green"] as const;
export type Colour = (typeof COLOURS)[number];
/** Each colour runs on every host as its own slot, behind nginx on its own port. */
export const SLOT_PORTS: Record<Colour, number> = { blue: 8001, green: 8002 };
/**
 * Tags by which tools find resources in `pulumi stack export`, never by their names: a target
 * group's colour, and a listener's role (`live` forwards to the live colour, `test` to the idle
 * one, `redirect` sends HTTP to HTTPS).
 */
export const COLOUR_TAG = "colour";
export const LISTENER_TAG = "greenlight:listener";
export const otherColour = (c: Colour): Colour => (c === "blue" ? "green" : "blue");

export const RELEASE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const SHA256 = /^[0-9a-f]{64}$/;
export const ARTIFACT_KEY = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}$/;
