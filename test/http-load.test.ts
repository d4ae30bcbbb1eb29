/**
 * The HTTP side under load: 100 downloads and 50 tus uploads of 16 MiB at once against one
 * `ferry serve`, every byte right, no error, and the server's memory within the same bound as
 * the Ferry side's (its chunk budget, whatever the number of clients).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import t from 'tap';
import { Upload } from 'tus-js-client';
import { tokenFor } from './helpers/accounts.js';
import { makeFile } from './helpers/files.js';
import { bearer, freePort, send } from './helpers/http.js';
import { spawnServer } from './helpers/server-process.js';
import { tempDir } from './helpers/temp-dir.js';

const MiB = 1024 * 1024;
/**
 * What the server may grow by under this load: its chunk budget (64 MiB by default: every chunk
 * being received, written, read or sent holds one) and 128 MiB for the rest, as the fuzz allows
 * the Ferry side: V8's garbage between collections (the 800 MiB of upload bodies arrive as 64 KiB
 * buffers Node's HTTP parser allocates), 150 connections' request and response objects. Measured
 * while writing this: 120-140 MiB over a fresh `ferry serve`'s own peak (about 200 MiB: its
 * threads, LMDB). A queue that grew with the clients or the bytes would pass it by hundreds of MiB.
 */
const maxServerGrowthBytes = 192 * MiB;

function peakRssBytes(pid: number): number {
  const match = /^VmHWM:\s+(\d+)\s+kB$/mu.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) * 1024 : Number.NaN;
}

/** A download's status and the SHA-256 of its body (hashed as it streams: 100 bodies are not kept). */
function download(url: string, token: string): Promise<{ status: number; sha256: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    let bytes = 0;
    request(url, { headers: bearer(token), agent: false }, (response) => {
      response.on('data', (piece: Buffer) => {
        bytes += piece.length;
        hash.update(piece);
      });
      response.on('end', () => resolve({ status: response.statusCode ?? 0, sha256: hash.digest('hex'), bytes }));
      response.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
}

function tusUpload(bytes: Buffer, endpoint: string, token: string, filename: string, sha256: string): Promise<Error | undefined> {
  return new Promise((resolve) => {
    new Upload(bytes, {
      endpoint,
      headers: bearer(token),
      metadata: { filename, sha256 },
      retryDelays: null,
      onSuccess: () => resolve(undefined),
      onError: (error) => resolve(error),
    }).start();
  });
}

t.test('100 downloads and 50 tus uploads of 16 MiB at once: all exact, no error, server memory bounded', async (t) => {
  const httpPort = await freePort();
  const server = await spawnServer(t, tempDir(t, 'ferry-data'), ['--http-port', String(httpPort)]);
  const token = tokenFor(server.port)!;
  const base = `http://127.0.0.1:${httpPort}`;
  const file = await makeFile(tempDir(t), 'load.bin', 16 * MiB);
  const startRss = peakRssBytes(server.child.pid!);
  t.equal(await tusUpload(file.bytes, `${base}/tus/`, token, 'load.bin', file.sha256), undefined, 'the file to download, uploaded');

  const [downloads, uploads] = await Promise.all([
    Promise.all(Array.from({ length: 100 }, () => download(`${base}/files/load.bin`, token))),
    Promise.all(Array.from({ length: 50 }, (_, index) => tusUpload(file.bytes, `${base}/tus/`, token, `up/${index}.bin`, file.sha256))),
  ]);
  t.equal(
    downloads.filter((result) => result.status === 200 && result.sha256 === file.sha256).length,
    100,
    '100 downloads, every byte right',
  );
  t.same(
    uploads.filter((error) => error !== undefined).map((error) => error.message.slice(0, 200)),
    [],
    '50 uploads, no error',
  );
  const listed = (await send(`${base}/api/files?prefix=up%2F`, { headers: bearer(token) })).json<{ files: { sha256: string }[] }>();
  t.equal(listed.files.filter((entry) => entry.sha256 === file.sha256).length, 50, 'all 50 stored and verified');
  const growth = peakRssBytes(server.child.pid!) - startRss;
  t.ok(
    growth < maxServerGrowthBytes,
    `server peak RSS grew by ${(growth / MiB).toFixed(0)} MiB over its start (< ${maxServerGrowthBytes / MiB} MiB)`,
  );
});
