// Root hooks for the site tests: whatever a failing test left running or on disk goes here.
import { cleanup } from "./helpers";

export const mochaHooks = {
  async afterAll(): Promise<void> {
    await cleanup();
  },
};
