import { loginAt } from './helpers/accounts.js';
import { closeSync, openSync, writeSync } from 'node:fs';
import { appendFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { FerryClient } from '../src/client/client.js';
import type { UploadResult } from '../src/client/upload.js';
import { FerryError } from '../src/protocol/errors.js';
import { startCutProxy } from './helpers/cut-proxy.js';
import { makeFile, sha256Of } from './helpers/files.js';
import { startServer } from './helpers/server.js';
import { tempDir } from './helpers/temp-dir.js';

const MiB = 1024 * 1024;
const chunkSizeBytes = 4 * MiB;
const size = 256 * MiB;

t.test('an upload cut at 60% resumes and sends at most the remaining 40% plus two chunks', async (t) => {
  const running = await startServer(t, { chunkSizeBytes });
  const proxy = await startCutProxy(t, running.port);
  const local = await makeFile(tempDir(t), 'big.bin', size);
  const first = running.client({ port: proxy.port, retries: 0 });
  const cut = proxy.cutAfter(Math.floor(size * 0.6), 'up');
  await t.rejects(first.upload(local.path, { name: 'big.bin' }), { code: 'ECONNLOST' }, 'the first run fails when the link drops');
  await cut;
  const second = running.client({ port: proxy.port, retries: 0 });
  const result = await second.upload(local.path, { name: 'big.bin' });
  t.equal(result.resumed, true, 'the second run resumes the session');
  t.equal(result.sha256, local.sha256, 'the stored file has the right SHA-256');
  t.ok(result.bytesSent <= size * 0.4 + 2 * chunkSizeBytes, `re-sent ${result.bytesSent} bytes, at most 40% + 2 chunks`);
  t.ok(result.bytesSent >= size * 0.4 - chunkSizeBytes, `sent the missing part (${result.bytesSent} bytes)`);
  t.equal(await sha256Of(join(running.dataDir, 'files', 'big.bin')), local.sha256, 'bytes on the server disk are exact');
});

t.test('an upload with retries reconnects and resumes by itself', async (t) => {
  const chunk = MiB;
  const running = await startServer(t, { chunkSizeBytes: chunk });
  const proxy = await startCutProxy(t, running.port);
  const local = await makeFile(tempDir(t), 'mid.bin', 32 * MiB + 5);
  const client = running.client({ port: proxy.port, retries: 3 });
  const cut = proxy.cutAfter(12 * MiB, 'up');
  const result = await client.upload(local.path, { name: 'mid.bin' });
  await cut;
  t.equal(result.sha256, local.sha256);
  t.equal(result.resumed, true);
  // What reached the server over both connections: the file, at most two chunks again, and the
  // frames' own bytes.
  t.ok(
    proxy.upstreamBytes <= local.bytes.length + 2 * chunk + 64 * 1024,
    `${proxy.upstreamBytes} bytes reached the server for ${local.bytes.length}`,
  );
});

t.test('a download cut at 60% resumes from its partial file', async (t) => {
  const running = await startServer(t, { chunkSizeBytes });
  const dir = tempDir(t);
  const local = await makeFile(dir, 'big.bin', size);
  await running.client().upload(local.path, { name: 'big.bin' });
  const proxy = await startCutProxy(t, running.port);
  const out = join(dir, 'copy.bin');
  const cut = proxy.cutAfter(Math.floor(size * 0.6), 'down');
  const first = running.client({ port: proxy.port, retries: 0 });
  await t.rejects(first.download('big.bin', { out }), FerryError, 'the first run fails when the link drops');
  await cut;
  await t.rejects(stat(out), { code: 'ENOENT' }, 'nothing exists at the destination while incomplete');
  const partial = await stat(out + '.ferry-part');
  t.ok(partial.size > 0, 'the partial data is kept beside it');
  const second = running.client({ port: proxy.port, retries: 0 });
  const result = await second.download('big.bin', { out });
  t.equal(result.resumed, true);
  t.ok(result.bytesReceived <= size * 0.4 + 2 * chunkSizeBytes, `received ${result.bytesReceived} bytes again, at most 40% + 2 chunks`);
  t.equal(await sha256Of(out), local.sha256, 'the downloaded file is exact');
  await t.rejects(stat(out + '.ferry-part'), { code: 'ENOENT' }, 'the partial file is gone');
  await t.rejects(stat(out + '.ferry-part.json'), { code: 'ENOENT' }, 'the partial state is gone');
});

t.test('a download with retries reconnects and resumes by itself', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: 256 * 1024 });
  const dir = tempDir(t);
  const local = await makeFile(dir, 'mid.bin', 8 * MiB + 5);
  await running.client().upload(local.path, { name: 'mid.bin' });
  const proxy = await startCutProxy(t, running.port);
  void proxy.cutAfter(3 * MiB, 'down');
  const out = join(dir, 'copy.bin');
  const result = await running.client({ port: proxy.port, retries: 3 }).download('mid.bin', { out });
  t.equal(result.resumed, true);
  t.equal(await sha256Of(out), local.sha256);
});

t.test('a changed local file is re-sent where it changed, never mixed', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: 256 * 1024 });
  const proxy = await startCutProxy(t, running.port);
  const dir = tempDir(t);
  const local = await makeFile(dir, 'data.bin', 4 * MiB);
  const cut = proxy.cutAfter(3 * MiB, 'up');
  await t.rejects(running.client({ port: proxy.port }).upload(local.path, { name: 'data.bin' }), { code: 'ECONNLOST' });
  await cut;
  // Change one byte inside the part the server already has; first and last 64 KiB stay the same.
  const { open } = await import('node:fs/promises');
  const handle = await open(local.path, 'r+');
  await handle.write(Buffer.from([local.bytes[1024 * 1024]! ^ 0xff]), 0, 1, 1024 * 1024);
  await handle.close();
  const changedSha = await sha256Of(local.path);
  const result = await running.client({ port: proxy.port }).upload(local.path, { name: 'data.bin' });
  t.equal(result.sha256, changedSha, 'the server holds the changed file');
  t.equal(await sha256Of(join(running.dataDir, 'files', 'data.bin')), changedSha);
});

const smallChunk = 256 * 1024;

/**
 * Uploads a 4 MiB file of 256 KiB chunks with one client whose link is cut after 3 MiB. By the
 * retry, the server holds chunks 0 to 10; chunk 11 was on the wire, read by the client but never
 * received whole. Just before the client retries, `change` rewrites part of the local file.
 */
async function uploadChangedOnRetry(
  t: Test,
  change: (path: string, bytes: Buffer) => void,
): Promise<{ result: Promise<UploadResult>; local: { path: string; sha256: string }; dataDir: string }> {
  const running = await startServer(t, { chunkSizeBytes: smallChunk });
  const proxy = await startCutProxy(t, running.port);
  const local = await makeFile(tempDir(t), 'data.bin', 16 * smallChunk);
  const client = new FerryClient({
    host: '127.0.0.1',
    port: proxy.port,
    retry: { retries: 1, onRetry: () => change(local.path, local.bytes) },
    ...loginAt(proxy.port),
  });
  t.teardown(() => client.close());
  void proxy.cutAfter(3 * MiB, 'up');
  return { result: client.upload(local.path, { name: 'data.bin' }), local, dataDir: running.dataDir };
}

/** Writes `bytes` into the file at `offset`, at once (a retry follows its callback without waiting). */
function overwrite(path: string, offset: number, bytes: Uint8Array): void {
  const fd = openSync(path, 'r+');
  try {
    writeSync(fd, bytes, 0, bytes.length, offset);
  } finally {
    closeSync(fd);
  }
}

t.test('a retry after a dropped link goes on with the file as first read: chunks the server holds are not read again', async (t) => {
  let changed = false;
  // Chunk 1 is on the server; the first and last 64 KiB (the fingerprint) stay the same.
  const upload = await uploadChangedOnRetry(t, (path) => {
    overwrite(path, smallChunk, Buffer.alloc(smallChunk, 7));
    changed = true;
  });
  const result = await upload.result;
  t.ok(changed, 'the link was cut and the client retried');
  t.equal(result.resumed, true);
  t.equal(result.sha256, upload.local.sha256, 'the SHA-256 is that of the file as the upload first read it');
  t.equal(await sha256Of(join(upload.dataDir, 'files', 'data.bin')), upload.local.sha256, 'the stored bytes are that file, not a mix');
});

t.test('a retry after a dropped link fails with ECHANGED when a chunk it must re-send has changed', async (t) => {
  // Chunks 1 to 14 change, chunk 11 (which the server never got whole) with them.
  const upload = await uploadChangedOnRetry(t, (path, bytes) =>
    overwrite(
      path,
      smallChunk,
      bytes.subarray(smallChunk, 15 * smallChunk).map((byte) => byte ^ 0xff),
    ),
  );
  await t.rejects(upload.result, { code: 'ECHANGED' }, 'no mix of what the SHA-256 was fed and what is re-sent');
  await t.rejects(stat(join(upload.dataDir, 'files', 'data.bin')), { code: 'ENOENT' }, 'nothing was stored');
});

t.test("a link lost just before putEnd's reply: the retry finds the file stored and sends nothing again", async (t) => {
  const running = await startServer(t, { chunkSizeBytes: 256 * 1024 });
  const proxy = await startCutProxy(t, running.port);
  const first = await makeFile(tempDir(t), 'last.bin', 4 * MiB + 9);
  // Other bytes the second time: --force of the very same content would send nothing at all.
  const replacement = await makeFile(tempDir(t), 'last.bin', 4 * MiB + 9);
  let cut: Promise<void> | undefined;
  for (const [force, local] of [
    [false, first],
    [true, replacement],
  ] as const) {
    const result = await running.client({ port: proxy.port, retries: 2 }).upload(local.path, {
      name: 'last.bin',
      force,
      // Every chunk is sent: the next byte from the server is putEnd's reply. Cut there.
      onProgress: ({ done, total }) => {
        if (done === total && !cut) cut = proxy.cutAfter(1, 'down');
      },
    });
    await cut;
    cut = undefined;
    t.equal(result.sha256, local.sha256, `force=${force}: the upload reports success`);
    t.equal(result.bytesSent, local.bytes.length, `force=${force}: the file was sent once, not again after the cut`);
  }
  t.equal(await sha256Of(join(running.dataDir, 'files', 'last.bin')), replacement.sha256);
});

t.test('a complete leftover partial download (a client killed before its rename) is verified and finished, nothing fetched', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: 256 * 1024 });
  const dir = tempDir(t);
  // Not a whole number of chunks: the last chunk is short.
  const local = await makeFile(dir, 'whole.bin', 2 * MiB + 1000);
  await running.client().upload(local.path, { name: 'whole.bin' });
  const out = join(dir, 'copy.bin');
  await running.client().download('whole.bin', { out });
  const info = await running.client().stat('whole.bin');
  const state = JSON.stringify({ name: 'whole.bin', sha256: info.sha256, size: info.size, chunkSize: info.chunkSize });
  for (const [label, extra] of [
    ['exactly the file', 0],
    ['the file and 300 KiB more', 300 * 1024],
  ] as const) {
    // What a client killed between its last byte and the rename leaves behind (plus, the second
    // time, bytes past the end, as a part of an older, longer file would have).
    await rename(out, out + '.ferry-part');
    if (extra > 0) await appendFile(out + '.ferry-part', Buffer.alloc(extra, 7));
    await writeFile(out + '.ferry-part.json', state);
    const result = await running.client({ retries: 0 }).download('whole.bin', { out });
    t.equal(result.bytesReceived, 0, `${label}: nothing fetched again`);
    t.equal(result.resumed, true, `${label}: reported as resumed`);
    t.equal((await stat(out)).size, local.bytes.length, `${label}: the file has the stored size`);
    t.equal(await sha256Of(out), local.sha256, `${label}: the file is exact`);
    await t.rejects(stat(out + '.ferry-part'), { code: 'ENOENT' }, `${label}: the partial file is gone`);
    await t.rejects(stat(out + '.ferry-part.json'), { code: 'ENOENT' }, `${label}: its state is gone`);
  }
});
