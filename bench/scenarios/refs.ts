import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type BenchContext, log } from '../lib/context.js';
import { type TransferSample, ferryDownload, ferryUpload } from '../lib/ferry-transfer.js';
import { type Medium, fileSize, makeTempDir, removeDir, tmpfsAvailable } from '../lib/files.js';
import { type Reference, type ReferenceSession, cp, makeRemoteDir, nc, rsync, rsyncSha1, socat } from '../lib/peers.js';
import { rsyncSsh, scp, sftp } from '../lib/ssh-peers.js';
import { boxCpuMeter, reapedChildrenCpuSeconds } from '../lib/proc.js';
import type { ScenarioReport, Table } from '../lib/report.js';
import { FerryServer } from '../lib/server.js';
import { median } from '../lib/stats.js';
import { formatNumber, formatBytes, mibPerSecond } from '../lib/units.js';

type Direction = 'upload' | 'download';

/** Clear-text references first (Ferry with --no-tls beside them), then the ssh ones (Ferry over TLS). */
const references: readonly Reference[] = [socat, nc, rsync, rsyncSha1, cp, scp, sftp, rsyncSsh];

export interface RefSample {
  seconds: number;
  mibPerSecond: number;
  /** CPU seconds of the reference's processes (sender, receiver, daemon forks). */
  cpuSeconds: number;
  /** CPU the rest of the machine used meanwhile, in % of one core. */
  othersPercent: number;
}

export interface RefPair {
  direction: Direction;
  ferry: TransferSample;
  reference: RefSample;
  /** Ferry's MiB/s divided by the reference's, for this pair. */
  ratio: number;
}

export interface RefResult {
  name: string;
  how: string;
  /** Ferry ran over TLS beside it (an ssh reference), else in clear text. */
  secure?: boolean;
  skipped?: string;
  pairs: RefPair[];
  /** Per direction: medians over the pairs. */
  summary: { direction: Direction; referenceMiBps: number; ferryMiBps: number; medianRatio: number; ratios: number[] }[];
}

async function timedReference(
  session: ReferenceSession,
  run: () => Promise<number>,
  check: string,
  size: number,
  cores: number,
): Promise<RefSample> {
  const cpu = (): number => reapedChildrenCpuSeconds() + (session.serviceCpuSeconds?.() ?? 0);
  const cpuBefore = cpu();
  const stopMeter = boxCpuMeter(cores);
  const seconds = await run();
  const box = stopMeter();
  const cpuSeconds = cpu() - cpuBefore;
  const written = await fileSize(check);
  if (written !== size) throw new Error(`reference wrote ${written} bytes to ${check}, expected ${size}`);
  return {
    seconds,
    mibPerSecond: mibPerSecond(size, seconds),
    cpuSeconds,
    othersPercent: Math.max(0, box.busyPercent - (100 * cpuSeconds) / seconds),
  };
}

/**
 * Ferry and one reference, same file, same disk, interleaved: Ferry up, reference up, Ferry
 * down, reference down, repeated `pairs` times. Adjacent runs see the same machine state, so
 * the ratio of a pair is steadier than either number alone.
 */
async function compare(ctx: BenchContext, reference: Reference): Promise<RefResult> {
  const missing = reference.missing();
  if (missing) {
    log(`skipping ${reference.name}: ${missing}`);
    return { name: reference.name, how: reference.how, skipped: missing, pairs: [], summary: [] };
  }
  const source = await ctx.source(ctx.options.sizeBytes);
  const { cores } = ctx.machine;
  const workDir = await makeTempDir(refsMedium(), `refs-${reference.name}`);
  const remoteDir = await makeRemoteDir(workDir);
  const outDir = join(workDir, 'out');
  await mkdir(outDir);
  let server: FerryServer | undefined;
  let session: ReferenceSession | undefined;
  const pairs: RefPair[] = [];
  try {
    server = await FerryServer.start(join(workDir, 'ferry-data'), reference.secure ? [] : ['--no-tls']);
    session = await reference.open(workDir, remoteDir);
    for (let index = 1; index <= ctx.options.pairs; index += 1) {
      const name = `pair-${index}.bin`;
      const ferryUp = await ferryUpload(server, source, name, ctx.workDir, cores);
      const refSession = session;
      const refUp = await timedReference(refSession, () => refSession.up(source.path, name), join(remoteDir, name), source.size, cores);
      pairs.push({ direction: 'upload', ferry: ferryUp, reference: refUp, ratio: ferryUp.mibPerSecond / refUp.mibPerSecond });
      const ferryDown = await ferryDownload(server, source, name, join(outDir, `ferry-${name}`), ctx.workDir, cores, false);
      const refOut = join(outDir, `ref-${name}`);
      const refDown = await timedReference(refSession, () => refSession.down(name, refOut), refOut, source.size, cores);
      pairs.push({ direction: 'download', ferry: ferryDown, reference: refDown, ratio: ferryDown.mibPerSecond / refDown.mibPerSecond });
      await rm(refOut, { force: true });
      await rm(join(remoteDir, name), { force: true });
      log(
        `${reference.name} pair ${index}: up Ferry ${formatNumber(ferryUp.mibPerSecond)} vs ${formatNumber(refUp.mibPerSecond)} MiB/s, ` +
          `down Ferry ${formatNumber(ferryDown.mibPerSecond)} vs ${formatNumber(refDown.mibPerSecond)} MiB/s`,
      );
    }
  } finally {
    await session?.close();
    await server?.stop().catch(() => undefined); // cleanup: stop() kills a server that ignores SIGTERM; one that exited already has nothing left to stop
    await removeDir(workDir);
  }
  const summary = (['upload', 'download'] as const).map((direction) => {
    const mine = pairs.filter((pair) => pair.direction === direction);
    return {
      direction,
      referenceMiBps: median(mine.map((pair) => pair.reference.mibPerSecond)),
      ferryMiBps: median(mine.map((pair) => pair.ferry.mibPerSecond)),
      medianRatio: median(mine.map((pair) => pair.ratio)),
      ratios: mine.map((pair) => pair.ratio),
    };
  });
  return { name: reference.name, how: reference.how, secure: reference.secure ?? false, pairs, summary };
}

/**
 * Where the references and Ferry write (server data, the rsync module, downloads): tmpfs where
 * there is one. There both sides are CPU-bound, which is what the speed targets compare; on disk,
 * rsync leaves gigabytes of dirty pages whose writeback lands on whatever runs next (the Bulk
 * table keeps disk rows).
 */
function refsMedium(): Medium {
  return tmpfsAvailable() ? 'tmpfs' : 'disk';
}

export async function runRefs(ctx: BenchContext): Promise<ScenarioReport> {
  const results: RefResult[] = [];
  for (const reference of references) {
    if (ctx.options.references.includes(reference.name)) results.push(await compare(ctx, reference));
    else
      results.push({
        name: reference.name,
        how: reference.how,
        skipped: `not selected (--refs ${ctx.options.references.join(',')})`,
        pairs: [],
        summary: [],
      });
  }
  const rows: string[][] = [];
  for (const result of results) {
    if (result.skipped) {
      rows.push([result.name, '–', '–', '–', '–', `skipped: ${result.skipped}`, '–', '–']);
      continue;
    }
    for (const s of result.summary) {
      const pairs = result.pairs.filter((pair) => pair.direction === s.direction);
      const refCpu = median(pairs.map((p) => p.reference.cpuSeconds));
      const ferryCpu = median(pairs.map((p) => p.ferry.clientCpuSeconds + p.ferry.serverCpuSeconds));
      rows.push([
        result.secure ? `${result.name} (Ferry over TLS)` : result.name,
        s.direction,
        formatNumber(s.referenceMiBps),
        formatNumber(s.ferryMiBps),
        `**${s.medianRatio.toFixed(2)}×**`,
        s.ratios.map((r) => r.toFixed(2)).join(', '),
        `${formatNumber(refCpu)} / ${formatNumber(ferryCpu)}`,
        `${formatNumber(median(pairs.map((p) => p.reference.othersPercent)))} / ${formatNumber(median(pairs.map((p) => p.ferry.othersPercent)))}`,
      ]);
    }
  }
  const table: Table = {
    headers: [
      'reference',
      'direction',
      'reference MiB/s',
      'Ferry MiB/s',
      'Ferry ÷ ref (median)',
      'per pair',
      'CPU s ref / Ferry',
      'others % ref / Ferry',
    ],
    numeric: [2, 3, 4],
    rows,
  };
  return {
    id: 'refs',
    title: `References: Ferry vs socat, nc, rsync, cp, scp, sftp, rsync over ssh on the same ${formatBytes(ctx.options.sizeBytes)} file, written to ${refsMedium() === 'tmpfs' ? 'tmpfs' : 'disk'}`,
    notes: [
      `Pairs run back to back (Ferry up, reference up, Ferry down, reference down) × ${ctx.options.pairs}; MiB/s columns are medians, the ratio is the median of the per-pair ratios.`,
      `Everything written (Ferry's data dir, the references' remote side, the downloads) is on ${refsMedium() === 'tmpfs' ? 'tmpfs (/dev/shm): both sides are CPU-bound there, and the speed targets are judged on these rows' : 'disk (no tmpfs here)'}; the source is read from the page cache.`,
      ...references.map((reference) => `${reference.name}: ${reference.how}.`),
      'Ferry beside socat, nc, rsync and cp: clear text (`--no-tls` on both ends), as they are; beside scp, sftp and rsync over ssh: TLS (its default: TLS 1.3, AES-128-GCM, certificate pinned), as they encrypt and authenticate too.',
      'Ferry: the `ferry` CLI against `ferry serve`, checked by the SHA-256 each reports (see Bulk; Ferry checks every chunk and the whole file itself). The references are checked by size only, and none of them syncs to disk; Ferry syncs every 8 MiB on upload, and every 64 MiB (in the background) and at the end of a download.',
      'CPU s: all processes of one transfer, medians (reference: sender, receiver, rsync daemon fork; Ferry: CLI client + server). Unlike wall time, it does not depend on what else the machine was doing.',
      'others %: CPU the rest of the machine used during the transfers (median, % of one core). Near 0 on a quiet machine; when it is high, the wall-clock numbers above are low.',
    ],
    tables: [table],
    data: { sizeBytes: ctx.options.sizeBytes, pairs: ctx.options.pairs, results },
  };
}
