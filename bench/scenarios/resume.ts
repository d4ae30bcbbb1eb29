import { performance } from 'node:perf_hooks';
import { FerryClient } from '../../src/client/client.js';
import type { UploadResult } from '../../src/client/upload.js';
import { type BenchContext, log } from '../lib/context.js';
import { type SourceFile, makeTempDir, removeDir } from '../lib/files.js';
import type { ScenarioReport } from '../lib/report.js';
import { FerryServer, loginAt } from '../lib/server.js';
import { median } from '../lib/stats.js';
import { MiB, formatNumber, formatBytes } from '../lib/units.js';

export const cutFraction = 0.9;

/** How the interrupted upload is finished. */
export type ResumeWay = 'retry' | 'new-client';

export interface ResumeCase {
  /** Bytes the first attempt had sent when its connection was destroyed. */
  cutAtBytes: number;
  /** From the cut to the verified end. */
  resumeSeconds: number;
  /** Payload bytes sent after the cut. */
  resumeBytesSent: number;
}

export interface ResumeRun {
  /** The client's own retry after the link dropped (same process: what the CLI does). */
  retry: ResumeCase;
  /** Another client (a new process, after a client crash): it reads and hashes the file again. */
  newClient: ResumeCase;
  freshSeconds: number;
  freshBytesSent: number;
  /** The retry's time and bytes as percentages of the fresh upload's (the target's case). */
  timePercent: number;
  bytesPercent: number;
  newClientTimePercent: number;
}

function verified(result: UploadResult, source: SourceFile, what: string): UploadResult {
  if (result.sha256 !== source.sha256 || result.size !== source.size)
    throw new Error(`${what}: server reports sha256 ${result.sha256}, expected ${source.sha256}`);
  return result;
}

/**
 * Uploads `source`, destroying the connection (as a dropped link would) once `cutFraction` of it
 * is sent. With `retries` the same client reconnects and resumes by itself; without, the upload
 * fails and is left for another client. Returns the bytes sent before the cut, when it happened,
 * and the finished upload if the client resumed it.
 */
async function uploadCut(
  port: number,
  source: SourceFile,
  name: string,
  retries: number,
): Promise<{ cutAtBytes: number; cutAt: number; result?: UploadResult }> {
  const client = new FerryClient({ host: '127.0.0.1', port, retry: { retries }, ...loginAt(port) });
  const connection = await client.connection();
  let cut: { cutAtBytes: number; cutAt: number } | undefined;
  try {
    const result = await client.upload(source.path, {
      name,
      onProgress: ({ transferred }) => {
        if (cut === undefined && transferred >= cutFraction * source.size) {
          cut = { cutAtBytes: transferred, cutAt: performance.now() };
          connection.destroy();
        }
      },
    });
    if (cut === undefined) throw new Error(`the upload finished before the cut at ${cutFraction * 100}% (the last chunk crossed it)`);
    return { ...cut, result: verified(result, source, `upload of ${name}`) };
  } catch (error) {
    if (cut === undefined || retries > 0) throw error;
    return cut;
  } finally {
    await client.close().catch(() => undefined); // cleanup after the measurement: its outcome is recorded already
  }
}

async function timedUpload(port: number, source: SourceFile, name: string): Promise<{ seconds: number; result: UploadResult }> {
  // Retries as a real client would: the server may not yet have seen the old connection go.
  const client = new FerryClient({ host: '127.0.0.1', port, retry: { retries: 5 }, ...loginAt(port) });
  try {
    const started = performance.now();
    const result = verified(await client.upload(source.path, { name }), source, `upload of ${name}`);
    return { seconds: (performance.now() - started) / 1000, result };
  } finally {
    await client.close();
  }
}

/** The client's own retry finishes the upload it was making when the link dropped. */
async function resumeByRetry(port: number, source: SourceFile): Promise<ResumeCase> {
  const { cutAtBytes, cutAt, result } = await uploadCut(port, source, 'retried.bin', 5);
  if (!result?.resumed) throw new Error('the retry did not resume (the server kept no session)');
  return { cutAtBytes, resumeSeconds: (performance.now() - cutAt) / 1000, resumeBytesSent: result.bytesSent - cutAtBytes };
}

/** A new client finishes an upload another left when its link dropped. */
async function resumeByNewClient(port: number, source: SourceFile): Promise<ResumeCase> {
  const { cutAtBytes } = await uploadCut(port, source, 'resumed.bin', 0);
  const resume = await timedUpload(port, source, 'resumed.bin');
  if (!resume.result.resumed) throw new Error('the second upload did not resume (the server kept no session)');
  return { cutAtBytes, resumeSeconds: resume.seconds, resumeBytesSent: resume.result.bytesSent };
}

async function resumeRun(ctx: BenchContext, index: number): Promise<ResumeRun> {
  const source = await ctx.source(ctx.options.sizeBytes);
  const dataDir = await makeTempDir('disk', 'resume-data');
  // In clear text, as before TLS: what a resume costs is the engine's, and the rows stay comparable.
  const server = await FerryServer.start(dataDir, ['--no-tls']);
  try {
    const retry = await resumeByRetry(server.port, source);
    const newClient = await resumeByNewClient(server.port, source);
    const fresh = await timedUpload(server.port, source, 'fresh.bin');
    await server.stop();
    const run: ResumeRun = {
      retry,
      newClient,
      freshSeconds: fresh.seconds,
      freshBytesSent: fresh.result.bytesSent,
      timePercent: (100 * retry.resumeSeconds) / fresh.seconds,
      bytesPercent: (100 * retry.resumeBytesSent) / fresh.result.bytesSent,
      newClientTimePercent: (100 * newClient.resumeSeconds) / fresh.seconds,
    };
    log(
      `resume run ${index}: retry ${formatNumber(retry.resumeSeconds)} s (${formatNumber(run.timePercent)}%), new client ${formatNumber(newClient.resumeSeconds)} s (${formatNumber(run.newClientTimePercent)}%), fresh ${formatNumber(run.freshSeconds)} s; retry sent ${formatNumber(run.bytesPercent)}% of the bytes`,
    );
    return run;
  } finally {
    await server.stop().catch(() => undefined); // cleanup: stop() kills a server that ignores SIGTERM; one that exited already has nothing left to stop
    await removeDir(dataDir);
  }
}

export async function runResume(ctx: BenchContext): Promise<ScenarioReport> {
  const runs: ResumeRun[] = [];
  for (let index = 1; index <= ctx.options.runs; index += 1) runs.push(await resumeRun(ctx, index));
  const m = (pick: (run: ResumeRun) => number): number => median(runs.map(pick));
  const size = formatBytes(ctx.options.sizeBytes);
  const row = (label: string, pick: (run: ResumeRun) => ResumeCase): string[] => [
    label,
    formatNumber(m((r) => pick(r).cutAtBytes) / MiB),
    formatNumber(m((r) => pick(r).resumeSeconds)),
    formatNumber(m((r) => pick(r).resumeBytesSent) / MiB),
    formatNumber(m((r) => (100 * pick(r).resumeSeconds) / r.freshSeconds)),
    formatNumber(m((r) => (100 * pick(r).resumeBytesSent) / r.freshBytesSent)),
  ];
  return {
    id: 'resume',
    title: `Resume: a ${size} upload cut at ${cutFraction * 100}%, finished vs a fresh upload`,
    notes: [
      `Client library in the bench process, \`ferry serve\` in its own. The upload's connection is destroyed from its progress callback once ${cutFraction * 100}% of the bytes are sent, as a dropped link would be. "retry": the same client reconnects and resumes by itself, as the CLI does; timed from the cut. "new client": the upload fails, and another client uploads the same file under the same name and resumes, as after a client crash; it must read and hash the whole file again (the SHA-256 covers it all), so it is bounded by SHA-256 at about 1 s of one core per GiB. "fresh" uploads the same file under another name on the same server: ${formatNumber(m((r) => r.freshSeconds))} s, ${formatNumber(m((r) => r.freshBytesSent) / MiB)} MiB. Medians of ${ctx.options.runs} run(s).`,
      'Bytes are payload bytes sent by the client after the cut (UploadResult.bytesSent); the resume re-sends whatever the server had not yet synced and recorded when the link dropped.',
    ],
    tables: [
      {
        headers: ['resumed by', 'cut at MiB', 'resume s', 'resume MiB sent', 'time % of fresh', 'bytes % of fresh'],
        numeric: [1, 2, 3, 4, 5],
        rows: [row('retry (same client)', (r) => r.retry), row('new client', (r) => r.newClient)],
      },
    ],
    data: { sizeBytes: ctx.options.sizeBytes, cutFraction, runs },
  };
}
