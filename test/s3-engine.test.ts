import { join } from 'node:path';
import { Readable } from 'node:stream';
import { readFile, writeFile } from 'node:fs/promises';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import t, { type Test } from 'tap';
import { FerryClient } from '../src/client/client.js';
import type { S3Settings } from '../src/object-store/s3-client.js';
import { S3Store } from '../src/object-store/s3-store.js';
import { loadXxh64 } from '../src/hashing/xxh64.js';
import { encodeChunkHead } from '../src/protocol/encoder.js';
import { loginAt } from './helpers/accounts.js';
import { startCutProxy } from './helpers/cut-proxy.js';
import { makeFile, sha256Of } from './helpers/files.js';
import { RawClient, referenceFingerprint } from './helpers/raw-client.js';
import { freshS3Bucket, rawS3Client, s3Endpoint, s3ServerEnv, s3Skip } from './helpers/s3.js';
import { type ServerProcess, spawnServer } from './helpers/server-process.js';
import { startServer } from './helpers/server.js';
import { tempDir } from './helpers/temp-dir.js';

// Ferry servers on a shared S3 store (a real Ceph RGW): the transfers that matter, and two servers on one bucket.

const MiB = 1024 * 1024;
const chunkSize = 5 * MiB;

/** A server on the bucket in this process (its own data directory: LMDB is each server's own cache), reaching S3 at `endpoint`. */
async function serverOn(t: Test, settings: S3Settings, endpoint = s3Endpoint!.endpoint): Promise<{ port: number }> {
  return startServer(t, { chunkSizeBytes: chunkSize }, { s3Store: new S3Store({ ...settings, endpoint }) });
}

/** The same as a `ferry serve` child process (one a test can kill -9), its credentials given the SDK's usual way. */
async function serveProcessOn(t: Test, settings: S3Settings): Promise<ServerProcess> {
  Object.assign(process.env, s3ServerEnv()); // spawnServer passes our environment on
  const location = `s3://${settings.bucket}/${settings.prefix}`;
  return spawnServer(t, tempDir(t), ['--store', location, '--s3-endpoint', s3Endpoint!.endpoint, '--chunk-size', '5MiB']);
}

function clientFor(t: Test, port: number, retries = 0): FerryClient {
  const client = new FerryClient({ host: '127.0.0.1', port, retry: { retries }, ...loginAt(port) });
  t.teardown(() => client.close());
  return client;
}

t.test('against a real S3 engine', { skip: s3Skip }, (t) => {
  t.test('upload, list, stat, download and delete through a server on the store', async (t) => {
    const settings = await freshS3Bucket(t, 'team/');
    const server = await serverOn(t, settings);
    const client = clientFor(t, server.port);
    const local = await makeFile(tempDir(t), 'big.bin', 3 * chunkSize + 12_345);
    const small = await makeFile(tempDir(t), 'small.txt', 1000);
    const result = await client.upload(local.path, { name: 'data/big.bin' });
    t.equal(result.sha256, local.sha256);
    await client.upload(small.path, { name: 'data/small.txt' });
    t.same(
      (await client.list('data/')).map((file) => [file.name, file.size]),
      [
        ['data/big.bin', local.bytes.length],
        ['data/small.txt', 1000],
      ],
    );
    t.equal((await client.stat('data/big.bin')).sha256, local.sha256);
    // A small file goes in one request (putWhole): one PUT of the object, then its manifest.
    const smaller = await makeFile(tempDir(t), 'smaller.txt', 700);
    await t.rejects(client.upload(smaller.path, { name: 'data/small.txt' }), { code: 'EEXIST' });
    await client.upload(smaller.path, { name: 'data/small.txt', force: true });
    const smallBack = join(tempDir(t), 'small.txt');
    await client.download('data/small.txt', { out: smallBack });
    t.equal(await sha256Of(smallBack), smaller.sha256, 'a small file replaced in one request reads back exact');
    await t.rejects(client.upload(small.path, { name: 'data/big.bin' }), { code: 'EEXIST' }, 'a name is not replaced without --force');

    const out = join(tempDir(t), 'back.bin');
    const back = await client.download('data/big.bin', { out });
    t.equal(back.sha256, local.sha256);
    t.equal(await sha256Of(out), local.sha256, 'the downloaded file is exact');

    const store = new S3Store(settings);
    t.teardown(() => store.close());
    const manifest = await store.stat('data/big.bin');
    t.equal(manifest?.sha256, local.sha256, 'the store keeps the record with the file');
    t.equal(manifest?.chunkHashes.length, 4);

    await client.delete('data/big.bin');
    t.equal(await store.stat('data/big.bin'), undefined, 'deleted from the store');
    t.same(
      (await client.list('data/')).map((file) => file.name),
      ['data/small.txt'],
    );
  });

  t.test('two servers on one bucket: what one stores the other lists, serves and deletes', async (t) => {
    const settings = await freshS3Bucket(t);
    const [a, b] = [await serverOn(t, settings), await serverOn(t, settings)];
    const [viaA, viaB] = [clientFor(t, a.port), clientFor(t, b.port)];
    const local = await makeFile(tempDir(t), 'shared.bin', 2 * chunkSize + 1);
    await viaA.upload(local.path, { name: 'shared.bin' });
    t.same(
      (await viaB.list()).map((file) => file.name),
      ['shared.bin'],
      'B lists what A stored',
    );
    const out = join(tempDir(t), 'shared.bin');
    await viaB.download('shared.bin', { out });
    t.equal(await sha256Of(out), local.sha256, 'B serves it, verified');

    const replacement = await makeFile(tempDir(t), 'shared.bin', chunkSize + 7);
    await viaB.upload(replacement.path, { name: 'shared.bin', force: true });
    t.equal((await viaA.stat('shared.bin')).sha256, replacement.sha256, 'A sees the file B replaced');
    await viaB.delete('shared.bin');
    t.same(await viaA.list(), [], 'and the delete');
    await t.rejects(viaA.stat('shared.bin'), { code: 'ENOENT' });
  });

  t.test('a listing page by page sees the store as it is at each page, one page at a time', async (t) => {
    const settings = await freshS3Bucket(t);
    // B reaches the store through a proxy that counts what the store sends it.
    const s3Link = await startCutProxy(t, Number(new URL(s3Endpoint!.endpoint).port));
    const [a, b] = [await serverOn(t, settings), await serverOn(t, settings, `http://127.0.0.1:${s3Link.port}`)];
    const viaA = clientFor(t, a.port);
    const small = await makeFile(tempDir(t), 'small.txt', 100);
    const names = Array.from({ length: 40 }, (_, index) => `f${String(index).padStart(2, '0')}`);
    for (const name of names) await viaA.upload(small.path, { name });
    const pager = await RawClient.connect(t, b.port);
    await pager.hello();
    const page = async (limit: number, after?: string): Promise<{ names: string[]; next: unknown; storeBytes: number }> => {
      const before = s3Link.downstreamBytes;
      const reply = await pager.call('list', { limit, ...(after === undefined ? {} : { after }) });
      const result = reply['result'] as { files: { name: string }[]; next?: string };
      return { names: result.files.map((file) => file.name), next: result.next, storeBytes: s3Link.downstreamBytes - before };
    };
    t.match(await page(2), { names: ['f00', 'f01'], next: 'f01' }, 'B pages what A stored');
    t.same((await page(1000)).names, names, 'and lists it whole');
    // Every record is now known to B: what a page costs is the store's listing of it.
    const whole = (await page(1000)).storeBytes;
    const one = await page(2, 'f20');
    t.same([one.names, one.next], [['f21', 'f22'], 'f22']);
    t.ok(one.storeBytes * 4 < whole, `a page of 2 read ${one.storeBytes} bytes from the store, the whole listing ${whole}`);

    // Between two pages, A deletes a file of the next page and adds one after it: B's next pages are as the store is now.
    await viaA.delete('f24');
    await viaA.upload(small.path, { name: 'f23a' });
    t.match(await page(2, 'f22'), { names: ['f23', 'f23a'], next: 'f23a' }, 'the file added meanwhile is listed');
    t.match(await page(2, 'f23a'), { names: ['f25', 'f26'] }, 'the file deleted meanwhile is not');
    await t.rejects(clientFor(t, b.port).stat('f24'), { code: 'ENOENT' });
    t.match(await page(2, 'f37'), { names: ['f38', 'f39'], next: undefined }, 'the last page says so');
  });

  t.test('an upload cut by a kill -9 of one server is finished through another from its verified chunks', async (t) => {
    const settings = await freshS3Bucket(t);
    const store = new S3Store(settings);
    t.teardown(() => store.close());
    const a = await serveProcessOn(t, settings);
    const b = await serverOn(t, settings);
    const size = 8 * chunkSize;
    const local = await makeFile(tempDir(t), 'cut.bin', size);
    // A slow link to A, so the kill lands mid-upload.
    const link = await startCutProxy(t, a.port, { bytesPerSecond: 10 * MiB });
    let recordedAtKill = -1;
    let checking = false;
    const upload = clientFor(t, link.port).upload(local.path, {
      name: 'cut.bin',
      onProgress: () => {
        if (checking || recordedAtKill >= 0) return;
        checking = true;
        void store.findUpload('cut.bin').then((found) => {
          checking = false;
          const recorded = found?.hashedChunks ?? 0;
          if (recorded >= 2 && recordedAtKill < 0) {
            recordedAtKill = recorded;
            a.child.kill('SIGKILL');
          }
        });
      },
    });
    await t.rejects(upload, { code: 'ECONNLOST' }, 'the upload fails when its server dies');
    t.ok(recordedAtKill >= 2, `A had recorded ${recordedAtKill} chunks in the store when it was killed`);

    const other = await makeFile(tempDir(t), 'other.bin', chunkSize);
    await t.rejects(
      clientFor(t, b.port).upload(other.path, { name: 'cut.bin' }),
      { code: 'EBUSY', message: /being uploaded through another server/ },
      'another file is not let drop an upload another server touched a moment ago',
    );
    const result = await clientFor(t, b.port).upload(local.path, { name: 'cut.bin' });
    t.equal(result.resumed, true, 'B resumes the upload A began');
    t.equal(result.sha256, local.sha256);
    t.ok(
      result.bytesSent <= size - recordedAtKill * chunkSize,
      `B was sent ${result.bytesSent} bytes; ${size - recordedAtKill * chunkSize} were not recorded at the kill`,
    );
    const out = join(tempDir(t), 'cut.bin');
    await clientFor(t, b.port).download('cut.bin', { out });
    t.equal(await sha256Of(out), local.sha256, 'the file B published is exact');
    t.equal(await store.findUpload('cut.bin'), undefined, 'and the upload is gone from the store');
  });

  t.test('a saved hash state a server cannot take up: the upload starts over through it instead of failing', async (t) => {
    const settings = await freshS3Bucket(t);
    const store = new S3Store(settings);
    t.teardown(() => store.close());
    const a = await startServer(t, { chunkSizeBytes: chunkSize }, { s3Store: new S3Store(settings) });
    const size = 4 * chunkSize;
    const local = await makeFile(tempDir(t), 'state.bin', size);
    const link = await startCutProxy(t, a.port);
    void link.cutAfter(2.5 * chunkSize, 'up');
    await t.rejects(clientFor(t, link.port).upload(local.path, { name: 'state.bin' }), { code: 'ECONNLOST' });
    await a.server.close();
    const left = await store.findUpload('state.bin');
    t.ok(left && left.hashedChunks >= 1 && left.sha256State, `A left the upload with ${left?.hashedChunks} chunks hashed and its state`);
    // As a server of a later Ferry that wrote a form this one does not read would leave it.
    await store.saveUpload({ ...left!, sha256State: 'sha256.v9.AAAA' });

    const b = await serverOn(t, settings);
    const result = await clientFor(t, b.port).upload(local.path, { name: 'state.bin' });
    t.equal(result.resumed, false, 'B starts the upload over (the chunks in the store cannot be read back to be hashed)');
    t.equal(result.bytesSent, size);
    t.equal(result.sha256, local.sha256);
    const out = join(tempDir(t), 'state.bin');
    await clientFor(t, b.port).download('state.bin', { out });
    t.equal(await sha256Of(out), local.sha256, 'the file B published is exact');
  });

  t.test('the store cut off mid-upload: parts are retried and the upload completes', async (t) => {
    const settings = await freshS3Bucket(t);
    const s3Port = Number(new URL(s3Endpoint!.endpoint).port);
    const s3Link = await startCutProxy(t, s3Port);
    const server = await serverOn(t, settings, `http://127.0.0.1:${s3Link.port}`);
    const local = await makeFile(tempDir(t), 'flaky.bin', 4 * chunkSize);
    const cut = s3Link.cutAfter(2 * chunkSize, 'up');
    const result = await clientFor(t, server.port, 5).upload(local.path, { name: 'flaky.bin' });
    await cut;
    t.equal(result.sha256, local.sha256);
    const out = join(tempDir(t), 'flaky.bin');
    await clientFor(t, server.port).download('flaky.bin', { out });
    t.equal(await sha256Of(out), local.sha256, 'stored exactly despite the cut');
  });

  t.test('the store cut off mid-download: the read is tried again and the download completes', async (t) => {
    const settings = await freshS3Bucket(t);
    const s3Link = await startCutProxy(t, Number(new URL(s3Endpoint!.endpoint).port));
    const server = await serverOn(t, settings, `http://127.0.0.1:${s3Link.port}`);
    const local = await makeFile(tempDir(t), 'flaky.bin', 3 * chunkSize + 77);
    await clientFor(t, server.port).upload(local.path, { name: 'flaky.bin' });
    const cut = s3Link.cutAfter(chunkSize + 1000, 'down');
    const out = join(tempDir(t), 'flaky.bin');
    const result = await clientFor(t, server.port).download('flaky.bin', { out });
    await cut;
    t.equal(result.resumed, false, 'in one attempt of the client: the server read the chunk again');
    t.equal(await sha256Of(out), local.sha256, 'exact despite the cut');
  });

  t.test('bytes that no longer match their record are caught on download, and the file is flagged damaged', async (t) => {
    const settings = await freshS3Bucket(t);
    const server = await serverOn(t, settings);
    const client = clientFor(t, server.port);
    const local = await makeFile(tempDir(t), 'rot.bin', 2 * chunkSize);
    await client.upload(local.path, { name: 'rot.bin' });
    // An object changed behind Ferry's back (S3 gives it a new ETag; the manifest still names the old one).
    const raw = rawS3Client(t, settings);
    const damaged = Buffer.from(local.bytes);
    damaged.writeUInt8(damaged.readUInt8(chunkSize + 5) ^ 0xff, chunkSize + 5);
    await raw.send(new PutObjectCommand({ Bucket: settings.bucket, Key: 'files/rot.bin', Body: damaged }));
    const out = join(tempDir(t), 'rot.bin');
    await t.rejects(client.download('rot.bin', { out }), { code: 'ECORRUPT' });
    t.match((await client.stat('rot.bin')).damaged, /not the one its record describes/, 'flagged damaged, with the reason');
    await t.rejects(client.download('rot.bin', { out }), { code: 'ECORRUPT' }, 'and not served again');
  });

  t.test('limits and names hold on the store: the storage quota, hostile names', async (t) => {
    const settings = await freshS3Bucket(t);
    const server = await startServer(
      t,
      { chunkSizeBytes: chunkSize, maxStorageBytes: 3 * chunkSize },
      { s3Store: new S3Store({ ...settings, endpoint: s3Endpoint!.endpoint }) },
    );
    const client = clientFor(t, server.port);
    const first = await makeFile(tempDir(t), 'first.bin', 2 * chunkSize);
    await client.upload(first.path, { name: 'first.bin' });
    await t.rejects(client.upload(first.path, { name: 'second.bin' }), { code: 'EQUOTA' }, 'over the storage quota');
    for (const name of ['../escape.bin', '/abs.bin', 'a/../../b.bin']) {
      await t.rejects(client.upload(first.path, { name }), { code: 'EBADNAME' }, name);
    }
    const store = new S3Store(settings);
    t.teardown(() => store.close());
    const keys: string[] = [];
    for await (const entry of store.list('')) keys.push(entry.name);
    t.same(keys, ['first.bin'], 'nothing else reached the store');
    t.equal(await store.findUpload('second.bin'), undefined, 'the refused upload left nothing there');
  });

  t.test('an unfinished upload idle past the TTL is aborted in the store, whichever server left it', async (t) => {
    const settings = await freshS3Bucket(t);
    const store = new S3Store(settings);
    t.teardown(() => store.close());
    // Left by a server that died: its manifest's last touch is all that says how old it is.
    const abandoned = await store.createUpload({ name: 'abandoned.bin', size: chunkSize, chunkSize, fingerprint: 'fp' });
    await store.writePart(abandoned, 0, Buffer.alloc(chunkSize, 1));
    await startServer(
      t,
      { chunkSizeBytes: chunkSize, sessionTtlMs: 1, sessionSweepIntervalMs: 50 },
      { s3Store: new S3Store({ ...settings, endpoint: s3Endpoint!.endpoint }) },
    );
    // The sweep is the server's own timer: wait for its effect in the store (bounded).
    const deadline = Date.now() + 20_000;
    while ((await store.findUpload('abandoned.bin')) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    t.equal(await store.findUpload('abandoned.bin'), undefined, 'aborted by the sweep');
  });

  t.test('an upload from a stream: published at the size it ended at; one that breaks off leaves nothing in the store', async (t) => {
    const settings = await freshS3Bucket(t);
    const server = await serverOn(t, settings);
    const client = clientFor(t, server.port);
    const store = new S3Store(settings);
    t.teardown(() => store.close());
    const local = await makeFile(tempDir(t), 'stream.bin', 2 * chunkSize + 777);
    /** The bytes as a stream gives them: in pieces that do not line up with the chunks (and an error after `breakAfter` bytes). */
    function* pieces(bytes: Buffer, breakAfter: number): Generator<Buffer> {
      for (let at = 0; at < bytes.length; at += 3 * MiB) {
        if (at >= breakAfter) throw new Error('the input broke off');
        yield bytes.subarray(at, at + 3 * MiB);
      }
    }
    const piecesOf = (bytes: Buffer, breakAfter = Infinity): Readable => Readable.from(pieces(bytes, breakAfter));
    const result = await client.uploadStream(piecesOf(local.bytes), { name: 'piped.bin' });
    t.equal(result.sha256, local.sha256);
    t.match(await store.stat('piped.bin'), { size: local.bytes.length, sha256: local.sha256 }, 'published with the size the stream had');
    t.equal(await store.findUpload('piped.bin'), undefined, 'no upload left behind');
    const out = join(tempDir(t), 'piped.bin');
    await client.download('piped.bin', { out });
    t.equal(await sha256Of(out), local.sha256, 'read back exact');
    t.match(await client.uploadStream(piecesOf(Buffer.alloc(0)), { name: 'empty.bin' }), { size: 0 }, 'an empty stream is an empty file');

    await t.rejects(client.uploadStream(piecesOf(local.bytes, chunkSize + 1), { name: 'broken.bin' }), /broke off/u);
    // The server aborts the multipart upload as it lets the stream go: wait for the store to say so (bounded).
    let left = await store.findUpload('broken.bin');
    for (const deadline = Date.now() + 30_000; left && Date.now() < deadline;) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      left = await store.findUpload('broken.bin');
    }
    t.equal(left, undefined, 'nothing of a stream that broke off stays in the store');
    await t.rejects(
      store.stat('broken.bin').then((found) => found ?? Promise.reject(new Error('absent'))),
      /absent/u,
      'and it was not published',
    );
  });

  t.test(
    'compressed chunks both ways: fewer bytes on the wire, the raw file in the store; one that does not unpack is refused',
    async (t) => {
      const settings = await freshS3Bucket(t);
      const server = await serverOn(t, settings);
      const client = clientFor(t, server.port);
      const info = await client.info();
      t.ok(info.capabilities.includes('compress:brotli'), 'the codecs are offered');
      t.notOk(info.capabilities.includes('put-join'), 'no parallel streams for an upload (its running SHA-256 is fed in order)');
      const lines = Array.from({ length: 400_000 }, (_, line) => `${line} chunk ${(line * 2654435761) % 100_000} verified\n`);
      const text = Buffer.from(lines.join('')).subarray(0, 2 * chunkSize + 4321);
      const path = join(tempDir(t), 'log.txt');
      await writeFile(path, text);

      const up = await client.upload(path, { name: 'log.txt', compress: 'brotli' });
      t.ok(up.wireBytes < text.length / 3, `upload: ${up.wireBytes} bytes on the wire for ${text.length}`);
      const object = await rawS3Client(t, settings).send(new GetObjectCommand({ Bucket: settings.bucket, Key: 'files/log.txt' }));
      t.ok(Buffer.from(await object.Body!.transformToByteArray()).equals(text), 'the object in the store is the raw file');

      const out = join(tempDir(t), 'log.txt');
      const down = await client.download('log.txt', { out, compress: 'brotli' });
      t.ok(down.wireBytes < text.length / 3, `download: ${down.wireBytes} bytes on the wire`);
      t.ok((await readFile(out)).equals(text), 'the same bytes back');

      const raw = await RawClient.connect(t, server.port);
      await raw.hello();
      const put = await raw.call('put', { name: 'bad.txt', size: text.length, fingerprint: await referenceFingerprint(text) });
      const stream = (put['result'] as { stream: number }).stream;
      const garbage = Buffer.alloc(1000, 0x5a);
      const first = text.subarray(0, chunkSize);
      const packed = { codec: 'brotli', rawLength: first.length } as const;
      const xxh64 = await loadXxh64();
      await raw.write(
        Buffer.concat([encodeChunkHead({ stream, offset: 0, xxh64: xxh64(first), length: garbage.length, packed }), garbage]),
      );
      t.match(
        await raw.event('abort', stream),
        { code: 'ECHECKSUM', message: /brotli data does not unpack/u },
        'a chunk that does not unpack: ECHECKSUM',
      );
    },
  );
  t.end();
});
