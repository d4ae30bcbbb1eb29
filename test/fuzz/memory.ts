// Memory: sampled all along a run; retained growth measured after a full GC.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { MiB } from './config.js';

/** `gc()` without --expose-gc on the command line (tap starts node itself). */
function loadGc(): (() => void) | undefined {
  try {
    setFlagsFromString('--expose-gc');
    return runInNewContext('gc') as () => void;
  } catch {
    return undefined;
  }
}
export const gc = loadGc();

export interface MemoryPeak {
  rss: number;
  heapUsed: number;
  external: number;
}

export class MemorySampler {
  readonly peak: MemoryPeak = { rss: 0, heapUsed: 0, external: 0 };
  /** Highest `external` since `startRun()`. */
  runPeakExternal = 0;
  readonly #timer: NodeJS.Timeout;

  constructor(intervalMs: number) {
    this.sample();
    this.#timer = setInterval(() => this.sample(), intervalMs);
    this.#timer.unref();
  }

  /** Starts a run's own peak; returns `external` now. */
  startRun(): number {
    this.runPeakExternal = 0;
    this.sample();
    return this.runPeakExternal;
  }

  sample(): void {
    const usage = process.memoryUsage();
    this.peak.rss = Math.max(this.peak.rss, usage.rss);
    this.peak.heapUsed = Math.max(this.peak.heapUsed, usage.heapUsed);
    this.peak.external = Math.max(this.peak.external, usage.external);
    this.runPeakExternal = Math.max(this.runPeakExternal, usage.external);
  }

  stop(): void {
    clearInterval(this.#timer);
    this.sample();
  }
}

export function settledMemory(): NodeJS.MemoryUsage {
  gc?.();
  gc?.();
  return process.memoryUsage();
}

export const mib = (bytes: number): string => `${(bytes / MiB).toFixed(1)} MiB`;

/** The process's memory before the fuzz (after the warm-up, settled) and its peaks during it. */
export interface MemoryRecord {
  baseline: NodeJS.MemoryUsage | undefined;
  peak: MemoryPeak | undefined;
}
