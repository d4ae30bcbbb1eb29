// Small files in one request (`putWhole`, docs/protocol.md): the data follows the request as one
// CHUNK frame on stream 0 and the reply is the stored file. Checked like any upload (xxh64 of the
// frame, SHA-256 of the file), under the same rules (names, roles, quotas, EEXIST), framed
// strictly, pipelined, and durable before the reply: a `kill -9` loses nothing acknowledged.
import { createHash, randomBytes } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { FerryClient } from '../src/client/client.js';
import { encodeChunkHead, encodeControl } from '../src/protocol/encoder.js';
import { wholePutMaxBytes } from '../src/protocol/limits.js';
import { localCodec } from '../src/compression/codecs.js';
import { loadXxh64 } from '../src/hashing/xxh64.js';
import { loginAt } from './helpers/accounts.js';
import { makeFile, sha256Of } from './helpers/files.js';
import { type ControlMessage, RawClient, chunkFrame } from './helpers/raw-client.js';
import { type RunningServer, startServer } from './helpers/server.js';
import { spawnServer } from './helpers/server-process.js';
import { tempDir } from './helpers/temp-dir.js';

const KiB = 1024;
const chunkSize = 64 * KiB;
const maxWhole = wholePutMaxBytes(chunkSize);

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** A putWhole request and its data frame, as one write. */
async function wholePut(id: number, name: string, bytes: Buffer, fields: ControlMessage = {}): Promise<Buffer[]> {
  const request = encodeControl({ id, op: 'putWhole', name, size: bytes.length, sha256: sha256(bytes), ...fields });
  return bytes.length === 0 ? [request] : [request, await chunkFrame(0, 0, bytes)];
}

async function rawClient(t: Test, running: RunningServer): Promise<RawClient> {
  const raw = await RawClient.connect(t, running.port);
  await raw.hello();
  return raw;
}

/** The server closed the connection with a bye EPROTO. */
async function expectBye(t: Test, raw: RawClient, what: string): Promise<void> {
  await raw.waitClosed();
  t.match(
    raw.controls.find((message) => message['event'] === 'bye'),
    { code: 'EPROTO' },
    what,
  );
}

async function partialFiles(running: RunningServer): Promise<string[]> {
  return readdir(join(running.dataDir, 'partial'));
}

t.test('the client sends files up to the limit whole, and bigger ones chunk by chunk; all stored exact', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: chunkSize });
  const dir = tempDir(t);
  const client = running.client();
  for (const size of [0, 1, 1000, maxWhole, maxWhole + 1, 3 * chunkSize + 7]) {
    const local = await makeFile(dir, `f-${size}.bin`, size);
    const result = await client.upload(local.path, { name: `sizes/${size}.bin` });
    t.match(result, { size, sha256: local.sha256, bytesSent: size, resumed: false }, `${size} bytes`);
    t.equal(await sha256Of(join(running.dataDir, 'files', 'sizes', `${size}.bin`)), local.sha256, `${size} bytes on disk`);
  }
  t.same(await partialFiles(running), [], 'no partial file is left');
});

t.test('pipelined: many whole puts written at once on one connection are all stored, each replied to', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: chunkSize });
  const raw = await rawClient(t, running);
  const files = Array.from({ length: 40 }, (_, index) => randomBytes(index * 1000));
  const frames = await Promise.all(files.map((bytes, index) => wholePut(1100 + index, `many/${index}.bin`, bytes)));
  await raw.write(frames.flat());
  for (const [index, bytes] of files.entries()) {
    t.match(await raw.reply(1100 + index), { ok: true, result: { name: `many/${index}.bin`, size: bytes.length, sha256: sha256(bytes) } });
  }
  for (const [index, bytes] of files.entries()) {
    t.equal(sha256(await readFile(join(running.dataDir, 'files', 'many', `${index}.bin`))), sha256(bytes), `file ${index} exact`);
  }
});

t.test(
  'pipelined whole puts and other requests, over the limits of each at once: reading pauses and resumes, every one is answered',
  async (t) => {
    // Each kind has its own limit: a connection at its limit of whole puts still gets its other
    // requests read once those drain, and the reverse.
    const running = await startServer(t, {
      chunkSizeBytes: chunkSize,
      maxRequestsInFlightPerConnection: 2,
      maxWholePutsInFlightPerConnection: 3,
    });
    const raw = await rawClient(t, running);
    const files = Array.from({ length: 24 }, (_, index) => randomBytes(500 + index * 700));
    const frames: Buffer[] = [];
    for (const [index, bytes] of files.entries()) {
      frames.push(...(await wholePut(2000 + index, `mixed/${index}.bin`, bytes)));
      // Two more requests after each whole put: a stat of the file before it, and a ping.
      if (index > 0) frames.push(encodeControl({ id: 3000 + index, op: 'stat', name: `mixed/${index - 1}.bin` }));
      frames.push(encodeControl({ id: 4000 + index, op: 'ping' }));
    }
    await raw.write(frames);
    for (const [index, bytes] of files.entries()) {
      t.match(await raw.reply(2000 + index), { ok: true, result: { name: `mixed/${index}.bin`, sha256: sha256(bytes) } });
      t.match(await raw.reply(4000 + index), { ok: true }, `ping ${index}`);
      if (index > 0) t.match(await raw.reply(3000 + index), { id: 3000 + index }, `stat ${index}`);
    }
    for (const [index, bytes] of files.entries())
      t.equal(sha256(await readFile(join(running.dataDir, 'files', 'mixed', `${index}.bin`))), sha256(bytes), `file ${index} exact`);
  },
);

t.test('a bad SHA-256 or xxh64 is ECHECKSUM: nothing is stored, and the connection goes on', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: chunkSize });
  const raw = await rawClient(t, running);
  const bytes = randomBytes(5000);
  await raw.write(await wholePut(1001, 'bad-sha.bin', bytes, { sha256: sha256(Buffer.from('other')) }));
  t.match(await raw.reply(1001), { ok: false, code: 'ECHECKSUM', message: /sha256 mismatch/u });
  await raw.write([
    encodeControl({ id: 1002, op: 'putWhole', name: 'bad-xxh.bin', size: bytes.length, sha256: sha256(bytes) }),
    await chunkFrame(0, 0, bytes, 12345n),
  ]);
  t.match(await raw.reply(1002), { ok: false, code: 'ECHECKSUM', message: /xxh64/u });
  t.match(await raw.call('stat', { name: 'bad-sha.bin' }), { ok: false, code: 'ENOENT' });
  t.match(await raw.call('stat', { name: 'bad-xxh.bin' }), { ok: false, code: 'ENOENT' });
  t.same(await partialFiles(running), [], 'nothing is left in partial/');
  await raw.write(await wholePut(1003, 'good.bin', bytes));
  t.match(await raw.reply(1003), { ok: true, result: { name: 'good.bin', sha256: sha256(bytes) } }, 'the next one is stored');
});

t.test('framing: the data must follow its request, be one chunk standing for its size at offset 0, within the limit', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: chunkSize });
  const bytes = randomBytes(3000);
  const request = (fields: ControlMessage = {}): Buffer =>
    encodeControl({ id: 1, op: 'putWhole', name: 'x.bin', size: bytes.length, sha256: sha256(bytes), ...fields });
  const cases: [string, () => Promise<Buffer[]>][] = [
    ['a request where the data is due', () => Promise.resolve([request(), encodeControl({ id: 2, op: 'ping' })])],
    ['a malformed request where the data is due', () => Promise.resolve([request(), encodeControl({ id: 2, op: 'nothing' })])],
    ['data on stream 0 with no putWhole', async () => [await chunkFrame(0, 0, bytes)]],
    ['data of another size', async () => [request(), await chunkFrame(0, 0, bytes.subarray(1))]],
    ['data at another offset', async () => [request(), await chunkFrame(0, chunkSize, bytes)]],
    ['a size over the limit', () => Promise.resolve([request({ size: maxWhole + 1 })])],
  ];
  for (const [what, frames] of cases) {
    const raw = await rawClient(t, running);
    await raw.write(await frames());
    await expectBye(t, raw, what);
  }
  // A packed frame (put-whole-packed) must stand for the file's size too.
  const raw = await rawClient(t, running);
  const head = encodeChunkHead({ stream: 0, offset: 0, xxh64: 0n, length: 100, packed: { codec: 'brotli', rawLength: bytes.length - 1 } });
  await raw.write([request(), head, Buffer.alloc(100)]);
  await expectBye(t, raw, 'packed data standing for another size');
  t.match(
    await running
      .client()
      .stat('x.bin')
      .catch((error: unknown) => error),
    { code: 'ENOENT' },
    'nothing was stored',
  );
});

t.test('packed data (put-whole-packed) is unpacked and checked as raw data is; stored raw', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: chunkSize });
  const raw = await RawClient.connect(t, running.port);
  const hello = await raw.hello();
  t.ok((hello['capabilities'] as string[]).includes('put-whole-packed'), 'the server offers it');
  const brotli = localCodec('brotli')!;
  const xxh64 = await loadXxh64();
  const text = Buffer.from('a line of a log that repeats itself\n'.repeat(1000));
  const packedFrame = (payload: Uint8Array, hash: bigint): Buffer =>
    Buffer.concat([
      encodeChunkHead({
        stream: 0,
        offset: 0,
        xxh64: hash,
        length: payload.byteLength,
        packed: { codec: 'brotli', rawLength: text.length },
      }),
      payload,
    ]);
  const request = (id: number, name: string): Buffer =>
    encodeControl({ id, op: 'putWhole', name, size: text.length, sha256: sha256(text) });

  const packed = brotli.compress(text);
  await raw.write([request(2001, 'packed.log'), packedFrame(packed, xxh64(text))]);
  t.match(await raw.reply(2001), { ok: true, result: { name: 'packed.log', size: text.length, sha256: sha256(text) } });
  t.ok((await readFile(join(running.dataDir, 'files', 'packed.log'))).equals(text), 'stored as the raw bytes');

  await raw.write([request(2002, 'garbage.log'), packedFrame(Buffer.alloc(200, 0x5a), xxh64(text))]);
  t.match(await raw.reply(2002), { ok: false, code: 'ECHECKSUM', message: /brotli data does not unpack/u }, 'data that does not unpack');
  const other = Buffer.from('another log, another line\n'.repeat(1400)).subarray(0, text.length);
  await raw.write([request(2003, 'other.log'), packedFrame(brotli.compress(other), xxh64(text))]);
  t.match(await raw.reply(2003), { ok: false, code: 'ECHECKSUM', message: /xxh64/u }, 'data that unpacks to other bytes');
  t.match(await raw.call('stat', { name: 'garbage.log' }), { ok: false, code: 'ENOENT' });
  t.match(await raw.call('stat', { name: 'other.log' }), { ok: false, code: 'ENOENT' });
  t.same(await partialFiles(running), [], 'nothing is left in partial/');
  await raw.write([request(2004, 'again.log'), packedFrame(packed, xxh64(text))]);
  t.match(await raw.reply(2004), { ok: true, result: { name: 'again.log' } }, 'and the connection goes on');
});

t.test('the rules of a put: EEXIST unless force, a file is no folder, roles, quotas', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: chunkSize });
  const { accounts } = running.server;
  await accounts.add('reader', 'reader-password', { role: 'read' });
  await accounts.add('small', 'small-password', { root: 'small', quotaBytes: 10 * KiB });
  const dir = tempDir(t);
  const as = (user: string): FerryClient => {
    const client = new FerryClient({
      host: '127.0.0.1',
      port: running.port,
      ...loginAt(running.port),
      credentials: { user, password: `${user}-password` },
    });
    t.teardown(() => client.close());
    return client;
  };
  const first = await makeFile(dir, 'first.bin', 2000);
  const second = await makeFile(dir, 'second.bin', 3000);
  const client = running.client();
  await client.upload(first.path, { name: 'a.bin' });
  await t.rejects(client.upload(second.path, { name: 'a.bin' }), { code: 'EEXIST' }, 'an existing name is refused');
  t.equal((await client.stat('a.bin')).sha256, first.sha256, 'and kept');
  t.match(await client.upload(second.path, { name: 'a.bin', force: true }), { sha256: second.sha256 }, 'force replaces it');
  t.equal(await sha256Of(join(running.dataDir, 'files', 'a.bin')), second.sha256);
  await t.rejects(client.upload(first.path, { name: 'a.bin/inside.bin' }), { code: 'EEXIST' }, 'a file is not a folder');
  await t.rejects(as('reader').upload(first.path, { name: 'r.bin' }), { code: 'EPERM' }, 'a read account may not');
  const small = as('small');
  t.match(await small.upload(second.path, { name: 'one.bin' }), { name: 'one.bin' }, 'within the quota');
  const big = await makeFile(dir, 'big.bin', 8 * KiB);
  await t.rejects(small.upload(big.path, { name: 'two.bin' }), { code: 'EQUOTA' }, 'over the quota');
  t.same(
    (await client.list()).map((file) => file.name),
    ['a.bin', 'small/one.bin'],
    'nothing refused was stored',
  );
  t.same(await partialFiles(running), []);

  // A refused whole put's data is read and dropped: the connection goes on with the next request.
  const raw = await RawClient.connect(t, running.port);
  await raw.call('hello', raw.helloFields(true));
  t.match(await raw.call('login', { user: 'reader', password: 'reader-password' }), { ok: true });
  const bytes = randomBytes(1000);
  await raw.write(await wholePut(1050, 'r.bin', bytes));
  t.match(await raw.reply(1050), { ok: false, code: 'EPERM' });
  t.match(await raw.call('whoami'), { ok: true, result: { user: 'reader' } }, 'the connection still serves');
});

t.test('kill -9 in the middle of many concurrent small uploads: every acknowledged file survives, exact', async (t) => {
  const dataDir = tempDir(t, 'ferry-whole-crash');
  const dir = tempDir(t);
  const first = await spawnServer(t, dataDir);
  const files = await Promise.all(Array.from({ length: 400 }, (_, index) => makeFile(dir, `s-${index}.bin`, 1000 + index * 37)));
  const acknowledged: typeof files = [];
  const clients = Array.from({ length: 8 }, () => {
    const client = new FerryClient({ host: '127.0.0.1', port: first.port, retry: { retries: 0 }, ...loginAt(first.port) });
    t.teardown(() => client.close());
    return client;
  });
  let killed = false;
  await Promise.all(
    clients.map(async (client, lane) => {
      for (let index = lane; index < files.length; index += clients.length) {
        const file = files[index]!;
        try {
          await client.upload(file.path, { name: `crash/${index}.bin` });
        } catch {
          return; // the server is gone
        }
        acknowledged.push(file);
        if (acknowledged.length === 150 && !killed) {
          killed = true;
          first.child.kill('SIGKILL');
        }
      }
    }),
  );
  await first.exited;
  t.ok(killed, 'the server was killed mid-way');
  t.ok(
    acknowledged.length >= 150 && acknowledged.length < files.length,
    `${acknowledged.length} uploads were acknowledged before the kill`,
  );
  const second = await spawnServer(t, dataDir);
  const client = new FerryClient({ host: '127.0.0.1', port: second.port, retry: { retries: 0 }, ...loginAt(second.port) });
  t.teardown(() => client.close());
  const stored = new Map((await client.list('crash/')).map((file) => [file.name, file.sha256]));
  const lost = acknowledged.filter((file) => stored.get(`crash/${files.indexOf(file)}.bin`) !== file.sha256);
  t.same(lost, [], 'every acknowledged upload is listed with its SHA-256');
  for (const file of acknowledged) {
    const onDisk = await sha256Of(join(dataDir, 'files', 'crash', `${files.indexOf(file)}.bin`));
    if (onDisk !== file.sha256) t.fail(`${file.path} differs on disk`);
  }
  t.same(await readdir(join(dataDir, 'partial')), [], 'start-up recovery removed what the kill left in partial/');
});

t.test(
  'a small file replaced again and again while it is downloaded: downloads get one whole version or ECHANGED, never ECORRUPT',
  async (t) => {
    const running = await startServer(t, { chunkSizeBytes: chunkSize });
    const dir = tempDir(t);
    const versions = await Promise.all([makeFile(dir, 'a.bin', 40 * KiB), makeFile(dir, 'b.bin', 40 * KiB)]);
    const writer = running.client();
    await writer.upload(versions[0].path, { name: 'hot.bin' });
    let replacing = true;
    const replaced = (async () => {
      for (let round = 1; round <= 150; round += 1) await writer.upload(versions[round % 2]!.path, { name: 'hot.bin', force: true });
      replacing = false;
    })();
    const codes = new Map<string, number>();
    await Promise.all(
      Array.from({ length: 3 }, async (_, lane) => {
        const reader = running.client();
        for (let round = 0; replacing; round += 1) {
          const out = join(dir, `out-${lane}-${round}.bin`);
          const code = await reader.download('hot.bin', { out }).then(
            async (result) =>
              versions.some((version) => version.sha256 === result.sha256) && (await sha256Of(out)) === result.sha256 ? 'whole' : 'wrong',
            (error: unknown) => (error as { code?: string }).code ?? 'unknown',
          );
          codes.set(code, (codes.get(code) ?? 0) + 1);
        }
      }),
    );
    await replaced;
    t.notOk(codes.has('ECORRUPT') || codes.has('wrong'), `outcomes: ${JSON.stringify([...codes])}`);
    t.ok((codes.get('whole') ?? 0) > 0, 'downloads went through meanwhile');
    t.equal((await writer.stat('hot.bin')).damaged, undefined, 'the file was never taken for damaged');
  },
);
