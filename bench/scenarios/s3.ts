/**
 * A server on an S3 store (issue 17): one big file uploaded and downloaded through `ferry serve
 * --store s3://...` (every chunk checked, the SHA-256 verified end to end), against the AWS SDK's
 * own multipart upload and ranged GETs to the same store in the same run (8 MiB parts, 4 at once:
 * what Ferry's chunks and readahead come to). The store is the S3 endpoint in S3_ENDPOINT (`npm
 * run bench` starts a throwaway Ceph RGW on 127.0.0.1 where Ceph is installed, as `npm test`
 * does); without one the scenario is skipped, saying why. Pairs alternate which goes first.
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { open } from 'node:fs/promises';
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { type S3Settings, makeS3Client } from '../../src/object-store/s3-client.js';
import { type BenchContext, log } from '../lib/context.js';
import { boxCpuMeter } from '../lib/proc.js';
import { runFerryCli } from '../lib/ferry-cli.js';
import { makeTempDir, removeDir } from '../lib/files.js';
import type { ScenarioReport } from '../lib/report.js';
import { FerryServer } from '../lib/server.js';
import { median } from '../lib/stats.js';
import { MiB, formatBytes, formatNumber, mibPerSecond } from '../lib/units.js';

const partBytes = 8 * MiB;
const partsAtOnce = 4;

interface Sample {
  seconds: number;
  mibPerSecond: number;
  /** CPU seconds of Ferry's client and server, or of this process for the SDK (the store's own is in neither). */
  cpuSeconds: number;
  /** The whole machine's busy CPU meanwhile, in percent of one core (the store's daemons included). */
  boxBusyPercent: number;
}

export interface S3Result {
  fileBytes: number;
  ferryUp: Sample[];
  /** Read from the store by the client itself (`--s3-direct-reads`, the server's default in this bench). */
  ferryDown: Sample[];
  /** Through the server (`ferry download --no-direct`). */
  ferryDownRelayed: Sample[];
  sdkUp: Sample[];
  sdkDown: Sample[];
  /** The SDK's download made durable as Ferry's client makes its own (a like-for-like row; the target is against `sdkDown`). */
  sdkDownSynced: Sample[];
  serverPeakRssBytes?: number;
  skipped?: string;
}

function ownCpuSeconds(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

/** Runs `transfer`, adding the whole machine's busy CPU meanwhile to its sample. */
async function withBoxCpu(cores: number, transfer: () => Promise<Omit<Sample, 'boxBusyPercent'>>): Promise<Sample> {
  const stop = boxCpuMeter(cores);
  const sample = await transfer();
  return { ...sample, boxBusyPercent: stop().busyPercent };
}

/** Runs `work` over the part numbers 0..count-1, `partsAtOnce` at a time. */
async function eachPart(count: number, work: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(partsAtOnce, count) }, async () => {
      for (let index = next++; index < count; index = next++) await work(index);
    }),
  );
}

async function sdkUpload(s3: S3Client, bucket: string, key: string, path: string, size: number): Promise<Omit<Sample, 'boxBusyPercent'>> {
  const started = performance.now();
  const cpu = ownCpuSeconds();
  const file = await open(path, 'r');
  try {
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
    const count = Math.ceil(size / partBytes);
    const etags: string[] = [];
    await eachPart(count, async (index) => {
      const length = Math.min(partBytes, size - index * partBytes);
      const body = Buffer.allocUnsafe(length);
      await file.read(body, 0, length, index * partBytes);
      const part = await s3.send(
        new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: index + 1, Body: body, ContentLength: length }),
      );
      etags[index] = part.ETag!;
    });
    await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: key,
        UploadId,
        MultipartUpload: { Parts: etags.map((ETag, index) => ({ ETag, PartNumber: index + 1 })) },
      }),
    );
  } finally {
    await file.close();
  }
  const seconds = (performance.now() - started) / 1000;
  return { seconds, cpuSeconds: ownCpuSeconds() - cpu, mibPerSecond: mibPerSecond(size, seconds) };
}

/**
 * The SDK's ranged GETs written to `path`. `synced`: made durable as Ferry's client makes a download
 * (an fdatasync in the background once every 64 MiB written, and one at the end).
 */
async function sdkDownload(
  s3: S3Client,
  bucket: string,
  key: string,
  path: string,
  size: number,
  synced = false,
): Promise<Omit<Sample, 'boxBusyPercent'>> {
  const started = performance.now();
  const cpu = ownCpuSeconds();
  const file = await open(path, 'w');
  const syncEvery = 64 * MiB;
  let unsynced = 0;
  let syncing: Promise<void> = Promise.resolve();
  try {
    await eachPart(Math.ceil(size / partBytes), async (index) => {
      const from = index * partBytes;
      const to = Math.min(size, from + partBytes) - 1;
      const response = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${from}-${to}` }));
      let at = from;
      for await (const piece of response.Body as AsyncIterable<Uint8Array>) {
        await file.write(piece, 0, piece.byteLength, at);
        at += piece.byteLength;
        unsynced += piece.byteLength;
        if (synced && unsynced >= syncEvery) {
          unsynced = 0;
          syncing = syncing.then(() => file.datasync());
        }
      }
      if (at !== to + 1) throw new Error(`ranged GET of part ${index + 1}: ${at - from} bytes`);
    });
    if (synced) await syncing.then(() => file.datasync());
  } finally {
    await file.close();
  }
  const seconds = (performance.now() - started) / 1000;
  return { seconds, cpuSeconds: ownCpuSeconds() - cpu, mibPerSecond: mibPerSecond(size, seconds) };
}

export async function runS3(ctx: BenchContext): Promise<ScenarioReport> {
  const fileBytes = ctx.options.sizeBytes;
  const { cores } = ctx.machine;
  const result: S3Result = { fileBytes, ferryUp: [], ferryDown: [], ferryDownRelayed: [], sdkUp: [], sdkDown: [], sdkDownSynced: [] };
  const { S3_ENDPOINT: endpoint, S3_ACCESS_KEY: accessKeyId, S3_SECRET_KEY: secretAccessKey } = process.env;
  if (!endpoint || !accessKeyId || !secretAccessKey) {
    result.skipped =
      process.env['FERRY_S3_SKIP'] ?? 'no S3 endpoint (S3_ENDPOINT unset): npm run bench starts a Ceph RGW where Ceph is installed';
  } else {
    const settings: S3Settings = {
      bucket: `ferry-bench-${Date.now().toString(36)}`,
      prefix: '',
      endpoint,
      region: process.env['S3_REGION'] ?? 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId, secretAccessKey },
    };
    const s3 = makeS3Client(settings);
    await s3.send(new CreateBucketCommand({ Bucket: settings.bucket }));
    // The server reaches the store with the same keys, the SDK's usual way.
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey });
    const source = await ctx.source(fileBytes);
    const work = await makeTempDir('disk', 's3');
    const server = await FerryServer.start(join(work, 'ferry-data'), [
      '--no-tls',
      '--store',
      `s3://${settings.bucket}/ferry`,
      '--s3-endpoint',
      endpoint,
      '--s3-direct-reads',
    ]);
    try {
      /** One verified CLI transfer: its time, and the CPU of the command and of the server meanwhile. */
      const ferryTransfer = async (args: string[]): Promise<Omit<Sample, 'boxBusyPercent'>> => {
        const serverCpu = server.cpuSeconds();
        const run = await runFerryCli<{ sha256: string }>([...args, '--server', server.address, '--retries', '0'], work);
        if (run.result.sha256 !== source.sha256) throw new Error(`ferry ${args[0]}: sha256 ${run.result.sha256}`);
        const cpuSeconds = run.cpuSeconds + server.cpuSeconds() - serverCpu;
        return { seconds: run.seconds, cpuSeconds, mibPerSecond: mibPerSecond(fileBytes, run.seconds) };
      };
      const ferryRun = async (pair: number): Promise<void> => {
        const name = `pair-${pair}.bin`;
        result.ferryUp.push(await withBoxCpu(cores, () => ferryTransfer(['upload', source.path, '--as', name])));
        const out = join(work, `down-${pair}.bin`);
        result.ferryDown.push(await withBoxCpu(cores, () => ferryTransfer(['download', name, '--out', out])));
        await removeDir(out);
        result.ferryDownRelayed.push(await withBoxCpu(cores, () => ferryTransfer(['download', name, '--out', out, '--no-direct'])));
        await removeDir(out);
        await runFerryCli(['delete', name, '--server', server.address], work);
      };
      const sdkRun = async (pair: number): Promise<void> => {
        const key = `sdk/pair-${pair}.bin`;
        result.sdkUp.push(await withBoxCpu(cores, () => sdkUpload(s3, settings.bucket, key, source.path, fileBytes)));
        const out = join(work, `sdk-${pair}.bin`);
        result.sdkDown.push(await withBoxCpu(cores, () => sdkDownload(s3, settings.bucket, key, out, fileBytes)));
        await removeDir(out);
        result.sdkDownSynced.push(await withBoxCpu(cores, () => sdkDownload(s3, settings.bucket, key, out, fileBytes, true)));
        await removeDir(out);
        await s3.send(new DeleteObjectCommand({ Bucket: settings.bucket, Key: key }));
      };
      for (let pair = 0; pair < ctx.options.pairs; pair += 1) {
        if (pair % 2 === 0) {
          await ferryRun(pair);
          await sdkRun(pair);
        } else {
          await sdkRun(pair);
          await ferryRun(pair);
        }
        log(
          `s3 pair ${pair + 1}: Ferry up ${formatNumber(result.ferryUp.at(-1)!.mibPerSecond)} / down ${formatNumber(result.ferryDown.at(-1)!.mibPerSecond)} MiB/s; ` +
            `SDK up ${formatNumber(result.sdkUp.at(-1)!.mibPerSecond)} / down ${formatNumber(result.sdkDown.at(-1)!.mibPerSecond)} MiB/s`,
        );
      }
    } finally {
      result.serverPeakRssBytes = (await server.stop()).peakRssBytes;
      s3.destroy();
      await removeDir(work);
    }
  }
  const cell = (samples: Sample[], pick: (sample: Sample) => number): string =>
    samples.length === 0 ? '–' : formatNumber(median(samples.map(pick)));
  const ratio = (ferry: Sample[], sdk: Sample[]): string => {
    if (ferry.length === 0 || sdk.length === 0) return result.skipped ? `skipped: ${result.skipped}` : '–';
    const ratios = ferry.map((sample, index) => sample.mibPerSecond / sdk[index]!.mibPerSecond);
    return `**${median(ratios).toFixed(2)}×** (${ratios.map((r) => r.toFixed(2)).join(', ')})`;
  };
  const row = (direction: string, tool: string, samples: Sample[], versus?: Sample[]): string[] => [
    direction,
    tool,
    cell(samples, (s) => s.mibPerSecond),
    cell(samples, (s) => s.cpuSeconds),
    cell(samples, (s) => s.boxBusyPercent),
    versus ? ratio(samples, versus) : '–',
  ];
  const rows = [
    row('upload', 'Ferry (verified)', result.ferryUp, result.sdkUp),
    row('upload', 'SDK multipart', result.sdkUp),
    row('download', 'Ferry (verified), read from the store', result.ferryDown, result.sdkDown),
    row('download', 'Ferry (verified), through the server', result.ferryDownRelayed, result.sdkDown),
    row('download', 'SDK ranged GETs', result.sdkDown),
    row('download', 'SDK ranged GETs, synced as Ferry', result.sdkDownSynced),
  ];
  const durableRatio = ratio(result.ferryDown, result.sdkDownSynced);
  return {
    id: 's3',
    title: `A server on an S3 store: ${formatBytes(fileBytes)} up and down`,
    notes: [
      `\`ferry upload\`/\`download\` (clear text) with \`ferry serve --store s3://... --s3-direct-reads\` on the S3 endpoint, against @aws-sdk/client-s3 directly (multipart upload and ranged GETs of ${formatBytes(partBytes)}, ${partsAtOnce} at once) to the same endpoint. Medians of ${ctx.options.pairs} pairs, alternating which goes first.`,
      '*Read from the store*: the client reads the file from the store itself (ranged GETs of URLs the server signs, capability get-direct), checking each chunk’s xxh64 (from the server) and the SHA-256; *through the server*: `--no-direct`, the server reads the store and streams the chunks.',
      'CPU s: Ferry’s client and server; the SDK’s process. The store’s own CPU is in neither (it is the same work for both). Box CPU %: the whole machine meanwhile, store included, in percent of one core (200 = both cores of this machine busy).',
      'Both write the downloaded file to the same disk; Ferry’s client makes it durable before it says done (fdatasync in the background every 64 MiB, and at the end), the SDK’s writes are not synced. The row *synced as Ferry* is the SDK’s download made durable the same way, for a like-for-like comparison (the target stays against the unsynced row).',
      `Ferry ÷ the synced SDK download: ${durableRatio}.`,
      `Server peak RSS: ${result.serverPeakRssBytes === undefined ? '–' : formatBytes(result.serverPeakRssBytes)}.`,
      'Target (issue 17): Ferry ≥ 0.85× the SDK’s MiB/s both ways.',
    ],
    tables: [
      {
        headers: ['direction', 'tool', 'MiB/s', 'CPU s', 'box CPU %', 'Ferry ÷ SDK (per pair)'],
        numeric: [2, 3, 4],
        rows,
      },
    ],
    data: result,
  };
}
