import { join } from 'node:path';
import * as zlib from 'node:zlib';
import { type BenchContext, log } from '../lib/context.js';
import { runFerryCli } from '../lib/ferry-cli.js';
import { ferryDownload, ferryUpload } from '../lib/ferry-transfer.js';
import { type SourceFile, makeTempDir, removeDir, tmpfsAvailable } from '../lib/files.js';
import type { ScenarioReport } from '../lib/report.js';
import { FerryServer } from '../lib/server.js';
import { median, roundOrder } from '../lib/stats.js';
import { formatBytes, formatNumber } from '../lib/units.js';

type Direction = 'upload' | 'download';
type Content = 'text' | 'random';

interface CompressSample {
  content: Content;
  direction: Direction;
  /** The `--compress` value. */
  mode: string;
  pair: number;
  mibPerSecond: number;
  cpuSeconds: number;
  wireBytes: number;
  bytes: number;
}

/**
 * `--compress` on loopback (issue 16: `auto` must stay within 5% of `off` where the link is
 * faster than the compressor): the same file up and down with `off`, `auto` and a codec named,
 * interleaved round by round (the order rotating: `roundOrder`), for log-like text and for random bytes.
 * Clear text, so only compression sets the modes apart; the server's data dir and the downloads
 * on tmpfs when there is one.
 */
export async function runCompress(ctx: BenchContext): Promise<ScenarioReport> {
  const size = ctx.options.sizeBytes;
  const codec = 'zstdCompressSync' in zlib ? 'zstd' : 'brotli';
  const modes = ['off', 'auto', codec];
  const medium = tmpfsAvailable() ? 'tmpfs' : 'disk';
  const sources: Record<Content, SourceFile> = { text: await ctx.textSource(size), random: await ctx.source(size) };
  const dataDir = await makeTempDir(medium, 'compress-data');
  const outDir = await makeTempDir(medium, 'compress-out');
  const server = await FerryServer.start(dataDir, ['--no-tls']);
  const samples: CompressSample[] = [];
  try {
    for (let pair = 1; pair <= ctx.options.pairs; pair += 1) {
      const order = roundOrder(modes, pair - 1);
      for (const content of ['text', 'random'] as const) {
        const source = sources[content];
        for (const direction of ['upload', 'download'] as const) {
          for (const mode of order) {
            const name = `${content}-${mode}.bin`;
            const extra = ['--compress', mode];
            const sample =
              direction === 'upload'
                ? await ferryUpload(server, source, name, ctx.workDir, ctx.machine.cores, extra)
                : await ferryDownload(server, source, name, join(outDir, name), ctx.workDir, ctx.machine.cores, false, extra);
            samples.push({
              content,
              direction,
              mode,
              pair,
              mibPerSecond: sample.mibPerSecond,
              cpuSeconds: sample.clientCpuSeconds + sample.serverCpuSeconds,
              wireBytes: sample.wireBytes,
              bytes: sample.bytes,
            });
            log(`compress pair ${pair}: ${content} ${direction} --compress ${mode}: ${formatNumber(sample.mibPerSecond)} MiB/s`);
          }
        }
        for (const mode of modes) await runFerryCli(['delete', `${content}-${mode}.bin`, '--server', server.address], ctx.workDir);
      }
    }
  } finally {
    await server.stop().catch(() => undefined);
    await removeDir(dataDir);
    await removeDir(outDir);
  }
  const rows: string[][] = [];
  for (const content of ['text', 'random'] as const) {
    for (const direction of ['upload', 'download'] as const) {
      const of = (mode: string): CompressSample[] =>
        samples.filter((each) => each.content === content && each.direction === direction && each.mode === mode);
      for (const mode of modes) {
        const own = of(mode);
        const ratios = own.map((each) => each.mibPerSecond / of('off').find((off) => off.pair === each.pair)!.mibPerSecond);
        rows.push([
          `${content}, ${direction}, --compress ${mode}`,
          formatNumber(median(own.map((each) => each.mibPerSecond))),
          formatNumber(median(ratios)),
          formatNumber(median(own.map((each) => each.cpuSeconds))),
          formatNumber(median(own.map((each) => (100 * each.wireBytes) / each.bytes))),
        ]);
      }
    }
  }
  return {
    id: 'compress',
    title: `Compression on loopback: one ${formatBytes(size)} file, --compress off, auto and ${codec}`,
    notes: [
      `Log-like text (timestamps, words, counters; every line different) and random bytes, ${formatBytes(size)} each, up and down through the CLI against one \`ferry serve --no-tls\`, its data dir and the downloads on ${medium}.`,
      `${ctx.options.pairs} round(s); in each, the three modes run back to back, the order rotated by one each round (each mode takes each place once in three rounds). *vs off* is the mode's MiB/s over \`off\`'s in the same round, the median over rounds; issue 16's target for \`auto\` on loopback: at least 0.95.`,
      '*wire %*: payload bytes on the wire (`wireBytes` in the JSON result) as a share of the file. *CPU s*: client + server.',
      `${codec}: the codec \`auto\` picks on this Node (zstd needs Node 22.15 or later on both sides; brotli otherwise).`,
    ],
    tables: [
      {
        headers: ['case', 'MiB/s', 'vs off', 'CPU s', 'wire %'],
        numeric: [1, 2, 3, 4],
        rows,
      },
    ],
    data: samples,
  };
}
