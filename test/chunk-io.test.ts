// The chunk worker's tasks and the hashing thread's, run in this process (the threads run the
// compiled copies, where coverage is not measured): writes and reads of real files through both kinds of I/O,
// with the same checks and messages whichever thread runs them.
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { localCodec } from '../src/compression/codecs.js';
import { blockingIo, libuvIo, readChunk, writeChunk } from '../workers/chunk-io.js';
import { hashFile, readChunk as workerReadChunk, writeChunk as workerWriteChunk } from '../workers/chunk-worker.js';
import { hashDigest, hashDrop, hashSave, hashStartResumable, hashUpdate } from '../workers/sha256-tasks.js';
import { loadXxh64 } from '../src/hashing/xxh64.js';
import { tempDir } from './helpers/temp-dir.js';

const xxh64 = await loadXxh64();

/** A shared buffer of its own (as the budget's are) holding `bytes`. */
function ownBuffer(bytes: Uint8Array): SharedArrayBuffer {
  const buffer = new SharedArrayBuffer(bytes.byteLength);
  new Uint8Array(buffer).set(bytes);
  return buffer;
}

for (const [label, io] of [
  ['blocking I/O (a worker)', blockingIo],
  ['libuv I/O (the main thread)', libuvIo],
] as const) {
  t.test(`write then read a chunk at its offset: ${label}`, async (t) => {
    const path = join(tempDir(t), 'file');
    await writeFile(path, Buffer.alloc(300));
    const payload = randomBytes(100);
    const fd = openSync(path, 'r+');
    t.teardown(() => closeSync(fd));
    const written = await writeChunk({ fd, offset: 100, length: 100, xxh64: xxh64(payload), buffer: ownBuffer(payload) }, io, xxh64);
    t.equal(written.ok, true);
    t.same((await readFile(path)).subarray(100, 200), payload, 'the bytes landed at their offset');

    const badHash = await writeChunk({ fd, offset: 0, length: 100, xxh64: xxh64(payload) ^ 1n, buffer: ownBuffer(payload) }, io, xxh64);
    t.match(badHash, { ok: false, code: 'ECHECKSUM', message: 'chunk at offset 0: xxh64 mismatch' }, 'a wrong xxh64 is refused');
    t.same((await readFile(path)).subarray(0, 100), Buffer.alloc(100), 'and nothing is written');

    const target = new SharedArrayBuffer(100);
    const read = await readChunk({ fd, offset: 100, length: 100, xxh64: xxh64(payload), buffer: target }, io, xxh64);
    t.equal(read.ok, true);
    t.same(Buffer.from(target), payload, 'the read fills the buffer');
    const mismatch = await readChunk({ fd, offset: 0, length: 100, xxh64: xxh64(payload), buffer: new SharedArrayBuffer(100) }, io, xxh64);
    t.match(mismatch, { ok: false, code: 'ECHECKSUM', message: 'stored chunk at offset 0 does not match its recorded xxh64' });
    const short = await readChunk({ fd, offset: 250, length: 100, xxh64: 0n, buffer: new SharedArrayBuffer(100) }, io, xxh64);
    t.match(short, { ok: false, code: 'ECHECKSUM' }, 'a file that ends before the chunk does is a mismatch');
  });

  t.test(`a packed chunk is checked after unpacking, like a raw one: ${label}`, async (t) => {
    const path = join(tempDir(t), 'file');
    await writeFile(path, Buffer.alloc(300));
    const fd = openSync(path, 'r+');
    t.teardown(() => closeSync(fd));
    const brotli = localCodec('brotli')!;
    const payload = Buffer.from('ferry packs this chunk, ferry packs this chunk, ferry packs this chunk, and then some.'.padEnd(100, '!'));
    /** A chunk buffer of `length` bytes holding `packed` at its start, and the task's `packed` field for it. */
    const packedTask = (packed: Buffer, length: number) => {
      const buffer = new SharedArrayBuffer(length);
      new Uint8Array(buffer).set(packed);
      return { buffer, packed: { codec: 'brotli' as const, bytes: packed.length } };
    };

    const good = await writeChunk(
      { fd, offset: 100, length: 100, xxh64: xxh64(payload), ...packedTask(brotli.compress(payload), 100) },
      io,
      xxh64,
    );
    t.same(good, { ok: true, xxh64: xxh64(payload) });
    t.same((await readFile(path)).subarray(100, 200), payload, 'a packed chunk lands unpacked at its offset');

    const other = Buffer.from(payload).reverse();
    const wrongContent = await writeChunk(
      { fd, offset: 0, length: 100, xxh64: xxh64(payload), ...packedTask(brotli.compress(other), 100) },
      io,
      xxh64,
    );
    t.same(
      wrongContent,
      { ok: false, code: 'ECHECKSUM', message: 'chunk at offset 0: xxh64 mismatch' },
      'valid brotli of other bytes than the xxh64 describes is refused as a raw chunk with a wrong xxh64 is',
    );

    const short = await writeChunk(
      { fd, offset: 0, length: 100, xxh64: xxh64(payload), ...packedTask(brotli.compress(payload.subarray(0, 60)), 100) },
      io,
      xxh64,
    );
    t.match(
      short,
      { ok: false, code: 'ECHECKSUM', message: /^chunk at offset 0: brotli data does not unpack: brotli data holds 60 bytes, not 100$/u },
      'brotli that unpacks to fewer bytes than the length is refused',
    );
    const long = Buffer.concat([payload, payload]);
    const longTask = packedTask(brotli.compress(long), 200); // room for all it holds: only the length declared stops it
    const tooLong = await writeChunk({ fd, offset: 0, length: 100, xxh64: xxh64(payload), ...longTask }, io, xxh64);
    t.match(
      tooLong,
      { ok: false, code: 'ECHECKSUM', message: /^chunk at offset 0: brotli data does not unpack: /u },
      'and so is brotli that unpacks to more',
    );
    t.same((await readFile(path)).subarray(0, 100), Buffer.alloc(100), 'none of the refused chunks wrote a byte');
  });

  t.test(`a failed system call is a task failure: ${label}`, async (t) => {
    const dir = tempDir(t);
    const fd = openSync(dir, 'r'); // a directory: reading and writing it fail (EISDIR / EBADF)
    t.teardown(() => closeSync(fd));
    const buffer = ownBuffer(Buffer.alloc(10));
    const write = await writeChunk({ fd, offset: 0, length: 10, xxh64: xxh64(Buffer.alloc(10)), buffer }, io, xxh64);
    t.match(write, { ok: false, code: 'EIO', message: /^write at offset 0: E/u });
    const read = await readChunk({ fd, offset: 0, length: 10, xxh64: 0n, buffer }, io, xxh64);
    t.match(read, { ok: false, code: 'EIO', message: /^read at offset 0: EISDIR/u });
    t.notMatch(read.ok ? '' : read.message, dir, 'no path of the server in the message');
  });
}

t.test('the worker module: its tasks wrap the shared chunk I/O, reading and writing the shared buffer in place', async (t) => {
  const path = join(tempDir(t), 'file');
  await writeFile(path, Buffer.alloc(64));
  const payload = randomBytes(64);
  const fd = openSync(path, 'r+');
  t.teardown(() => closeSync(fd));
  const buffer = ownBuffer(payload);
  t.same(await workerWriteChunk({ fd, offset: 0, length: 64, xxh64: xxh64(payload), buffer }), { ok: true, xxh64: xxh64(payload) });
  t.same(await readFile(path), payload, "the bytes written are the caller's buffer's");
  const target = new SharedArrayBuffer(64);
  t.match(await workerReadChunk({ fd, offset: 0, length: 64, xxh64: xxh64(payload), buffer: target }), { ok: true });
  t.same(Buffer.from(target), payload, "the bytes read are in the caller's buffer");
});

t.test('hashFile: the SHA-256 and each chunk xxh64 in one pass; a short file is an EIO', async (t) => {
  const path = join(tempDir(t), 'file');
  const bytes = randomBytes(10_000);
  await writeFile(path, bytes);
  const result = hashFile({ path, size: bytes.length, chunkSize: 4096 });
  t.same(result, {
    ok: true,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    chunkHashes: [0, 1, 2].map((index) => xxh64(bytes.subarray(index * 4096, (index + 1) * 4096))),
  });
  t.match(hashFile({ path, size: bytes.length + 1, chunkSize: 4096 }), {
    ok: false,
    code: 'EIO',
    message: /file ends at 10000 of 10001 bytes/u,
  });
  t.match(hashFile({ path: join(path, 'missing'), size: 1, chunkSize: 4096 }), { ok: false, code: 'EIO' });
});

t.test('running SHA-256s by key, as the hashing thread keeps them', (t) => {
  const bytes = randomBytes(1000);
  const shared = new SharedArrayBuffer(1000);
  new Uint8Array(shared).set(bytes);
  t.equal(hashUpdate({ key: 'k', buffer: shared, length: 600 }).buffer, shared, 'a shared buffer is read in place');
  hashUpdate({ key: 'k', buffer: ownBuffer(bytes.subarray(600)), length: 400 });
  t.equal(hashDigest({ key: 'k' }), createHash('sha256').update(bytes).digest('hex'));
  hashUpdate({ key: 'gone', buffer: shared, length: 10 });
  hashDrop({ key: 'gone' });
  t.equal(hashDigest({ key: 'gone' }), createHash('sha256').digest('hex'), 'a dropped hash starts over');
  t.end();
});

t.test("a resumable SHA-256: its state saved on one key is taken up on another, and the digest is the whole file's", async (t) => {
  const bytes = randomBytes(3 * 4096 + 5);
  const shared = new SharedArrayBuffer(bytes.length);
  new Uint8Array(shared).set(bytes);
  await hashStartResumable({ key: 'first' });
  hashUpdate({ key: 'first', buffer: ownBuffer(bytes.subarray(0, 8192)), length: 8192 });
  const state = hashSave({ key: 'first' });
  t.match(state, /^sha256\.v1\.[A-Za-z0-9+/]+=*$/u, "the state is in Ferry's text form");
  hashDrop({ key: 'first' });
  await hashStartResumable({ key: 'second', state });
  hashUpdate({ key: 'second', buffer: ownBuffer(bytes.subarray(8192)), length: bytes.length - 8192 });
  t.equal(hashDigest({ key: 'second' }), createHash('sha256').update(bytes).digest('hex'), 'taken up where it stopped');
  t.throws(() => hashSave({ key: 'second' }), /no resumable SHA-256/u, 'a digested hash has no state left');
  hashUpdate({ key: 'plain', buffer: shared, length: 10 });
  t.throws(() => hashSave({ key: 'plain' }), /no resumable SHA-256/u, "Node's hash has no state to save");
  hashDrop({ key: 'plain' });
  t.throws(
    () => hashUpdate({ key: 'lost', buffer: shared, length: 10, resumable: true }),
    /is gone/u,
    'a resumable hash this thread does not have is not made anew (it was lost with a thread before)',
  );
  t.throws(() => hashDigest({ key: 'lost', resumable: true }), /is gone/u);
  await t.rejects(
    hashStartResumable({ key: 'bad', state: Buffer.from('not a state').toString('base64') }),
    'a state that is not one is refused',
  );
});
