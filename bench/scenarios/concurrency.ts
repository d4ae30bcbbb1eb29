import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { FerryClient } from '../../src/client/client.js';
import type { UploadMemoryJob, UploadMemoryReport } from '../hooks/upload-memory.js';
import { expectSuccess, runCommand } from '../lib/children.js';
import { type BenchContext, log } from '../lib/context.js';
import { type SourceFile, makeTempDir, removeDir } from '../lib/files.js';
import type { ScenarioReport } from '../lib/report.js';
import { FerryServer, loginAt, roomForClients } from '../lib/server.js';
import { median, percentile } from '../lib/stats.js';
import { boxCpuMeter, processPeakRssBytes, resetOwnPeakRss } from '../lib/proc.js';
import { durableStoreFloor } from '../lib/store-floor.js';
import { uploadMemoryScript } from '../lib/paths.js';
import { MiB, formatNumber, formatBytes, mibPerSecond } from '../lib/units.js';

type Direction = 'upload' | 'download';

export interface PhaseResult {
  direction: Direction;
  operations: number;
  errors: number;
  seconds: number;
  bytes: number;
  mibPerSecond: number;
  operationsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
}

export interface SweepStep {
  fileBytes: number;
  clients: number;
  /** Files each client uploads (then downloads) in a step, so every step does enough work to time. */
  rounds: number;
  /** Files each client uploaded and downloaded untimed first, to warm the fresh server up (see warmupRounds). */
  warmupRounds: number;
  upload: PhaseResult;
  download: PhaseResult;
  errors: number;
  /** First few error messages, for the report. */
  errorSamples: string[];
  serverCpuSeconds: number;
  serverPeakRssBytes: number;
  /** CPU of the bench process (the clients) over both phases. */
  clientCpuSeconds: number;
  /** Peak RSS of the bench process (the clients: one FerryClient each) during the upload phase; NaN where it cannot be read apart. */
  clientUploadPeakRssBytes: number;
  /** CPU the rest of the machine used meanwhile (box minus server and clients), in % of one core. */
  othersPercent: number;
  /** Marks the target case (32 clients × 32 MiB). */
  target?: boolean;
  /** Small files only: files/s the disk allows for the same stores with nothing else (see durableStoreFloor). */
  storeFloorPerSecond?: number;
  /** Steps of `uploadMemoryMinClients` clients or more: the same uploads from a process of their own (see bench/hooks/upload-memory.ts). */
  uploadMemory?: UploadMemoryReport;
}

/** Steps with this many clients or more also measure the client library's memory in a process of its own (the target's 256). */
const uploadMemoryMinClients = 256;

/**
 * Every client of a step uploads the step's file once more, from a child process that does only
 * that (untimed): what the library holds with that many uploads at once, apart from what the
 * bench's own process holds (the other scenarios', and this step's downloads' buffers).
 */
async function uploadMemoryApart(server: FerryServer, source: SourceFile, clients: number): Promise<UploadMemoryReport> {
  const job: UploadMemoryJob = { port: server.port, token: server.token, source: source.path, clients, prefix: 'memory/' };
  const run = expectSuccess(
    'upload-memory',
    await runCommand(process.execPath, [uploadMemoryScript], { env: { ...process.env, FERRY_BENCH_UPLOAD_MEMORY: JSON.stringify(job) } }),
  );
  return JSON.parse(run.stdout) as UploadMemoryReport;
}

/** At most this many bytes each way go to a step's warm-up, whatever its file size. */
const warmupMaxBytes = 256 * MiB;

/**
 * Rounds each client runs untimed before a step is timed: enough that the fresh server has served
 * about `warmupOps` uploads and downloads (as a server that has been running would have: its
 * JavaScript compiled, its heap and metadata store grown), at most `warmupMaxBytes` each way. Not
 * capped by the step's own rounds: a step of 64 clients × 16 rounds warmed by 1,024 uploads timed
 * a server still at about 75% of its later speed (bench/README.md, the sweep's warm-up).
 */
function warmupRounds(warmupOps: number, clients: number, fileBytes: number): number {
  if (warmupOps === 0) return 0;
  const byBytes = Math.max(1, Math.floor(warmupMaxBytes / (clients * Math.max(1, fileBytes))));
  return Math.min(Math.ceil(warmupOps / clients), byBytes);
}

/** Steps with files up to this size also measure the disk's floor for storing them. */
const floorMaxFileBytes = 1024 * 1024;

interface Op {
  ok: boolean;
  ms: number;
}

function phase(direction: Direction, ops: readonly Op[], seconds: number, fileBytes: number): PhaseResult {
  const good = ops.filter((op) => op.ok);
  const latencies = good.map((op) => op.ms);
  return {
    direction,
    operations: ops.length,
    errors: ops.length - good.length,
    seconds,
    bytes: good.length * fileBytes,
    mibPerSecond: mibPerSecond(good.length * fileBytes, seconds),
    operationsPerSecond: seconds > 0 ? good.length / seconds : 0,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
  };
}

/**
 * One step of the sweep: a fresh server, `clients` FerryClients in this process (one connection
 * each, connected before the clock starts), all uploading `rounds` files each, then, once every
 * upload is done, all downloading them back. Every operation is timed on its own.
 */
async function sweepStep(ctx: BenchContext, source: SourceFile, clients: number, target: boolean): Promise<SweepStep> {
  const { minOpsPerStep, minBytesPerStep } = ctx.options;
  // Enough work to time: either enough operations or enough bytes, whichever comes first.
  const rounds = Math.max(1, Math.min(Math.ceil(minOpsPerStep / clients), Math.ceil(minBytesPerStep / (clients * source.size))));
  const warmup = warmupRounds(ctx.options.warmupOps, clients, source.size);
  const dataDir = await makeTempDir('disk', 'sweep-data');
  const outDir = await makeTempDir('disk', 'sweep-out');
  // In clear text, as every sweep before TLS was: the rows stay comparable (bulk and refs measure TLS).
  const server = await FerryServer.start(dataDir, ['--no-tls', ...roomForClients(clients)]);
  const ferryClients = Array.from(
    { length: clients },
    () => new FerryClient({ host: '127.0.0.1', port: server.port, retry: { retries: 0 }, ...loginAt(server.port) }),
  );
  const errorSamples: string[] = [];
  const failed = (what: string, error: unknown): Op => {
    if (errorSamples.length < 5) errorSamples.push(`${what}: ${error instanceof Error ? error.message : String(error)}`);
    return { ok: false, ms: 0 };
  };
  const timed = async (what: string, run: () => Promise<void>): Promise<Op> => {
    const started = performance.now();
    try {
      await run();
      return { ok: true, ms: performance.now() - started };
    } catch (error) {
      return failed(what, error);
    }
  };
  try {
    await Promise.all(ferryClients.map((client) => client.connection()));
    await Promise.all(
      ferryClients.map(async (client, c) => {
        const out = join(outDir, `warm-${c}.bin`);
        for (let round = 0; round < warmup; round += 1) {
          await client.upload(source.path, { name: `warm/c${c}/r${round}.bin` });
          await client.download(`warm/c${c}/r${round}.bin`, { out, force: true });
        }
        await rm(out, { force: true });
      }),
    );
    const cpuBefore = server.cpuSeconds();
    const clientCpuBefore = process.cpuUsage();
    const stopMeter = boxCpuMeter(ctx.machine.cores);
    const uploaded = ferryClients.map(() => new Set<number>());
    const peakReset = resetOwnPeakRss();
    const upStarted = performance.now();
    const upOps = (
      await Promise.all(
        ferryClients.map(async (client, c) => {
          const ops: Op[] = [];
          for (let round = 0; round < rounds; round += 1) {
            const name = `c${c}/r${round}.bin`;
            const op = await timed(`upload ${name}`, async () => {
              const result = await client.upload(source.path, { name });
              if (result.sha256 !== source.sha256) throw new Error(`server reports sha256 ${result.sha256}, expected ${source.sha256}`);
            });
            if (op.ok) uploaded[c]!.add(round);
            ops.push(op);
          }
          return ops;
        }),
      )
    ).flat();
    const upSeconds = (performance.now() - upStarted) / 1000;
    const clientUploadPeakRssBytes = peakReset ? processPeakRssBytes(process.pid) : Number.NaN;
    const downStarted = performance.now();
    const downOps = (
      await Promise.all(
        ferryClients.map(async (client, c) => {
          const ops: Op[] = [];
          const out = join(outDir, `c${c}.bin`);
          for (const round of uploaded[c]!) {
            const name = `c${c}/r${round}.bin`;
            ops.push(
              await timed(`download ${name}`, async () => {
                const result = await client.download(name, { out, force: true });
                // The client checked the bytes it wrote against this SHA-256 before renaming the file into place.
                if (result.sha256 !== source.sha256) throw new Error(`downloaded sha256 ${result.sha256}, expected ${source.sha256}`);
              }),
            );
            await rm(out, { force: true });
          }
          return ops;
        }),
      )
    ).flat();
    const downSeconds = (performance.now() - downStarted) / 1000;
    const serverCpuSeconds = server.cpuSeconds() - cpuBefore;
    const box = stopMeter();
    const clientCpu = process.cpuUsage(clientCpuBefore);
    const clientCpuSeconds = (clientCpu.user + clientCpu.system) / 1e6;
    const othersPercent = Math.max(0, box.busyPercent - (100 * (serverCpuSeconds + clientCpuSeconds)) / (upSeconds + downSeconds));
    await Promise.all(ferryClients.map((client) => client.close()));
    const uploadMemory = clients >= uploadMemoryMinClients ? await uploadMemoryApart(server, source, clients) : undefined;
    const stats = await server.stop();
    const upload = phase('upload', upOps, upSeconds, source.size);
    const download = phase('download', downOps, downSeconds, source.size);
    const storeFloorPerSecond = source.size <= floorMaxFileBytes ? await durableStoreFloor(source.path, upOps.length, clients) : undefined;
    return {
      fileBytes: source.size,
      clients,
      rounds,
      warmupRounds: warmup,
      upload,
      download,
      errors: upload.errors + download.errors,
      errorSamples,
      serverCpuSeconds,
      serverPeakRssBytes: stats.peakRssBytes,
      clientCpuSeconds,
      clientUploadPeakRssBytes,
      othersPercent,
      ...(target ? { target } : {}),
      ...(storeFloorPerSecond === undefined ? {} : { storeFloorPerSecond }),
      ...(uploadMemory ? { uploadMemory } : {}),
    };
  } finally {
    await Promise.all(ferryClients.map((client) => client.close().catch(() => undefined)));
    await server.stop().catch(() => undefined); // cleanup: stop() kills a server that ignores SIGTERM; one that exited already has nothing left to stop
    await removeDir(dataDir);
    await removeDir(outDir);
  }
}

function latency(p: PhaseResult): string {
  return `${formatNumber(p.p50Ms)} / ${formatNumber(p.p99Ms)}`;
}

export async function runConcurrency(ctx: BenchContext): Promise<ScenarioReport> {
  const plan: { fileBytes: number; clients: number; target: boolean }[] = [];
  for (const fileBytes of ctx.options.fileSizes)
    for (const clients of ctx.options.clients) plan.push({ fileBytes, clients, target: false });
  if (ctx.options.targetCase) plan.push({ fileBytes: 32 * MiB, clients: 32, target: true });
  const steps: SweepStep[] = [];
  for (const { fileBytes, clients, target } of plan) {
    const source = await ctx.source(fileBytes);
    const step = await sweepStep(ctx, source, clients, target);
    steps.push(step);
    log(
      `sweep ${formatBytes(fileBytes)} × ${clients} clients (${step.rounds} round(s)): up ${formatNumber(step.upload.mibPerSecond)} MiB/s ` +
        `${formatNumber(step.upload.operationsPerSecond)} ops/s, down ${formatNumber(step.download.mibPerSecond)} MiB/s, ` +
        `RSS ${formatNumber(step.serverPeakRssBytes / MiB)} MiB, errors ${step.errors}`,
    );
    for (const sample of step.errorSamples) log(`  error: ${sample}`);
  }
  const totalErrors = steps.reduce((total, step) => total + step.errors, 0);
  const notes = [
    'Clients are FerryClient objects in the bench process (one connection each, connected before timing); the server is `ferry serve` in its own process. Client and server share the cores.',
    "clients peak RSS (up): the bench process's peak resident memory during the upload phase (its peak reset just before, through /proc/self/clear_refs): what the client library holds with that many uploads at once, plus the bench's own baseline (what the other scenarios left, and the buffers of the step's warm-up downloads, which the library keeps for reuse: 128 MiB).",
    `uploads alone (steps of ${uploadMemoryMinClients} clients or more): after the timed phases, the same clients upload the step's file once more from a child process that does nothing else (bench/hooks/upload-memory.ts), untimed; its peak RSS, Node's start included. The target (issue 15) is judged on it.`,
    ctx.options.warmupOps > 0
      ? `Warm-up: each step's fresh server first serves about ${formatNumber(ctx.options.warmupOps)} uploads and as many downloads of the step's file (at most ${formatBytes(warmupMaxBytes)} each way, no more rounds than the step), untimed, as a server that has been running would have; without it the first thousand small uploads run at about half the speed of later ones, while its JavaScript is compiled (\`--warmup 0\` times a cold server).`
      : 'No warm-up (`--warmup 0`): each step times a cold server, its JavaScript compiled as the step runs.',
    'Each step: a fresh server; every client uploads its rounds of files one after another, all clients at once; when all uploads are done, every client downloads its files back (to its own path, deleted after each). MiB/s and ops/s are aggregates over the phase; latency is per operation (one upload or one download, request to verified result).',
    `rounds: files per client in a step, so that every step does enough work to time (at least ${ctx.options.minOpsPerStep} operations or ${formatBytes(ctx.options.minBytesPerStep)} per direction).`,
    `CPU the rest of the machine used during the steps (box minus server and bench process), median: ${formatNumber(median(steps.map((s) => s.othersPercent)))}% of a core; per step in the JSON.`,
    `disk floor: for files up to ${formatBytes(floorMaxFileBytes)}, the same number of files stored durably by a bare loop with the same concurrency (write, fdatasync, close, rename, grouped directory fsync: the file-system work of a durable upload and nothing else, no network, hashing or metadata), in files/s. Ferry's up ops/s cannot exceed it by much.`,
    `Errors (must be 0): ${totalErrors}.` +
      (totalErrors > 0
        ? ' First messages: ' +
          steps
            .flatMap((s) => s.errorSamples)
            .slice(0, 5)
            .join('; ')
        : ''),
  ];
  return {
    id: 'concurrency',
    title: 'Concurrency sweep: in-process clients, upload then download',
    notes,
    tables: [
      {
        headers: [
          'file',
          'clients',
          'rounds',
          'errors',
          'up MiB/s',
          'up ops/s',
          'up p50 / p99 ms',
          'down MiB/s',
          'down ops/s',
          'down p50 / p99 ms',
          'server CPU s',
          'server peak RSS MiB',
          'clients peak RSS MiB (up)',
          'uploads alone: peak RSS MiB',
          'disk floor files/s',
        ],
        numeric: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14],
        rows: steps.map((s) => [
          formatBytes(s.fileBytes) + (s.target ? ' (target case)' : ''),
          String(s.clients),
          String(s.rounds),
          String(s.errors),
          formatNumber(s.upload.mibPerSecond),
          formatNumber(s.upload.operationsPerSecond),
          latency(s.upload),
          formatNumber(s.download.mibPerSecond),
          formatNumber(s.download.operationsPerSecond),
          latency(s.download),
          formatNumber(s.serverCpuSeconds),
          formatNumber(s.serverPeakRssBytes / MiB),
          Number.isNaN(s.clientUploadPeakRssBytes) ? '–' : formatNumber(s.clientUploadPeakRssBytes / MiB),
          s.uploadMemory ? formatNumber(s.uploadMemory.peakRssBytes / MiB) : '–',
          s.storeFloorPerSecond === undefined ? '–' : formatNumber(s.storeFloorPerSecond),
        ]),
      },
    ],
    data: { steps },
  };
}
