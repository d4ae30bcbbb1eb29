import { join } from 'node:path';
import { type BenchContext, log } from '../lib/context.js';
import { expectSuccess, runCommand } from '../lib/children.js';
import { runFerryCli } from '../lib/ferry-cli.js';
import { ferryBin } from '../lib/paths.js';
import { type TransferSample, ferryDownload, ferryUpload } from '../lib/ferry-transfer.js';
import { type Medium, makeTempDir, removeDir, tmpfsAvailable } from '../lib/files.js';
import type { ScenarioReport } from '../lib/report.js';
import { FerryServer } from '../lib/server.js';
import { median } from '../lib/stats.js';
import { MiB, formatNumber, formatBytes } from '../lib/units.js';

/** How the CLI talks to the server: TLS (the default) or clear text (`--no-tls` on both ends). */
export type Transport = 'TLS' | 'clear text';

export interface BulkRun {
  medium: Medium;
  transport: Transport;
  upload: TransferSample;
  download: TransferSample;
  serverPeakRssBytes: number;
  serverCpuSeconds: number;
  /** Measured on the first run only. */
  fixedCost?: CliFixedCost;
}

export interface BulkSummary {
  medium: Medium;
  transport: Transport;
  direction: 'upload' | 'download';
  mibPerSecond: number;
  seconds: number;
  clientCpuSeconds: number;
  serverCpuSeconds: number;
  cpuPercent: number;
  othersPercent: number;
  boxIowaitPercent: number;
  serverPeakRssBytes: number;
  clientMaxRssBytes: number;
}

/**
 * One file up and down through the `ferry` CLI against a fresh `ferry serve`, verified end to
 * end; on disk, then with the server's data dir (and the download's destination) on tmpfs.
 */
async function bulkRun(
  ctx: BenchContext,
  medium: Medium,
  transport: Transport,
  index: number,
  measureFixedCost: boolean,
): Promise<BulkRun> {
  const source = await ctx.source(ctx.options.sizeBytes);
  const dataDir = await makeTempDir(medium, 'bulk-data');
  const outDir = await makeTempDir(medium, 'bulk-out');
  const server = await FerryServer.start(dataDir, transport === 'TLS' ? [] : ['--no-tls']);
  try {
    const fixedCost = measureFixedCost ? await cliFixedCost(ctx, server, ctx.options.quick ? 1 : 11) : undefined;
    const name = `bulk-${index}.bin`;
    const upload = await ferryUpload(server, source, name, ctx.workDir, ctx.machine.cores);
    log(`bulk ${medium} ${transport} run ${index}: upload ${formatNumber(upload.mibPerSecond)} MiB/s`);
    const download = await ferryDownload(server, source, name, join(outDir, name), ctx.workDir, ctx.machine.cores, true);
    log(`bulk ${medium} ${transport} run ${index}: download ${formatNumber(download.mibPerSecond)} MiB/s`);
    const stats = await server.stop();
    return {
      medium,
      transport,
      upload,
      download,
      serverPeakRssBytes: stats.peakRssBytes,
      serverCpuSeconds: stats.cpuSeconds,
      ...(fixedCost ? { fixedCost } : {}),
    };
  } finally {
    await server.stop().catch(() => undefined); // already stopped above unless something failed first
    await removeDir(dataDir);
    await removeDir(outDir);
  }
}

export interface CliFixedCost {
  /** `ferry info`: wall and CPU seconds. */
  seconds: number;
  cpuSeconds: number;
  /** `ferry --version`, wall seconds. */
  versionSeconds: number;
  /** `node -e 0` in the same environment, wall seconds: Node's own start, the floor of both. */
  nodeSeconds: number;
  /** Whether NODE_EXTRA_CA_CERTS is set: Node 20 reads those certificates at every start. */
  extraCaCerts: boolean;
}

/**
 * What every CLI run pays around its transfer: `ferry info` (start-up, imports, connect, one
 * request, exit) against `server`, `ferry --version`, and bare Node's start beside them, the three
 * interleaved. Medians of `samples`.
 */
async function cliFixedCost(ctx: BenchContext, server: FerryServer, samples: number): Promise<CliFixedCost> {
  // The source file was just written: its writeback would otherwise land on these few short runs
  // (the run of 2026-12-05 17:49 measured `ferry info` at 239 ms this way, 174 ms on a quiet machine).
  expectSuccess('sync', await runCommand('sync', []));
  const info = [];
  const version = [];
  const node = [];
  for (let index = 0; index < samples; index += 1) {
    info.push(await runFerryCli(['info', '--server', server.address], ctx.workDir));
    version.push(expectSuccess('ferry --version', await runCommand(process.execPath, [ferryBin, '--version'])).seconds);
    node.push(expectSuccess('node -e 0', await runCommand(process.execPath, ['-e', '0'])).seconds);
  }
  return {
    seconds: median(info.map((run) => run.seconds)),
    cpuSeconds: median(info.map((run) => run.cpuSeconds)),
    versionSeconds: median(version),
    nodeSeconds: median(node),
    extraCaCerts: Boolean(process.env.NODE_EXTRA_CA_CERTS),
  };
}

function summarize(all: readonly BulkRun[], medium: Medium, transport: Transport, direction: 'upload' | 'download'): BulkSummary {
  const runs = all.filter((run) => run.medium === medium && run.transport === transport);
  const samples = runs.map((run) => run[direction]);
  return {
    medium,
    transport,
    direction,
    mibPerSecond: median(samples.map((s) => s.mibPerSecond)),
    seconds: median(samples.map((s) => s.seconds)),
    clientCpuSeconds: median(samples.map((s) => s.clientCpuSeconds)),
    serverCpuSeconds: median(samples.map((s) => s.serverCpuSeconds)),
    cpuPercent: median(samples.map((s) => s.cpuPercent)),
    othersPercent: median(samples.map((s) => s.othersPercent)),
    boxIowaitPercent: median(samples.map((s) => s.box.iowaitPercent)),
    serverPeakRssBytes: median(runs.map((run) => run.serverPeakRssBytes)),
    clientMaxRssBytes: median(samples.map((s) => s.clientMaxRssBytes)),
  };
}

export async function runBulk(ctx: BenchContext): Promise<ScenarioReport> {
  const media: Medium[] = tmpfsAvailable() ? ['disk', 'tmpfs'] : ['disk'];
  const notes: string[] = [];
  if (!tmpfsAvailable()) notes.push('tmpfs case skipped: /dev/shm does not exist on this machine');
  const transports: Transport[] = ['clear text', 'TLS'];
  const runs: BulkRun[] = [];
  const summaries: BulkSummary[] = [];
  for (const medium of media) {
    // Clear text and TLS interleaved, each run's pair in the other order than the last one's.
    for (let index = 1; index <= ctx.options.runs; index += 1) {
      const order = index % 2 === 1 ? transports : [...transports].reverse();
      for (const transport of order) runs.push(await bulkRun(ctx, medium, transport, index, runs.length === 0));
    }
    for (const transport of transports)
      summaries.push(summarize(runs, medium, transport, 'upload'), summarize(runs, medium, transport, 'download'));
  }
  const size = formatBytes(ctx.options.sizeBytes);
  const fixed = runs[0]!.fixedCost!;
  notes.push(
    `${size} of random bytes; medians of ${ctx.options.runs} run(s), each against a fresh \`ferry serve\` and data dir. Time is the CLI process's wall time, Node start-up included.`,
    `Included in every CLI time: the CLI's fixed cost, measured as \`ferry info\` (Node start-up, imports, connect, one request, exit): ${formatNumber(fixed.seconds)} s wall, ${formatNumber(fixed.cpuSeconds)} s CPU; \`ferry --version\` ${formatNumber(fixed.versionSeconds)} s; Node's own start in the same environment (\`node -e 0\`) ${formatNumber(fixed.nodeSeconds)} s.` +
      (fixed.extraCaCerts
        ? ' NODE_EXTRA_CA_CERTS is set in this environment: Node 20 reads and parses those certificates at every start of every Node process, before any of Ferry runs (about 50 ms here for the Debian bundle; Node 24 reads them only when TLS needs them).'
        : ''),
    "Verified: the SHA-256 the server (upload) or client (download) reports equals the source's, and the downloaded file is hashed again afterwards (untimed).",
    `CPU % of a core: (client CPU + server CPU) / seconds; ${100 * ctx.machine.cores}% would be every core of this machine busy. others: CPU the rest of the machine used meanwhile, same unit (near 0 on a quiet machine; more means Ferry competed for the cores). iowait: the machine's time waiting on the disk, same unit; near 0 means the disk held nothing up.`,
    "tmpfs: the server's data dir and the download destination on /dev/shm; the source file is read from the page cache in both cases.",
    'TLS: the default (TLS 1.3, AES-128-GCM, the generated EC P-256 certificate pinned by the client); clear text: `--no-tls` on both ends, as every run before TLS measured. Each run pairs the two, alternating which goes first.',
  );
  return {
    id: 'bulk',
    title: `Bulk: one ${size} file, ferry CLI upload and download`,
    notes,
    tables: [
      {
        headers: [
          'case',
          'MiB/s',
          'seconds',
          'client CPU s',
          'server CPU s',
          'CPU % of a core',
          'others %',
          'iowait %',
          'server peak RSS MiB',
          'client peak RSS MiB',
        ],
        numeric: [1, 2, 3, 4, 5, 6, 7, 8, 9],
        rows: summaries.map((s) => [
          `${s.direction}, ${s.medium}, ${s.transport}`,
          formatNumber(s.mibPerSecond),
          formatNumber(s.seconds),
          formatNumber(s.clientCpuSeconds),
          formatNumber(s.serverCpuSeconds),
          formatNumber(s.cpuPercent),
          formatNumber(s.othersPercent),
          formatNumber(s.boxIowaitPercent),
          formatNumber(s.serverPeakRssBytes / MiB),
          formatNumber(s.clientMaxRssBytes / MiB),
        ]),
      },
    ],
    data: { sizeBytes: ctx.options.sizeBytes, cliFixedCost: fixed, runs, summaries },
  };
}
