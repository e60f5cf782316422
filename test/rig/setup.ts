// `npm test`'s first step (pretest): the Debian packages the lint, site, host and end-to-end
// tests need. As root it installs what is missing (CI runs as root on a fresh Debian);
// otherwise it stops at once, naming what is missing and the apt-get line that installs it.
import { ensureHostPrerequisites } from "./prereqs";

try {
  ensureHostPrerequisites({ log: (line) => console.log(line) });
  console.log("test prerequisites: ok");
} catch (e) {
  console.error(`test prerequisites: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
}
