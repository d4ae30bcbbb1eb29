/**
 * The client library's memory with many uploads at once, in a process that does nothing else (the
 * bench's own process holds what its other scenarios and phases left behind: a round of downloads
 * alone keeps the download chunk budget, 128 MiB, for reuse). Run as
 *
 *     node dist/bench/hooks/upload-memory.js
 *
 * with FERRY_BENCH_UPLOAD_MEMORY set to the JSON of an `UploadMemoryJob`: it connects `clients`
 * FerryClients in clear text with the token, uploads `source` once from each, all at once, and
 * prints an `UploadMemoryReport` as JSON.
 */
import { readFileSync } from 'node:fs';
import { FerryClient } from '../../src/client/client.js';

export interface UploadMemoryJob {
  port: number;
  token: string;
  source: string;
  clients: number;
  /** Names are `${prefix}${index}`. */
  prefix: string;
}

export interface UploadMemoryReport {
  /** RSS with every client connected, before the uploads. */
  connectedRssBytes: number;
  /** The process's peak RSS (VmHWM), start-up included. */
  peakRssBytes: number;
}

function statusBytes(field: 'VmRSS' | 'VmHWM'): number {
  const match = new RegExp(`${field}:\\s+(\\d+) kB`, 'u').exec(readFileSync('/proc/self/status', 'utf8'));
  if (!match) throw new Error(`no ${field} in /proc/self/status`);
  return Number(match[1]) * 1024;
}

const job = JSON.parse(process.env['FERRY_BENCH_UPLOAD_MEMORY'] ?? '') as UploadMemoryJob;
const clients = Array.from(
  { length: job.clients },
  () => new FerryClient({ host: '127.0.0.1', port: job.port, retry: { retries: 0 }, credentials: { token: job.token }, tls: false }),
);
try {
  await Promise.all(clients.map((client) => client.connection()));
  const connectedRssBytes = statusBytes('VmRSS');
  await Promise.all(clients.map((client, index) => client.upload(job.source, { name: `${job.prefix}${index}` })));
  const report: UploadMemoryReport = { connectedRssBytes, peakRssBytes: statusBytes('VmHWM') };
  process.stdout.write(JSON.stringify(report));
} finally {
  await Promise.all(clients.map((client) => client.close()));
}
