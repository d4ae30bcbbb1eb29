/**
 * Folders (issue 16): a tree of many small files and some larger ones, uploaded with
 * `ferry upload -r` and downloaded with `ferry download -r`, against `rsync -r` to and from an
 * rsync daemon, and `rsync -r --fsync` (Ferry makes every file durable before it says so; rsync
 * only when asked). Each run goes to a fresh place on the other side, so nothing is skipped.
 * Each pair runs the tools in an order rotated by one from the last pair's.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type BenchContext, log } from '../lib/context.js';
import { expectSuccess, runCommand } from '../lib/children.js';
import { runFerryCli } from '../lib/ferry-cli.js';
import { makeTempDir, removeDir } from '../lib/files.js';
import { durableTreeCopy } from '../lib/store-floor.js';
import { startRsyncDaemon, which } from '../lib/peers.js';
import { processCpuSeconds, reapedChildrenCpuSeconds } from '../lib/proc.js';
import type { ScenarioReport, Table } from '../lib/report.js';
import { FerryServer, cliCacheHome } from '../lib/server.js';
import { median, roundOrder } from '../lib/stats.js';
import { formatBytes, formatNumber } from '../lib/units.js';

/** Files the floor copies at once: as many as a tree upload's whole puts in flight, within a factor of two. */
const floorConcurrency = 64;
const floorTool = 'durable copy (floor)';

interface TreeShape {
  folders: number;
  small: { count: number; bytes: number };
  large: { count: number; bytes: number };
}

/** The tree, or a tenth of it for --quick. */
function shapeOf(quick: boolean): TreeShape {
  return quick
    ? { folders: 10, small: { count: 1000, bytes: 4096 }, large: { count: 10, bytes: 1024 * 1024 } }
    : { folders: 100, small: { count: 10_000, bytes: 4096 }, large: { count: 100, bytes: 1024 * 1024 } };
}

function totalBytes(shape: TreeShape): number {
  return shape.small.count * shape.small.bytes + shape.large.count * shape.large.bytes;
}

/** Writes the tree: the files spread evenly over the folders, random bytes (nothing compresses). */
async function makeTree(root: string, shape: TreeShape): Promise<void> {
  for (let folder = 0; folder < shape.folders; folder += 1) await mkdir(join(root, `d${folder}`), { recursive: true });
  const write = async (prefix: string, { count, bytes }: { count: number; bytes: number }): Promise<void> => {
    for (let index = 0; index < count; index += 1)
      await writeFile(join(root, `d${index % shape.folders}`, `${prefix}${index}`), randomBytes(bytes));
  };
  await write('s', shape.small);
  await write('l', shape.large);
}

interface TreeSample {
  seconds: number;
  filesPerSecond: number;
  /** CPU seconds of client and server together. */
  cpuSeconds: number;
}

interface TreeRow {
  tool: string;
  direction: 'upload' | 'download';
  how: string;
  samples: TreeSample[];
  skipped?: string;
}

interface TreeTool {
  tool: string;
  how: string;
  /** One timed run into a fresh place; `run` numbers them. */
  up(run: number): Promise<{ seconds: number; cpuSeconds: number }>;
  down(run: number): Promise<{ seconds: number; cpuSeconds: number }>;
}

interface TreeJson {
  files: number;
  failed: unknown[];
}

export async function runTree(ctx: BenchContext): Promise<ScenarioReport> {
  const shape = shapeOf(ctx.options.quick);
  const files = shape.small.count + shape.large.count;
  // On disk: on tmpfs a sync costs nothing, and durability is what sets Ferry and `rsync --fsync` apart from `rsync`.
  const medium = 'disk';
  const work = await makeTempDir(medium, 'tree');
  const rows: TreeRow[] = [];
  const closers: (() => Promise<void>)[] = [];
  try {
    const source = join(work, 'tree');
    await makeTree(source, shape);
    const downloads = join(work, 'downloads');
    const remote = join(work, 'rsync-remote');
    await mkdir(remote, { recursive: true });

    const ferry = await FerryServer.start(join(work, 'ferry-data'), ['--no-tls']);
    closers.push(async () => void (await ferry.stop()));
    const server = `127.0.0.1:${ferry.port}`;
    const ferryRun = async (args: string[]): Promise<{ seconds: number; cpuSeconds: number }> => {
      // A fresh hash cache: every run reads its files as a first run would.
      await rm(cliCacheHome, { recursive: true, force: true });
      const serverBefore = processCpuSeconds(ferry.pid);
      const run = await runFerryCli<TreeJson>([...args, '--server', server, '--retries', '0'], work);
      if (run.result.files !== files || run.result.failed.length > 0)
        throw new Error(`ferry ${args.join(' ')}: ${JSON.stringify(run.result)}`);
      return { seconds: run.seconds, cpuSeconds: run.cpuSeconds + processCpuSeconds(ferry.pid) - serverBefore };
    };
    const tools: TreeTool[] = [
      {
        tool: 'Ferry',
        how: '`ferry upload -r` / `download -r` in clear text: every file verified (xxh64 per chunk, SHA-256 end to end) and durable (fdatasync, folder fsync, LMDB commit) before it counts',
        up: (run) => ferryRun(['upload', '-r', source, '--as', `tree-${run}`]),
        down: async (run) => {
          // The tree the first upload stored, into a fresh folder.
          await rm(join(downloads, `ferry-${run}`), { recursive: true, force: true });
          return ferryRun(['download', '-r', 'tree-0', '--out', join(downloads, `ferry-${run}`)]);
        },
      },
    ];
    const rsyncMissing = which('rsync') ? undefined : "rsync not found (bash bench/setup-peers.sh installs Debian's rsync)";
    if (rsyncMissing === undefined) {
      const daemon = await startRsyncDaemon(work, remote);
      closers.push(() => daemon.close());
      const rsyncRun = async (args: string[]): Promise<{ seconds: number; cpuSeconds: number }> => {
        const before = reapedChildrenCpuSeconds() + daemon.cpuSeconds();
        const { seconds } = expectSuccess('rsync', await runCommand('rsync', ['-r', '--whole-file', ...args]));
        await daemon.settled();
        return { seconds, cpuSeconds: reapedChildrenCpuSeconds() + daemon.cpuSeconds() - before };
      };
      for (const fsync of [false, true]) {
        const flags = fsync ? ['--fsync'] : [];
        const label = fsync ? 'rsync -r --fsync' : 'rsync -r';
        tools.push({
          tool: label,
          how: `\`${label}\` to and from an rsync daemon on 127.0.0.1${fsync ? ' (each file synced on the receiving side)' : ' (nothing synced)'}`,
          up: (run) => rsyncRun([...flags, `${source}/`, daemon.url(`${fsync ? 'f' : 'r'}-${run}/`)]),
          down: async (run) => {
            const dest = join(downloads, `${fsync ? 'f' : 'r'}-${run}`);
            await rm(dest, { recursive: true, force: true });
            return rsyncRun([...flags, daemon.url(`${fsync ? 'f' : 'r'}-0/`), `${dest}/`]);
          },
        });
      }
    }
    tools.push({
      tool: floorTool,
      how: `the bench copying the tree on this machine, ${floorConcurrency} files at once, each made durable as a receiver must make it (a staging file written, fdatasynced and renamed into its folder, the folder fsynced: \`durableTreeCopy\`), with no network, hashing or metadata: what the file system alone costs a tool that makes every file durable`,
      up: (run) => durableTreeCopy(source, join(work, 'floor', `${run}`), floorConcurrency),
      down: async (run) => {
        const dest = join(downloads, `floor-${run}`);
        await rm(dest, { recursive: true, force: true });
        return durableTreeCopy(join(work, 'floor', '0'), dest, floorConcurrency);
      },
    });
    const upRows = tools.map((tool) => ({ tool: tool.tool, direction: 'upload' as const, how: tool.how, samples: [] as TreeSample[] }));
    const downRows = tools.map((tool) => ({ tool: tool.tool, direction: 'download' as const, how: tool.how, samples: [] as TreeSample[] }));
    const sample = (measured: { seconds: number; cpuSeconds: number }): TreeSample => ({
      ...measured,
      filesPerSecond: files / measured.seconds,
    });
    for (let pair = 0; pair < ctx.options.pairs; pair += 1) {
      const order = roundOrder(
        tools.map((_, index) => index),
        pair,
      );
      for (const index of order) {
        const measured = sample(await tools[index]!.up(pair));
        upRows[index]!.samples.push(measured);
        log(`tree pair ${pair + 1}: ${tools[index]!.tool} upload: ${formatNumber(measured.seconds)} s`);
      }
      for (const index of order) {
        const measured = sample(await tools[index]!.down(pair));
        downRows[index]!.samples.push(measured);
        log(`tree pair ${pair + 1}: ${tools[index]!.tool} download: ${formatNumber(measured.seconds)} s`);
      }
    }
    rows.push(...upRows, ...downRows);
    if (rsyncMissing !== undefined) rows.push({ tool: 'rsync -r', direction: 'upload', how: '', samples: [], skipped: rsyncMissing });
  } finally {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    await removeDir(work);
  }
  return report(rows, shape, medium);
}

function report(rows: TreeRow[], shape: TreeShape, medium: string): ScenarioReport {
  const medianOf = (row: TreeRow, pick: (sample: TreeSample) => number): number => median(row.samples.map(pick));
  const ferryOf = (direction: string): TreeRow | undefined => rows.find((row) => row.tool === 'Ferry' && row.direction === direction);
  const files = shape.small.count + shape.large.count;
  const table: Table = {
    headers: ['direction', 'tool', 'seconds', 'files/s', 'CPU s (client + server)', 'Ferry ÷ this (speed)'],
    numeric: [2, 3, 4],
    rows: rows.map((row) => {
      if (row.skipped) return [row.direction, row.tool, '–', '–', '–', `skipped: ${row.skipped}`];
      const ferry = ferryOf(row.direction)!;
      const ratio = medianOf(row, (s) => s.seconds) / medianOf(ferry, (s) => s.seconds);
      return [
        row.direction,
        row.tool,
        formatNumber(medianOf(row, (s) => s.seconds)),
        formatNumber(medianOf(row, (s) => s.filesPerSecond)),
        formatNumber(medianOf(row, (s) => s.cpuSeconds)),
        row.tool === 'Ferry' ? '–' : `**${ratio.toFixed(2)}×**`,
      ];
    }),
  };
  return {
    id: 'tree',
    title: `Folders: ${files.toLocaleString('en-US')} files (${formatBytes(totalBytes(shape))}) in ${shape.folders} folders`,
    notes: [
      `${shape.small.count.toLocaleString('en-US')} files of ${formatBytes(shape.small.bytes)} and ${shape.large.count} of ${formatBytes(shape.large.bytes)}, spread over ${shape.folders} folders; files on ${medium} (on tmpfs a sync would cost nothing). Medians of the pairs; each pair runs every tool once per direction, the order rotated by one from pair to pair (each tool takes each place once in three pairs).`,
      'Seconds are wall time of the whole command, Node start-up and login included for Ferry (the hash cache emptied before each run).',
      ...rows.filter((row) => row.how && row.direction === 'upload').map((row) => `${row.tool}: ${row.how}.`),
      'Target (issue 16): Ferry ≥ 2.0× `rsync -r --fsync` both ways; the ratio to `rsync -r` reported.',
      ...floorNotes(rows),
    ],
    tables: [table],
    data: { rows },
  };
}

/** Per direction: the time the target allows Ferry, against what the floor took in the same run. */
function floorNotes(rows: TreeRow[]): string[] {
  const seconds = (tool: string, direction: string): number | undefined => {
    const row = rows.find((each) => each.tool === tool && each.direction === direction && each.samples.length > 0);
    return row && median(row.samples.map((sample) => sample.seconds));
  };
  return (['upload', 'download'] as const).flatMap((direction) => {
    const rsync = seconds('rsync -r --fsync', direction);
    const floor = seconds(floorTool, direction);
    if (rsync === undefined || floor === undefined) return [];
    return [
      `${direction}: the target allows Ferry ${formatNumber(rsync / 2)} s (half of \`rsync -r --fsync\`); the durable copy alone took ${formatNumber(floor)} s (${(rsync / floor).toFixed(2)}× \`rsync -r --fsync\`).`,
    ];
  });
}
