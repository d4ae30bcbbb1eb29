// The small state machines under the server and the client, driven directly: the waiter queue and
// what is built on it (the per-connection allowance, the chunk buffer budget), the in-order hasher,
// the client's memory of what it read (resume cache), the copy into shared memory at any
// alignment, client networks, and sizes and durations as the flags take them.
import { createHash, randomBytes } from 'node:crypto';
import { open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { LocalFileReading } from '../src/client/local-file-reading.js';
import { copyIntoShared } from '../src/shared-copy.js';
import { runningSha256 } from '../src/hashing/running-sha256.js';
import { tempDir } from './helpers/temp-dir.js';
import { addressPrefix } from '../src/server/address-prefix.js';
import { Allowance } from '../src/server/allowance.js';
import { ChunkBuffers } from '../src/server/chunk-buffers.js';
import { InOrderHasher, type SessionHashState } from '../src/server/in-order-hasher.js';
import { WaitQueue } from '../src/wait-queue.js';
import {
  formatBytes,
  formatDuration,
  formatElapsed,
  formatLocalTime,
  formatTransferTime,
  hostPort,
  parseDuration,
  parseSize,
} from '../src/units.js';

t.test('WaitQueue: served in order; a cancelled waiter is skipped; cancelling twice is harmless', (t) => {
  const queue = new WaitQueue<number>();
  const got: string[] = [];
  queue.wait((value) => got.push(`a${value}`));
  const cancelB = queue.wait((value) => got.push(`b${value}`));
  queue.wait((value) => got.push(`c${value}`));
  t.equal(queue.length, 3);
  cancelB();
  cancelB();
  t.equal(queue.serve(1), true);
  t.equal(queue.serve(2), true);
  t.equal(queue.serve(3), false, 'nobody left: the caller keeps the value');
  t.same(got, ['a1', 'c2']);
  t.end();
});

t.test('Allowance: at most its limit at once; the rest wait in order; a cancelled wait takes no place', (t) => {
  const allowance = new Allowance(2);
  const order: string[] = [];
  allowance.acquire(() => order.push('a'));
  allowance.acquire(() => order.push('b'));
  const cancelC = allowance.acquire(() => order.push('c'));
  allowance.acquire(() => order.push('d'));
  t.same(order, ['a', 'b'], 'two hold places; two wait');
  cancelC();
  allowance.release();
  t.same(order, ['a', 'b', 'd'], 'the place went to the next waiter still waiting');
  allowance.release();
  allowance.release();
  allowance.acquire(() => order.push('e'));
  allowance.acquire(() => order.push('f'));
  allowance.acquire(() => order.push('g'));
  t.same(order, ['a', 'b', 'd', 'e', 'f'], 'released places are taken again, never more than the limit');
  t.end();
});

t.test('ChunkBuffers: a fixed budget of shared buffers; waiters get released buffers in order', (t) => {
  const buffers = new ChunkBuffers(16, 2);
  const a = buffers.tryAcquire()!;
  const b = buffers.tryAcquire()!;
  t.equal(buffers.tryAcquire(), undefined, 'the budget is two buffers');
  t.ok(a instanceof SharedArrayBuffer, 'shared memory, which a worker reads and writes in place');
  const got: SharedArrayBuffer[] = [];
  const cancel = buffers.acquire((buffer) => got.push(buffer));
  buffers.acquire((buffer) => got.push(buffer));
  cancel();
  buffers.release(a);
  t.same(got, [a], 'the waiter still waiting got it');
  t.throws(() => buffers.release(new SharedArrayBuffer(8)), /not from this pool/u);
  buffers.release(b);
  t.end();
});

/** A buffer budget that records what is given back. */
function recordingBuffers(): { released: SharedArrayBuffer[]; release(buffer: SharedArrayBuffer): void } {
  return {
    released: [],
    release(buffer) {
      this.released.push(buffer);
    },
  };
}

function chunkBuffer(bytes: Uint8Array): SharedArrayBuffer {
  const buffer = new SharedArrayBuffer(bytes.length);
  new Uint8Array(buffer).set(bytes);
  return buffer;
}

t.test('InOrderHasher: chunks fed in order give the whole SHA-256; one written ahead waits for the gap being written', async (t) => {
  const chunks = [randomBytes(10), randomBytes(10), randomBytes(5)];
  const state: SessionHashState = { next: 0, broken: false, sha256: runningSha256(25) };
  const writing = new Set([0, 1, 2]);
  const buffers = recordingBuffers();
  const hasher = new InOrderHasher(state, (index) => writing.has(index), buffers);
  const [b0, b1, b2] = chunks.map(chunkBuffer) as [SharedArrayBuffer, SharedArrayBuffer, SharedArrayBuffer];
  writing.delete(2);
  hasher.add(2, b2, 5);
  t.equal(state.next, 0, 'chunk 2 waits: 0 and 1 are being written');
  writing.delete(0);
  hasher.add(0, b0, 10);
  writing.delete(1);
  hasher.add(1, b1, 10);
  t.equal(state.next, 3, 'all three fed, in order');
  t.equal(await hasher.digest(3), createHash('sha256').update(Buffer.concat(chunks)).digest('hex'));
  t.same(buffers.released.length, 3, 'every buffer came back');
  t.equal(await hasher.digest(3), undefined, 'a second digest must take the one-pass way');
});

t.test('InOrderHasher: a gap nobody is writing, a chunk fed twice, or a copy of a held chunk breaks the hash', async (t) => {
  for (const [what, feed] of [
    ['a gap nobody is writing', (hasher: InOrderHasher) => hasher.add(1, new SharedArrayBuffer(10), 10)],
    [
      'a chunk fed twice',
      (hasher: InOrderHasher) => {
        hasher.add(0, new SharedArrayBuffer(10), 10);
        hasher.add(0, new SharedArrayBuffer(10), 10);
      },
    ],
    [
      'a second copy of a chunk held for its turn',
      (hasher: InOrderHasher, writing: Set<number>) => {
        writing.add(0);
        hasher.add(1, new SharedArrayBuffer(10), 10);
        hasher.add(1, new SharedArrayBuffer(10), 10);
      },
    ],
  ] as const) {
    const state: SessionHashState = { next: 0, broken: false, sha256: runningSha256(20) };
    const writing = new Set<number>();
    const buffers = recordingBuffers();
    const hasher = new InOrderHasher(state, (index) => writing.has(index), buffers);
    feed(hasher, writing);
    t.equal(state.broken, true, `${what}: broken`);
    t.equal(await hasher.digest(2), undefined, `${what}: no running digest`);
    t.equal(buffers.released.length, what === 'a gap nobody is writing' ? 1 : 2, `${what}: every buffer came back`);
  }
  const state: SessionHashState = { next: 0, broken: false, sha256: runningSha256(20) };
  const writing = new Set([0]);
  const buffers = recordingBuffers();
  const hasher = new InOrderHasher(state, (index) => writing.has(index), buffers);
  hasher.add(1, new SharedArrayBuffer(10), 10);
  hasher.stopWaiting();
  t.equal(state.broken, true, 'the upload stopped waiting with a chunk held: broken');
  t.equal(buffers.released.length, 1, 'and the held buffer came back');
});

t.test('InOrderHasher with a read-back: chunks past a gap nobody writes are read back at their turn, not a broken hash', async (t) => {
  const chunks = [randomBytes(10), randomBytes(10), randomBytes(10), randomBytes(5)];
  const whole = Buffer.concat(chunks);
  const path = join(tempDir(t), 'partial');
  await writeFile(path, whole);
  const file = await open(path, 'r');
  t.teardown(() => file.close());
  const reads: number[] = [];
  const readBack = {
    chunkBytes: 10,
    async read(position: number, into: Uint8Array): Promise<void> {
      reads.push(position);
      const { bytesRead } = await file.read(into, 0, into.length, position);
      if (bytesRead !== into.length) throw new Error('short read');
    },
  };
  const state: SessionHashState = { next: 0, broken: false, sha256: runningSha256(whole.length) };
  const writing = new Set<number>();
  const buffers = recordingBuffers();
  const hasher = new InOrderHasher(state, (index) => writing.has(index), buffers, readBack);
  const [b0, b1, b2, b3] = chunks.map(chunkBuffer) as [SharedArrayBuffer, SharedArrayBuffer, SharedArrayBuffer, SharedArrayBuffer];
  hasher.add(3, b3, 5);
  hasher.add(2, b2, 10);
  t.equal(state.broken, false, 'two chunks past a gap nobody writes: not broken');
  t.same(buffers.released, [b3, b2], 'and their buffers went back at once');
  writing.add(1);
  hasher.add(0, b0, 10);
  t.equal(state.next, 1, 'chunk 0 fed; 1 is being written');
  writing.delete(1);
  hasher.add(1, b1, 10);
  t.equal(state.next, 4, 'then 1, and 2 and 3 from the file');
  t.equal(await hasher.digest(4), createHash('sha256').update(whole).digest('hex'), 'the whole SHA-256, in order');
  t.same(reads, [20, 30], 'read back: chunks 2 and 3 only');
  t.equal(buffers.released.length, 4, 'every buffer came back');

  // Chunk 1 written ahead, then its turn comes while a copy of it is being written: fed once that write ends.
  const second: SessionHashState = { next: 0, broken: false, sha256: runningSha256(20) };
  const secondHasher = new InOrderHasher(second, (index) => writing.has(index), recordingBuffers(), readBack);
  secondHasher.add(1, chunkBuffer(chunks[1]!), 10);
  writing.add(1);
  secondHasher.add(0, chunkBuffer(chunks[0]!), 10);
  t.equal(second.next, 1, 'chunk 1 waits for the copy being written');
  writing.delete(1);
  secondHasher.writeEnded();
  t.equal(second.next, 2, 'and is read back once that write ended');
  t.equal(await secondHasher.digest(2), createHash('sha256').update(whole.subarray(0, 20)).digest('hex'));
});

t.test('LocalFileReading: keeps what was read across attempts of the same file, starts over for another', async (t) => {
  const reading = new LocalFileReading();
  const bytes = randomBytes(30);
  const shared = new SharedArrayBuffer(10);
  await reading.begin(30, 'fp', 10);
  for (let index = 0; index < 2; index += 1) {
    new Uint8Array(shared).set(bytes.subarray(index * 10, index * 10 + 10));
    await reading.add(index, BigInt(index + 1), shared, 10);
  }
  await reading.begin(30, 'fp', 10);
  t.equal(reading.chunksRead, 2, 'the same file: what was read is kept');
  t.equal(reading.hashOf(1), 2n);
  t.equal(reading.hashOf(2), undefined, 'a chunk not read yet has no hash');
  t.throws(() => reading.add(3, 4n, shared, 10), /out of order/u, 'chunks are added in order only');
  new Uint8Array(shared).set(bytes.subarray(20, 30));
  await reading.add(2, 3n, shared, 10);
  t.equal(await reading.digest(), createHash('sha256').update(bytes).digest('hex'), 'the digest covers every attempt');
  t.equal(reading.chunksRead, 0, 'and the reading is forgotten');

  await reading.begin(30, 'fp', 10);
  await reading.add(0, 1n, shared, 10);
  await reading.begin(30, 'other', 10);
  t.equal(reading.chunksRead, 0, 'another file (another fingerprint): starts over');
  await t.rejects(reading.digest(), /digest after 0 of 3 chunks/u);
});

t.test('copyIntoShared: exact at every alignment of source and target', (t) => {
  const source = randomBytes(300);
  let wrong = 0;
  for (let sourceOffset = 0; sourceOffset < 9; sourceOffset += 1) {
    for (let at = 0; at < 9; at += 1) {
      const target = Buffer.from(new SharedArrayBuffer(320));
      const piece = source.subarray(sourceOffset, sourceOffset + 200);
      copyIntoShared(target, piece, at);
      if (!target.subarray(at, at + 200).equals(piece) || target.subarray(0, at).some((byte) => byte !== 0)) wrong += 1;
    }
  }
  t.equal(wrong, 0, 'every one of 81 alignments copies exactly, and only where asked');
  t.end();
});

t.test('client networks: an IPv4 /24, an IPv6 /64, a mapped IPv4 as IPv4', (t) => {
  t.equal(addressPrefix('192.0.2.77'), '192.0.2.0/24');
  t.equal(addressPrefix('::ffff:192.0.2.77'), '192.0.2.0/24');
  t.equal(addressPrefix('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
  t.equal(addressPrefix('2001:db8::1'), '2001:db8:0:0::/64');
  t.equal(addressPrefix('::1'), '0:0:0:0::/64');
  t.equal(addressPrefix('fe80::1%eth0'), 'fe80:0:0:0::/64');
  t.equal(addressPrefix('?'), '?', 'no address: a group of its own');
  t.end();
});

t.test('sizes and durations as the flags take them, and as the CLI shows them', (t) => {
  t.equal(parseSize('4MiB'), 4 * 1024 * 1024);
  t.equal(parseSize('1.5 GB'), 1_500_000_000);
  t.equal(parseSize('1000'), 1000);
  t.throws(() => parseSize('4 furlongs'), RangeError);
  t.throws(() => parseSize('1e400'), RangeError);
  t.throws(() => parseSize('99999999999TiB'), /out of range/u);
  t.same([1000, 65536, 1572864, 200 * 1024 * 1024 + 1, 5 * 1024 ** 4].map(formatBytes), [
    '1000 B',
    '64 KiB',
    '1.5 MiB',
    '200 MiB',
    '5 TiB',
  ]);
  t.equal(parseDuration('30d'), 30 * 86_400_000);
  t.equal(parseDuration('1500ms'), 1500);
  t.equal(parseDuration('2'), 2000, 'a bare number is seconds');
  t.throws(() => parseDuration('0'), /out of range/u);
  t.throws(() => parseDuration('soon'), RangeError);
  t.same([86_400_000, 3_600_000, 300_000, 30_000, 1500].map(formatDuration), ['1d', '1h', '5m', '30s', '1500ms']);
  t.equal(formatBytes(176.47058823529412), '176 B', 'a rate below 1 KiB/s is rounded');
  t.equal(formatBytes(17.647), '17.6 B');
  t.same([0, 42.4, 954, 3720, 277_200].map(formatElapsed), ['0s', '42s', '15m 54s', '1h 02m', '3d 05h']);
  t.same([350.4, 4240, 125_000].map(formatTransferTime), ['350 ms', '4.2 s', '2m 05s']);
  t.equal(hostPort('::1', 8888), '[::1]:8888', 'an IPv6 address in brackets');
  t.equal(hostPort('127.0.0.1', 8888), '127.0.0.1:8888');
  t.end();
});

t.test('times are shown in local time with the offset from UTC, one rule for every command', (t) => {
  const shown = formatLocalTime('2026-12-02T10:58:46.123Z');
  t.match(shown, /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [+-]\d{4}$/u, 'date, time and offset');
  const [date, time, offset] = shown.split(' ') as [string, string, string];
  const sign = offset.startsWith('-') ? -1 : 1;
  const offsetMs = sign * (Number(offset.slice(1, 3)) * 60 + Number(offset.slice(3, 5))) * 60_000;
  t.equal(Date.parse(`${date}T${time}Z`) - offsetMs, Date.parse('2026-12-02T10:58:46Z'), 'the same moment, read back');
  t.end();
});
