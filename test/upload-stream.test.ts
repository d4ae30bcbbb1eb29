/**
 * Uploads of unknown size: `tar c . | ferry upload - --as backup.tar`. The protocol's `put`
 * without a size (capability `put-unsized`): chunks in order, each whole but the last, the size
 * given by `putEnd`; verified as any upload; never resumable, so the server keeps nothing of one
 * that did not finish, and the client says why a cut one cannot go on.
 */
import { createHash, randomBytes } from 'node:crypto';
import { watch } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { assertUsage, ferry } from './helpers/cli.js';
import { startCutProxy } from './helpers/cut-proxy.js';
import { type ControlMessage, RawClient, chunkFrame } from './helpers/raw-client.js';
import { startServer } from './helpers/server.js';

const chunkSize = 64 * 1024;

function sha256Of(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Resolves once `dir` holds no entry (the server dropped a stream's partial data); bounded in time. */
async function untilEmpty(dir: string, timeoutMs = 5000): Promise<void> {
  const watcher = watch(dir);
  try {
    const emptied = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${dir} still holds files after ${timeoutMs} ms`)), timeoutMs);
      const check = (): void => {
        void readdir(dir).then((entries) => {
          if (entries.length > 0) return;
          clearTimeout(timer);
          resolve();
        });
      };
      watcher.on('change', check);
      check();
    });
    await emptied;
  } finally {
    watcher.close();
  }
}

t.test('the protocol: put without a size, chunks in order, putEnd with the size', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: chunkSize, maxFileSizeBytes: 5 * chunkSize + 10 });
  const partialDir = join(running.dataDir, 'partial');

  /** A greeted raw connection with a streamed upload of `name` started: its stream. */
  async function streamedPut(t: Test, name: string): Promise<{ raw: RawClient; stream: number; reply: ControlMessage }> {
    const raw = await RawClient.connect(t, running.port);
    const hello = await raw.hello();
    t.ok((hello['capabilities'] as string[]).includes('put-unsized'), 'the server says it takes uploads of unknown size');
    const reply = await raw.call('put', { name });
    const stream = (reply['result'] as { stream: number } | undefined)?.stream ?? 0;
    return { raw, stream, reply };
  }

  t.test('a whole upload: published with the size putEnd gave, and never listed as resumable', async (t) => {
    const bytes = randomBytes(2 * chunkSize + 1234);
    const { raw, stream, reply } = await streamedPut(t, 'streamed/a.bin');
    t.match(reply, { ok: true, result: { stream: Number, chunkSize, verified: [], resumed: false } });
    await raw.write([
      await chunkFrame(stream, 0, bytes.subarray(0, chunkSize)),
      await chunkFrame(stream, chunkSize, bytes.subarray(chunkSize, 2 * chunkSize)),
    ]);
    t.match(await raw.call('uploads'), { ok: true, result: { uploads: [] } }, 'nothing to resume is listed');
    t.match(await raw.call('info'), { ok: true, result: { uploads: 0 } });
    await raw.write(await chunkFrame(stream, 2 * chunkSize, bytes.subarray(2 * chunkSize)));
    const end = await raw.call('putEnd', { stream, sha256: sha256Of(bytes), size: bytes.length });
    t.match(end, { ok: true, result: { name: 'streamed/a.bin', size: bytes.length, sha256: sha256Of(bytes), chunkCount: 3 } });
    const client = running.client();
    const out = await client.stat('streamed/a.bin');
    t.equal(out.sha256, sha256Of(bytes), 'stored, with its SHA-256');
    t.same(await readdir(partialDir), [], 'no partial data left');
  });

  t.test('a stream of whole chunks, and an empty one', async (t) => {
    const bytes = randomBytes(2 * chunkSize);
    const whole = await streamedPut(t, 'streamed/whole.bin');
    await whole.raw.write([
      await chunkFrame(whole.stream, 0, bytes.subarray(0, chunkSize)),
      await chunkFrame(whole.stream, chunkSize, bytes.subarray(chunkSize)),
    ]);
    t.match(await whole.raw.call('putEnd', { stream: whole.stream, sha256: sha256Of(bytes), size: bytes.length }), {
      ok: true,
      result: { size: bytes.length, chunkCount: 2 },
    });
    const empty = await streamedPut(t, 'streamed/empty.bin');
    t.match(await empty.raw.call('putEnd', { stream: empty.stream, sha256: sha256Of(Buffer.alloc(0)), size: 0 }), {
      ok: true,
      result: { size: 0, chunkCount: 0 },
    });
  });

  t.test('putEnd must give the size, the size sent, and the right SHA-256; each failure keeps nothing', async (t) => {
    const bytes = randomBytes(chunkSize + 10);
    const cases: [string, Record<string, unknown>, string][] = [
      ['no size', { sha256: sha256Of(bytes) }, 'EPROTO'],
      ['a size other than what was sent', { sha256: sha256Of(bytes), size: bytes.length + 1 }, 'EPROTO'],
      ['a wrong SHA-256', { sha256: sha256Of(Buffer.from('other')), size: bytes.length }, 'ECHECKSUM'],
    ];
    for (const [what, fields, code] of cases) {
      const { raw, stream } = await streamedPut(t, 'streamed/bad-end.bin');
      await raw.write([
        await chunkFrame(stream, 0, bytes.subarray(0, chunkSize)),
        await chunkFrame(stream, chunkSize, bytes.subarray(chunkSize)),
      ]);
      t.match(await raw.call('putEnd', { stream, ...fields }), { ok: false, code }, `${what}: ${code}`);
      t.same(await readdir(partialDir), [], `${what}: the partial data is gone by the reply`);
      await t.rejects(running.client().stat('streamed/bad-end.bin'), { code: 'ENOENT' }, `${what}: nothing published`);
      raw.destroy();
    }
  });

  t.test('chunks out of order, after the short last one, or empty end the connection (bye EPROTO); nothing is kept', async (t) => {
    const cases: [string, (stream: number) => Promise<Buffer[]>][] = [
      ['a chunk not at the next offset', async (stream) => [await chunkFrame(stream, chunkSize, randomBytes(chunkSize))]],
      [
        'a chunk after a short one',
        async (stream) => [await chunkFrame(stream, 0, randomBytes(100)), await chunkFrame(stream, 100, randomBytes(100))],
      ],
      ['an empty chunk', async (stream) => [await chunkFrame(stream, 0, Buffer.alloc(0))]],
    ];
    for (const [what, frames] of cases) {
      const { raw, stream } = await streamedPut(t, 'streamed/disorder.bin');
      await raw.write(await frames(stream));
      await raw.waitClosed();
      t.match(raw.controls.at(-1), { event: 'bye', code: 'EPROTO' }, what);
      await untilEmpty(partialDir);
      t.pass(`${what}: the partial data is dropped`);
    }
  });

  t.test('a connection lost mid-stream leaves nothing behind; the name is free again', async (t) => {
    const { raw, stream } = await streamedPut(t, 'streamed/lost.bin');
    await raw.write(await chunkFrame(stream, 0, randomBytes(chunkSize)));
    t.match(await raw.call('ping'), { ok: true }, 'the chunk was taken in');
    t.equal((await readdir(partialDir)).length, 1, 'while it runs, the stream has its partial file');
    raw.destroy();
    await untilEmpty(partialDir);
    const again = await streamedPut(t, 'streamed/lost.bin');
    t.match(again.reply, { ok: true, result: { resumed: false } }, 'a new upload of the name starts from nothing');
  });

  t.test('past the file size limit: EQUOTA, as the data arrives', async (t) => {
    const { raw, stream } = await streamedPut(t, 'streamed/huge.bin');
    const frames: Buffer[] = [];
    for (let index = 0; index < 6; index += 1) frames.push(await chunkFrame(stream, index * chunkSize, randomBytes(chunkSize)));
    await raw.write(frames);
    t.match(await raw.event('abort', stream), { code: 'EQUOTA', message: /file size limit/u });
    await untilEmpty(partialDir);
    t.pass('the partial data is dropped');
  });

  t.test('a put with a size needs its fingerprint; one without takes none', async (t) => {
    const raw = await RawClient.connect(t, running.port);
    await raw.hello();
    t.match(await raw.call('put', { name: 'x.bin', size: 10 }), { ok: false, code: 'EPROTO', message: /needs a fingerprint/u });
    t.match(await raw.call('put', { name: 'x.bin', fingerprint: 'v1:x' }), { ok: false, code: 'EPROTO', message: /cannot be resumed/u });
  });

  t.test('a sized upload whose putEnd gives another size: EPROTO, and the session stays resumable', async (t) => {
    const raw = await RawClient.connect(t, running.port);
    await raw.hello();
    const bytes = randomBytes(100);
    const put = await raw.call('put', { name: 'sized.bin', size: bytes.length, fingerprint: 'v1:sized' });
    const stream = (put['result'] as { stream: number }).stream;
    await raw.write(await chunkFrame(stream, 0, bytes));
    t.match(await raw.call('putEnd', { stream, sha256: sha256Of(bytes), size: 99 }), {
      ok: false,
      code: 'EPROTO',
      message: /declared 100/u,
    });
    t.match(await raw.call('uploads'), { ok: true, result: { uploads: [{ name: 'sized.bin', received: 100 }] } });
  });
});

t.test('the command line: upload - --as NAME', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: chunkSize });
  const server = ['--server', `127.0.0.1:${running.port}`];
  const partialDir = join(running.dataDir, 'partial');

  t.test('standard input to its end, verified; --json says so too', async (t) => {
    const bytes = randomBytes(3 * 1024 * 1024 + 5);
    const run = await ferry(['upload', '-', '--as', 'backup.tar', ...server], { input: bytes });
    t.equal(run.code, 0, run.stderr);
    t.equal(run.stdout, `uploaded backup.tar: 3.0 MiB, sha256 ${sha256Of(bytes)} (${/\((.*)\)\n$/u.exec(run.stdout)?.[1]})\n`);
    t.equal((await running.client().stat('backup.tar')).sha256, sha256Of(bytes), 'the server holds exactly those bytes');
    const json = await ferry(['upload', '-', '--as', 'empty.tar', '--json', ...server], { input: Buffer.alloc(0) });
    t.equal(json.code, 0, json.stderr);
    t.same(JSON.parse(json.stdout), {
      name: 'empty.tar',
      size: 0,
      sha256: sha256Of(Buffer.alloc(0)),
      bytesSent: 0,
      wireBytes: 0,
      resumed: false,
      skipped: false,
    });
    const again = await ferry(['upload', '-', '--as', 'backup.tar', ...server], { input: bytes });
    t.match(again, { code: 1, stderr: 'ferry: backup.tar already exists (use --force to replace it) (EEXIST)\n' });
    const forced = await ferry(['upload', '-', '--as', 'backup.tar', '--force', ...server], { input: Buffer.from('new') });
    t.equal(forced.code, 0, forced.stderr);
    t.equal((await running.client().stat('backup.tar')).size, 3, '--force replaces it');
  });

  t.test('usage: - needs --as, goes alone, and not with --as-dir', async (t) => {
    const input = Buffer.from('data');
    assertUsage(t, await ferry(['upload', '-', ...server], { input }), /upload - needs --as NAME: standard input has no file name/u);
    assertUsage(t, await ferry(['upload', '-', 'other.txt', '--as', 'x', ...server], { input }), /uploaded on its own/u);
    assertUsage(t, await ferry(['upload', '-', '--as-dir', 'dir', ...server], { input }), /needs --as NAME/u);
  });

  t.test('a cut link ends it: not retried, the reason said, nothing kept on the server', async (t) => {
    const proxy = await startCutProxy(t, running.port);
    const cut = proxy.cutAfter(1024 * 1024, 'up');
    const run = await ferry(['upload', '-', '--as', 'cut.tar', '--server', `127.0.0.1:${proxy.port}`], {
      input: randomBytes(4 * 1024 * 1024),
    });
    await cut;
    t.equal(run.code, 1);
    t.match(
      run.stderr,
      /^ferry: .*; gave up: standard input cannot be read again, so an upload from it cannot resume: run the whole command again \(ECONNLOST\)\n$/u,
    );
    t.notMatch(run.stderr, /reconnecting/u, 'not retried');
    await untilEmpty(partialDir);
    await t.rejects(running.client().stat('cut.tar'), { code: 'ENOENT' }, 'nothing published');
  });
});
