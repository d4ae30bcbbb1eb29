/**
 * Many processes at once (issue 15): 32 `ferry upload` commands started together, 32 MiB each, as
 * people script parallel uploads, against 32 `rsync` commands to the rsync daemon in the same
 * run. Every process pays its own start-up, login and connection. Data on tmpfs (both sides
 * CPU-bound), pairs alternating which goes first; the aggregate is all bytes over the wall time
 * from the first start to the last exit.
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { type BenchContext, log } from '../lib/context.js';
import { expectSuccess, runCommand } from '../lib/children.js';
import { runFerryCli } from '../lib/ferry-cli.js';
import { makeTempDir, removeDir, tmpfsAvailable } from '../lib/files.js';
import { makeRemoteDir, startRsyncDaemon, which } from '../lib/peers.js';
import { processCpuSeconds, reapedChildrenCpuSeconds } from '../lib/proc.js';
import type { ScenarioReport } from '../lib/report.js';
import { FerryServer, roomForClients } from '../lib/server.js';
import { median } from '../lib/stats.js';
import { MiB, formatBytes, formatNumber, mibPerSecond } from '../lib/units.js';

export interface ProcessesSample {
  seconds: number;
  mibPerSecond: number;
  /** CPU seconds of every process of the run (the commands, and the server or the daemon's forks). */
  cpuSeconds: number;
}

export interface ProcessesResult {
  processes: number;
  fileBytes: number;
  ferry: ProcessesSample[];
  rsync: ProcessesSample[];
  /** Ferry's aggregate over rsync's, per pair. */
  ratios: number[];
  skipped?: string;
}

/** Runs `count` copies of `one` at once; the wall time from the first start to the last end. */
async function allAtOnce(count: number, one: (index: number) => Promise<number>): Promise<{ seconds: number; cpuSeconds: number }> {
  const started = performance.now();
  const cpu = await Promise.all(Array.from({ length: count }, (_, index) => one(index)));
  return { seconds: (performance.now() - started) / 1000, cpuSeconds: cpu.reduce((sum, seconds) => sum + seconds, 0) };
}

export async function runProcesses(ctx: BenchContext): Promise<ScenarioReport> {
  const processes = ctx.options.quick ? 8 : 32;
  const fileBytes = (ctx.options.quick ? 8 : 32) * MiB;
  const result: ProcessesResult = { processes, fileBytes, ferry: [], rsync: [], ratios: [] };
  const rsyncMissing = which('rsync') ? undefined : "rsync not found (bash bench/setup-peers.sh installs Debian's rsync)";
  if (rsyncMissing) result.skipped = rsyncMissing;
  const source = await ctx.source(fileBytes);
  const medium = tmpfsAvailable() ? 'tmpfs' : 'disk';
  const work = await makeTempDir(medium, 'processes');
  const closers: (() => Promise<void>)[] = [];
  try {
    const ferry = await FerryServer.start(join(work, 'ferry-data'), ['--no-tls', ...roomForClients(processes)]);
    closers.push(async () => void (await ferry.stop()));
    const ferryRun = async (pair: number): Promise<ProcessesSample> => {
      const serverBefore = processCpuSeconds(ferry.pid);
      const run = await allAtOnce(processes, async (index) => {
        const args = ['upload', source.path, '--as', `p${pair}/${index}.bin`, '--server', ferry.address, '--retries', '0', '--force'];
        const cli = await runFerryCli<{ sha256: string }>(args, work);
        if (cli.result.sha256 !== source.sha256) throw new Error(`ferry upload ${index}: sha256 ${cli.result.sha256}`);
        return cli.cpuSeconds;
      });
      const cpuSeconds = run.cpuSeconds + processCpuSeconds(ferry.pid) - serverBefore;
      return { seconds: run.seconds, cpuSeconds, mibPerSecond: mibPerSecond(processes * fileBytes, run.seconds) };
    };
    let rsyncRun: ((pair: number) => Promise<ProcessesSample>) | undefined;
    if (!rsyncMissing) {
      const remote = await makeRemoteDir(work);
      const daemon = await startRsyncDaemon(work, remote);
      closers.push(() => daemon.close());
      rsyncRun = async (pair) => {
        const before = reapedChildrenCpuSeconds() + daemon.cpuSeconds();
        const run = await allAtOnce(processes, async (index) => {
          expectSuccess('rsync', await runCommand('rsync', ['--whole-file', source.path, daemon.url(`r${pair}-${index}.bin`)]));
          return 0; // counted below, with the daemon's forks, once they are reaped
        });
        await daemon.settled();
        const cpuSeconds = reapedChildrenCpuSeconds() + daemon.cpuSeconds() - before;
        return { seconds: run.seconds, cpuSeconds, mibPerSecond: mibPerSecond(processes * fileBytes, run.seconds) };
      };
    }
    for (let pair = 0; pair < ctx.options.pairs; pair += 1) {
      const ferryFirst = pair % 2 === 0;
      if (ferryFirst) result.ferry.push(await ferryRun(pair));
      if (rsyncRun) result.rsync.push(await rsyncRun(pair));
      if (!ferryFirst) result.ferry.push(await ferryRun(pair));
      const ferrySample = result.ferry.at(-1)!;
      const rsyncSample = result.rsync.at(-1);
      if (rsyncSample) result.ratios.push(ferrySample.mibPerSecond / rsyncSample.mibPerSecond);
      log(
        `processes pair ${pair + 1}: Ferry ${formatNumber(ferrySample.mibPerSecond)} MiB/s` +
          (rsyncSample ? `, rsync ${formatNumber(rsyncSample.mibPerSecond)} MiB/s` : ''),
      );
    }
  } finally {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    await removeDir(work);
  }
  const row = (tool: string, samples: ProcessesSample[]): string[] =>
    samples.length === 0
      ? [tool, '–', '–', '–', result.skipped ? `skipped: ${result.skipped}` : '–']
      : [
          tool,
          formatNumber(median(samples.map((s) => s.seconds))),
          formatNumber(median(samples.map((s) => s.mibPerSecond))),
          formatNumber(median(samples.map((s) => s.cpuSeconds))),
          tool === 'Ferry' || result.ratios.length === 0
            ? '–'
            : `**${median(result.ratios).toFixed(2)}×** (${result.ratios.map((r) => r.toFixed(2)).join(', ')})`,
        ];
  return {
    id: 'processes',
    title: `Many processes: ${processes} uploads of ${formatBytes(fileBytes)} started at once`,
    notes: [
      `${processes} \`ferry upload\` commands (clear text, each its own Node process, login and connection) against ${processes} \`rsync --whole-file\` commands to an rsync daemon on 127.0.0.1, all started together; written to ${medium}. Aggregate MiB/s: all bytes over the wall time from the first start to the last exit. Medians of ${ctx.options.pairs} pairs, alternating which goes first.`,
      'CPU s: every process of the run (Ferry: the commands and the server; rsync: the commands and the daemon’s forks).',
      'Target (issue 15): Ferry ≥ 1.0× rsync’s aggregate.',
    ],
    tables: [
      {
        headers: ['tool', 'seconds', 'aggregate MiB/s', 'CPU s', 'Ferry ÷ rsync (per pair)'],
        numeric: [1, 2, 3],
        rows: [row('Ferry', result.ferry), row('rsync', result.rsync)],
      },
    ],
    data: result,
  };
}
