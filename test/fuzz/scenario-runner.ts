// One fuzz run: its connections at once, then what must hold once they are over.
import { type Auditor, type Drift, sameDrift } from './auditor.js';
import { MiB } from './config.js';
import { type DriverTarget, runConnection } from './driver.js';
import { count } from './ledger.js';
import { type MemoryRecord, type MemorySampler, gc, mib } from './memory.js';
import type { ConnectionPlan } from './plan.js';

/**
 * Bytes (`external`: Buffers and ArrayBuffers, where the server's chunk buffers, read buffers and
 * queued replies live) one run may add. The server's own share is small by design (a 1 MiB chunk
 * budget; per connection a 64 KiB read buffer, one control frame, and replies to what it has read
 * before it stops reading a client that does not read); this test's client allocates next to
 * nothing per byte received. Runs measured under 7 MiB when nothing is held.
 */
const runExternalBoundBytes = 32 * MiB;

/** What the runs play against, and what they are judged by besides their connections' own findings. */
export interface RunWatch {
  port: number;
  auditor: Auditor;
  sampler: MemorySampler;
  /** The memory before the fuzz: a run that starts far above it collects garbage first. */
  memory: MemoryRecord;
  /** Error-level server log lines (an EINTERNAL reply logs one): each is a bug the fuzzer found. */
  serverErrors: readonly string[];
  /** Exceptions nobody caught, in the server or in this test. */
  uncaught: readonly string[];
}

/** Runs scenarios one after another against one server; a run that finds a problem throws (fast-check then shrinks it). */
export class ScenarioRunner {
  readonly #watch: RunWatch;
  readonly #target: DriverTarget;
  /** The drift as the last run left it, once settled: the next run's baseline. */
  #settledDrift: Drift | undefined;

  constructor(watch: RunWatch) {
    this.#watch = watch;
    this.#target = { port: watch.port, auditor: watch.auditor, sampleMemory: () => watch.sampler.sample() };
  }

  readonly run = async (plans: ConnectionPlan[]): Promise<void> => {
    const { auditor, sampler, serverErrors, uncaught } = this.#watch;
    const baseline = this.#watch.memory.baseline;
    const run = count('runs');
    // V8 lets garbage pile up in proportion to the heap (here about 140 MiB, mostly tap's
    // TypeScript loader) before it collects: a full GC now and then keeps that out of the peaks.
    // Buffers an earlier run let go of count in `external` until they are collected: a run starts
    // from a clean figure, or a replay of a failing run (when fast-check shrinks it) would not fail.
    const external = process.memoryUsage().external;
    if (run % 25 === 0 || (baseline && external > baseline.external + 16 * MiB)) gc?.();
    const errorsBefore = serverErrors.length;
    const uncaughtBefore = uncaught.length;
    const before = this.#settledDrift ?? (await auditor.drift());
    const externalBefore = sampler.startRun();
    const connections = await Promise.all(plans.map((plan, index) => runConnection(plan, `connection ${index}`, this.#target)));
    sampler.sample();
    const problems = connections.flatMap((connection) => connection.problems.map((problem) => `${connection.label}: ${problem}`));
    const grown = sampler.runPeakExternal - externalBefore;
    if (grown > runExternalBoundBytes) {
      // FOUND BY THIS TEST: the server dispatched every request of one 64 KiB read before it could
      // notice that the client does not read, and queued all their replies: a burst of ~1,400
      // `log` requests queued ~1,400 full log pages. Now at most 16 requests are served at once.
      problems.push(`memory (external) grew by ${mib(grown)} during this run (bound ${mib(runExternalBoundBytes)})`);
    }
    const held = await auditor.released();
    if (held) problems.push(held);
    let after = await auditor.drift();
    if (typeof before !== 'string' && typeof after !== 'string' && !sameDrift(after, before)) after = await auditor.driftBack(before);
    if (typeof after !== 'string') this.#settledDrift = after;
    if (typeof before === 'string' || typeof after === 'string') {
      problems.push(`auditing the listing failed: ${JSON.stringify(before)} ${JSON.stringify(after)}`);
    } else if (!sameDrift(after, before)) {
      // FOUND BY THIS TEST: two deletes of one name in flight at once both succeeded, and info's
      // file count and byte total dropped twice; the byte total also feeds the storage quota.
      problems.push(
        `info no longer agrees with list: info minus list went from ${before.files} files, ${before.bytes} bytes to ${after.files} files, ${after.bytes} bytes`,
      );
    }
    for (const line of serverErrors.slice(errorsBefore)) problems.push(`the server logged an error: ${line.slice(0, 2000)}`);
    for (const error of uncaught.slice(uncaughtBefore)) problems.push(`uncaught exception: ${error.slice(0, 2000)}`);
    if (problems.length > 0)
      throw new Error(`${problems.join('\n')}\n${connections.map((connection) => connection.describe()).join('\n')}`);
  };
}
