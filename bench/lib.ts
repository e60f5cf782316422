// Small helpers the benchmark sections share: timing, medians, the machine's description and
// progress lines. Nothing here asserts: a benchmark measures and reports.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";

const begun = Date.now();

/** Progress on stderr, stamped with the time since the benchmark started. */
export function progress(line: string): void {
  const s = Math.floor((Date.now() - begun) / 1000);
  const stamp = `${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
  process.stderr.write(`[${stamp}] ${line}\n`);
}

/** Wall time of `body` in milliseconds (high resolution), with its result. */
export async function timed<T>(body: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t = process.hrtime.bigint();
  const value = await body();
  return { ms: Number(process.hrtime.bigint() - t) / 1e6, value };
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export const seconds = (ms: number, digits = 2) => `${(ms / 1000).toFixed(digits)} s`;
export const pct = (x: number, digits = 1) => `${(x * 100).toFixed(digits)}%`;
export const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`;
/** "3.1 s (2.9-3.4)": the median and the range of the runs. */
export const spread = (xs: number[]) =>
  `${seconds(median(xs))} (${(Math.min(...xs) / 1000).toFixed(2)}-${(Math.max(...xs) / 1000).toFixed(2)})`;

export interface Machine {
  cpu: string;
  cores: number;
  memory: string;
  kernel: string;
  os: string;
  node: string;
  date: string;
  /** The machine is shared: its load when the benchmark started says how noisy the figures are. */
  loadAtStart: string;
}

export function machine(): Machine {
  const cpuinfo = fs.readFileSync("/proc/cpuinfo", "utf8");
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model ?? "unknown";
  let osName = `${os.type()} ${os.release()}`;
  try {
    osName = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(fs.readFileSync("/etc/os-release", "utf8"))?.[1] ?? osName;
  } catch {
    // keep the kernel's name
  }
  let cores = os.cpus().length;
  try {
    // What this process may use (cgroups, affinity), which is what the figures ran on.
    cores = Number(execFileSync("nproc", { encoding: "utf8" }).trim()) || cores;
  } catch {
    // os.cpus() it is
  }
  return {
    cpu: model,
    cores,
    memory: `${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    kernel: `${os.type()} ${os.release()} ${os.arch()}`,
    os: osName,
    node: process.version,
    date: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    loadAtStart: os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(" / "),
  };
}

/** Stop functions, run newest first, once, whether the benchmark ends well or not. */
export class Stops {
  private readonly fns: { what: string; fn: () => Promise<unknown> | unknown }[] = [];

  add(what: string, fn: () => Promise<unknown> | unknown): void {
    this.fns.push({ what, fn });
  }

  async runAll(): Promise<void> {
    while (this.fns.length) {
      const { what, fn } = this.fns.pop()!;
      try {
        await fn();
      } catch (e) {
        progress(`stopping ${what} failed: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The API's list in the load, capped: the notes the load's writes add do not make it heavier. */
export const LIST = "/api/notes?limit=20";
