import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
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
  t.ok(proxy.upstreamBytes <= local.bytes.length + 2 * chunk + 64 * 1024, `${proxy.upstreamBytes} bytes reached the server for ${local.bytes.length}`);
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

t.test("a link lost just before putEnd's reply: the retry finds the file stored and sends nothing again", async (t) => {
  const running = await startServer(t, { chunkSizeBytes: 256 * 1024 });
  const proxy = await startCutProxy(t, running.port);
  const local = await makeFile(tempDir(t), 'last.bin', 4 * MiB + 9);
  let cut: Promise<void> | undefined;
  for (const force of [false, true]) {
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
  t.equal(await sha256Of(join(running.dataDir, 'files', 'last.bin')), local.sha256);
});
