// A socket reads each chunk's payload straight into the chunk buffer it goes to (no copy from the
// socket's own buffer), in clear text and over TLS: the client's for a download, the server's for
// an upload. The bytes still come whole and verified, several streams at once on
// one connection, packed or not; a download that fails while the socket reads into its buffer
// gives its room back without the buffer being reused, and the connection's next download comes
// whole.
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { downloadChunkBudget } from '../src/client/chunk-budget.js';
import { type ChunkWriter, type DownloadReceiver, receiveChunks } from '../src/client/download-receiver.js';
import { runningSha256 } from '../src/hashing/running-sha256.js';
import { loadXxh64 } from '../src/hashing/xxh64.js';
import { FerryError } from '../src/protocol/errors.js';
import { makeFile } from './helpers/files.js';
import { startServer } from './helpers/server.js';
import { tempDir } from './helpers/temp-dir.js';

const KiB = 1024;
const chunkSize = 64 * KiB;

/** Where received chunks go in these tests: memory, at their offsets. */
function memoryWriter(size: number, failAtOffset?: number): { writer: ChunkWriter; bytes: Buffer } {
  const bytes = Buffer.alloc(size);
  const writer: ChunkWriter = {
    write(chunk, offset) {
      if (offset === failAtOffset) return Promise.reject(new FerryError('ENOSPC', 'no space left (the test says)'));
      bytes.set(chunk, offset);
      return Promise.resolve();
    },
  };
  return { writer, bytes };
}

const transports = [
  { label: 'clear text', tls: false },
  { label: 'TLS', tls: true },
];

for (const { label, tls } of transports)
  t.test(`${label}: files of every shape come whole, several at once on one connection, packed or not`, async (t) => {
    const running = await startServer(t, { chunkSizeBytes: chunkSize, tls });
    const dir = tempDir(t);
    const sizes = [0, 1, chunkSize - 1, chunkSize, chunkSize + 1, 5 * chunkSize + 123];
    const files = await Promise.all(sizes.map((size, index) => makeFile(dir, `f${index}.bin`, size)));
    // Text packs well: its chunks come brotli-packed when asked, read in place as packed bytes.
    const text = Buffer.from('a line of a log that packs well\n'.repeat(Math.ceil((3 * chunkSize) / 32)));
    await writeFile(join(dir, 'log.txt'), text);
    const client = running.client();
    const uploaded = await Promise.all(files.map((file, index) => client.upload(file.path, { name: `f${index}.bin` })));
    for (const [index, file] of files.entries()) {
      t.equal(uploaded[index]!.sha256, file.sha256, `${sizes[index]} bytes up: the server's SHA-256`);
      t.same(await readFile(join(running.dataDir, 'files', `f${index}.bin`)), file.bytes, `${sizes[index]} bytes up: the stored bytes`);
    }
    await client.upload(join(dir, 'log.txt'), { name: 'log.txt', compress: 'brotli' });
    t.same(await readFile(join(running.dataDir, 'files', 'log.txt')), text, 'the packed upload stored the same bytes');

    const results = await Promise.all(files.map((_, index) => client.download(`f${index}.bin`, { out: join(dir, `out-${index}.bin`) })));
    for (const [index, file] of files.entries()) {
      t.equal(results[index]!.sha256, file.sha256, `${sizes[index]} bytes: the server's SHA-256`);
      t.same(await readFile(join(dir, `out-${index}.bin`)), file.bytes, `${sizes[index]} bytes: the same bytes`);
    }
    const packed = await client.download('log.txt', { out: join(dir, 'log-out.txt'), compress: 'brotli' });
    t.ok(packed.wireBytes < text.length / 4, 'the text came packed');
    t.same(await readFile(join(dir, 'log-out.txt')), text, 'the packed chunks unpacked to the same bytes');
  });

t.test('uploads of chunks over 256 KiB (read in place, then moved to a chunk worker) are stored whole', async (t) => {
  const bigChunk = 512 * KiB;
  const running = await startServer(t, { chunkSizeBytes: bigChunk, tls: false });
  const dir = tempDir(t);
  const files = await Promise.all([3 * bigChunk + 777, bigChunk, 2 * bigChunk].map((size, index) => makeFile(dir, `b${index}.bin`, size)));
  const client = running.client();
  const results = await Promise.all(files.map((file, index) => client.upload(file.path, { name: `b${index}.bin` })));
  for (const [index, file] of files.entries()) {
    t.equal(results[index]!.sha256, file.sha256, `${file.bytes.length} bytes: the server's SHA-256`);
    t.same(await readFile(join(running.dataDir, 'files', `b${index}.bin`)), file.bytes, `${file.bytes.length} bytes: the stored bytes`);
    const back = await client.download(`b${index}.bin`, { out: join(dir, `back-${index}.bin`) });
    t.equal(back.sha256, file.sha256, `${file.bytes.length} bytes: and back`);
  }
});

for (const { label, tls } of transports)
  t.test(`${label}: most of a download's payload is read in place`, async (t) => {
    const running = await startServer(t, { chunkSizeBytes: chunkSize, tls });
    const dir = tempDir(t);
    const file = await makeFile(dir, 'big.bin', 16 * chunkSize + 5);
    const client = running.client();
    await client.upload(file.path, { name: 'big.bin' });
    const connection = await client.connection();
    const xxh64 = await loadXxh64();
    const { writer, bytes } = memoryWriter(file.bytes.length);
    let receiver: DownloadReceiver | undefined;
    const received = await receiveChunks(
      connection,
      { name: 'big.bin', fromChunk: 0, pack: undefined },
      writer,
      runningSha256(file.bytes.length),
      xxh64,
      {
        onReceiver: (made) => (receiver = made),
      },
    );
    t.equal(received.bytesReceived, file.bytes.length, 'every byte came');
    t.same(bytes, file.bytes, 'the same bytes');
    // A read that began in a frame's head lands in the socket's buffer and is copied: most are not.
    t.ok(receiver!.bytesReadInPlace > file.bytes.length / 2, `most of the payload read in place (${receiver!.bytesReadInPlace} bytes)`);
  });

for (const { label, tls } of transports)
  t.test(
    `${label}: a download failing as its socket reads into its buffer: the room comes back, and the next download on the connection is whole`,
    async (t) => {
      const running = await startServer(t, { chunkSizeBytes: chunkSize, tls });
      const dir = tempDir(t);
      const file = await makeFile(dir, 'big.bin', 40 * chunkSize);
      const client = running.client();
      await client.upload(file.path, { name: 'big.bin' });
      const connection = await client.connection();
      const xxh64 = await loadXxh64();
      const size = file.bytes.length;

      for (const failAt of [1, 7, 23]) {
        const failing = memoryWriter(size, failAt * chunkSize);
        await t.rejects(
          receiveChunks(connection, { name: 'big.bin', fromChunk: 0, pack: undefined }, failing.writer, runningSha256(size), xxh64, {}),
          { code: 'ENOSPC' },
          `the write of chunk ${failAt} fails the download`,
        );
        const whole = memoryWriter(size);
        const hash = runningSha256(size);
        await receiveChunks(connection, { name: 'big.bin', fromChunk: 0, pack: undefined }, whole.writer, hash, xxh64, {});
        t.equal(await hash.digest(), file.sha256, `after the failure at chunk ${failAt}: the next download's SHA-256`);
        t.equal(createHash('sha256').update(whole.bytes).digest('hex'), file.sha256, '... and its bytes');
      }
      await new Promise((resolve) => setImmediate(resolve));
      t.equal(downloadChunkBudget.inUseBytes, 0, 'every buffer of the failed downloads came back to the budget');
    },
  );
