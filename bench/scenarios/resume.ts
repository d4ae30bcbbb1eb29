import { performance } from 'node:perf_hooks';
import { FerryClient } from '../../src/client/client.js';
import type { UploadResult } from '../../src/client/upload.js';
import { type BenchContext, log } from '../lib/context.js';
import { type SourceFile, makeTempDir, removeDir } from '../lib/files.js';
import type { ScenarioReport } from '../lib/report.js';
import { FerryServer } from '../lib/server.js';
import { median } from '../lib/stats.js';
import { MiB, formatNumber, formatSize } from '../lib/units.js';

export const cutFraction = 0.9;

export interface ResumeRun {
  /** Bytes the first attempt had sent when its connection was destroyed. */
  cutAtBytes: number;
  resumeSeconds: number;
  resumeBytesSent: number;
  freshSeconds: number;
  freshBytesSent: number;
  /** Resume as a percentage of the fresh upload. */
  timePercent: number;
  bytesPercent: number;
}

function verified(result: UploadResult, source: SourceFile, what: string): UploadResult {
  if (result.sha256 !== source.sha256 || result.size !== source.size) throw new Error(`${what}: server reports sha256 ${result.sha256}, expected ${source.sha256}`);
  return result;
}

/** Uploads until `cutFraction` of the file has been sent, then destroys the connection, as a dropped link would. */
async function cutUpload(port: number, source: SourceFile, name: string): Promise<number> {
  const client = new FerryClient({ host: '127.0.0.1', port, retry: { retries: 0 } });
  const connection = await client.connection();
  let cutAt: number | undefined;
  try {
    await client.upload(source.path, {
      name,
      onProgress: ({ transferred }) => {
        if (cutAt === undefined && transferred >= cutFraction * source.size) {
          cutAt = transferred;
          connection.destroy();
        }
      },
    });
  } catch (error) {
    if (cutAt === undefined) throw error;
    return cutAt;
  } finally {
    await client.close().catch(() => {});
  }
  throw new Error(`the upload finished before the cut at ${cutFraction * 100}% (the last chunk crossed it)`);
}

async function timedUpload(port: number, source: SourceFile, name: string): Promise<{ seconds: number; result: UploadResult }> {
  // Retries as a real client would: the server may not yet have seen the old connection go.
  const client = new FerryClient({ host: '127.0.0.1', port, retry: { retries: 5 } });
  try {
    const started = performance.now();
    const result = verified(await client.upload(source.path, { name }), source, `upload of ${name}`);
    return { seconds: (performance.now() - started) / 1000, result };
  } finally {
    await client.close();
  }
}

async function resumeRun(ctx: BenchContext, index: number): Promise<ResumeRun> {
  const source = await ctx.source(ctx.options.sizeBytes);
  const dataDir = await makeTempDir('disk', 'resume-data');
  const server = await FerryServer.start(dataDir);
  try {
    const cutAtBytes = await cutUpload(server.port, source, 'resumed.bin');
    const resume = await timedUpload(server.port, source, 'resumed.bin');
    if (!resume.result.resumed) throw new Error('the second upload did not resume (the server kept no session)');
    const fresh = await timedUpload(server.port, source, 'fresh.bin');
    await server.stop();
    const run: ResumeRun = {
      cutAtBytes,
      resumeSeconds: resume.seconds,
      resumeBytesSent: resume.result.bytesSent,
      freshSeconds: fresh.seconds,
      freshBytesSent: fresh.result.bytesSent,
      timePercent: (100 * resume.seconds) / fresh.seconds,
      bytesPercent: (100 * resume.result.bytesSent) / fresh.result.bytesSent,
    };
    log(`resume run ${index}: ${formatNumber(run.resumeSeconds)} s / ${formatNumber(run.freshSeconds)} s fresh (${formatNumber(run.timePercent)}%), ${formatNumber(run.bytesPercent)}% of the bytes`);
    return run;
  } finally {
    await server.stop().catch(() => {});
    await removeDir(dataDir);
  }
}

export async function runResume(ctx: BenchContext): Promise<ScenarioReport> {
  const runs: ResumeRun[] = [];
  for (let index = 1; index <= ctx.options.runs; index += 1) runs.push(await resumeRun(ctx, index));
  const m = (pick: (run: ResumeRun) => number): number => median(runs.map(pick));
  const size = formatSize(ctx.options.sizeBytes);
  return {
    id: 'resume',
    title: `Resume: a ${size} upload cut at ${cutFraction * 100}%, finished vs a fresh upload`,
    notes: [
      `Client library in the bench process, \`ferry serve\` in its own. The first upload's connection is destroyed from its progress callback once ${cutFraction * 100}% of the bytes are sent; a new client then uploads the same file under the same name and resumes. "fresh" uploads the same file under another name on the same server. Medians of ${ctx.options.runs} run(s).`,
      'Bytes are payload bytes sent by the client (UploadResult.bytesSent); the resume re-sends whatever the server had not yet synced and recorded when the link dropped.',
    ],
    tables: [
      {
        headers: ['cut at MiB', 'resume s', 'resume MiB sent', 'fresh s', 'fresh MiB sent', 'resume time % of fresh', 'resume bytes % of fresh'],
        numeric: [0, 1, 2, 3, 4, 5, 6],
        rows: [
          [
            formatNumber(m((r) => r.cutAtBytes) / MiB),
            formatNumber(m((r) => r.resumeSeconds)),
            formatNumber(m((r) => r.resumeBytesSent) / MiB),
            formatNumber(m((r) => r.freshSeconds)),
            formatNumber(m((r) => r.freshBytesSent) / MiB),
            formatNumber(m((r) => r.timePercent)),
            formatNumber(m((r) => r.bytesPercent)),
          ],
        ],
      },
    ],
    data: { sizeBytes: ctx.options.sizeBytes, cutFraction, runs },
  };
}
