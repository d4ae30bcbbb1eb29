import { createHash, randomBytes } from 'node:crypto';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import t, { type Test } from 'tap';
import { s3SettingsOf } from '../src/object-store/s3-client.js';
import { parseS3Location } from '../src/object-store/s3-location.js';
import { checkS3ChunkSize, s3MinPartBytes } from '../src/object-store/s3-limits.js';
import { S3Store } from '../src/object-store/s3-store.js';
import { closedPort } from './helpers/cli.js';
import { freshS3Bucket, rawS3Client, s3Endpoint, s3Skip } from './helpers/s3.js';

// The S3 store against a real S3 engine (Ceph RGW, started by test/s3/with-s3-endpoint.sh for
// `npm test`): two S3Store objects on one bucket stand for two servers sharing it.

const chunkSize = s3MinPartBytes;
const MiB = 1024 * 1024;

function fileOf(size: number): { bytes: Buffer; sha256: string; chunkHashes: bigint[] } {
  const bytes = randomBytes(size);
  // The store keeps whatever chunk hashes the engine checked; distinct values show they come back in order.
  const chunkHashes = Array.from({ length: Math.ceil(size / chunkSize) }, (_, index) => BigInt(index) * 0x1_0000_0001n + 7n);
  return { bytes, sha256: createHash('sha256').update(bytes).digest('hex'), chunkHashes };
}

function chunkOf(bytes: Buffer, index: number): Buffer {
  return bytes.subarray(index * chunkSize, Math.min(bytes.length, (index + 1) * chunkSize));
}

async function readAll(store: S3Store, name: string, offset: number, length: number): Promise<Buffer> {
  const file = await store.stat(name);
  if (!file) throw new Error(`${name} not found`);
  const target = Buffer.alloc(length);
  await store.readRange(file, offset, length, target);
  return target;
}

function storeOn(t: Test, settings: ConstructorParameters<typeof S3Store>[0]): S3Store {
  const store = new S3Store(settings);
  t.teardown(() => store.close());
  return store;
}

t.test('--store locations and S3 settings', (t) => {
  t.same(parseS3Location('s3://ferry-data'), { bucket: 'ferry-data', prefix: '' });
  t.same(parseS3Location('s3://ferry-data/team/a/'), { bucket: 'ferry-data', prefix: 'team/a/' });
  t.same(parseS3Location('s3://ferry-data/team/a'), parseS3Location('s3://ferry-data/team/a/'), 'one place, with or without the slash');
  for (const bad of [
    'ferry-data',
    'https://x/y',
    's3://',
    's3://Upper',
    's3://a',
    's3://a..b',
    's3://ok-bucket/x//y',
    's3://ok-bucket/../y',
  ]) {
    t.throws(() => parseS3Location(bad), { code: 'EUSAGE' }, bad);
  }
  const local = s3SettingsOf(parseS3Location('s3://b1b'), { endpoint: 'http://127.0.0.1:7480/' }, {});
  t.equal(local.endpoint, 'http://127.0.0.1:7480');
  t.equal(local.forcePathStyle, true, 'path-style for an endpoint that is not AWS');
  t.equal(local.region, 'us-east-1');
  t.equal(s3SettingsOf(parseS3Location('s3://b1b'), {}, { AWS_REGION: 'eu-west-3' }).region, 'eu-west-3');
  t.equal(s3SettingsOf(parseS3Location('s3://b1b'), { endpoint: 'https://s3.eu-west-3.amazonaws.com' }, {}).forcePathStyle, false);
  t.throws(() => s3SettingsOf(parseS3Location('s3://b1b'), { endpoint: 'ftp://x' }, {}), { code: 'EUSAGE' });
  t.throws(() => s3SettingsOf(parseS3Location('s3://b1b'), { endpoint: 'not a url' }, {}), { code: 'EUSAGE' });
  t.throws(() => checkS3ChunkSize(4 * MiB), { code: 'EUSAGE', message: /at least 5 MiB/ });
  t.doesNotThrow(() => checkS3ChunkSize(8 * MiB));
  t.end();
});

t.test('against a real S3 engine', { skip: s3Skip }, (t) => {
  t.test('connecting: an unreachable store, a missing bucket and refused keys are one clear error each', async (t) => {
    const settings = await freshS3Bucket(t);
    const port = await closedPort();
    await t.rejects(S3Store.connect({ ...settings, endpoint: `http://127.0.0.1:${port}`, maxAttempts: 2 }), {
      code: 'EIO',
      message: new RegExp(`s3://${settings.bucket}/ at http://127.0.0.1:${port} cannot be reached while checking the bucket: ECONNREFUSED`),
    });
    await t.rejects(S3Store.connect({ ...settings, bucket: `${settings.bucket}-missing` }), {
      code: 'ECONFIG',
      message: /bucket .*-missing does not exist/,
    });
    await t.rejects(S3Store.connect({ ...settings, credentials: { accessKeyId: s3Endpoint!.accessKeyId, secretAccessKey: 'wrong' } }), {
      code: 'ECONFIG',
      message: /refused our credentials .*AWS_ACCESS_KEY_ID/,
    });
    (await S3Store.connect(settings)).close();
  });

  t.test('an upload begun on one server is found, finished and published on another, and read back by the first', async (t) => {
    const settings = await freshS3Bucket(t, 'team/');
    const [a, b] = [storeOn(t, settings), storeOn(t, settings)];
    const name = 'data/run 1/big.bin';
    const file = fileOf(2 * chunkSize + 1000);
    const upload = await a.createUpload({ name, size: file.bytes.length, chunkSize, fingerprint: 'fp-1', owner: 'alice' });
    t.equal(upload.chunks.length, 3);
    // Chunks land out of order; the checkpoint records what is in the store.
    await a.writePart(upload, 2, chunkOf(file.bytes, 2));
    await a.writePart(upload, 0, chunkOf(file.bytes, 0));
    upload.chunks[0] = file.chunkHashes[0]!.toString(16).padStart(16, '0');
    upload.chunks[2] = file.chunkHashes[2]!.toString(16).padStart(16, '0');
    upload.hashedChunks = 1;
    upload.sha256State = 'c3RhdGU=';
    await a.saveUpload(upload);

    const found = await b.findUpload(name);
    t.ok(found, 'the second server finds the upload in the store');
    t.equal(found!.id, upload.id);
    t.equal(found!.uploadId, upload.uploadId);
    t.same(found!.chunks, upload.chunks, 'with the chunk hashes the first recorded');
    t.equal(found!.sha256State, 'c3RhdGU=');
    t.same([...(await b.storedParts(found!)).keys()].sort(), [0, 2], 'and the parts the store holds');
    t.equal(await b.stat(name), undefined, 'not a file before it is published');

    await t.rejects(b.publish(found!, { sha256: file.sha256, chunkHashes: file.chunkHashes, force: false }), {
      code: 'EINCOMPLETE',
      message: /1 of 3 chunks/,
    });
    t.ok(await a.findUpload(name), 'a refused publish leaves the upload to be finished');
    await b.writePart(found!, 1, chunkOf(file.bytes, 1));
    const published = await b.publish(found!, {
      sha256: file.sha256,
      chunkHashes: file.chunkHashes,
      mtime: 1_700_000_000_000,
      mode: 0o640,
      force: false,
    });
    t.equal(published.sha256, file.sha256);
    t.equal(published.mode, 0o640);
    t.equal(await a.findUpload(name), undefined, 'the upload is gone once published');

    const seen = await a.stat(name);
    t.same(seen, published, 'the first server reads the record the second wrote');
    t.same(
      seen!.chunkHashes.map((hex) => BigInt(`0x${hex}`)),
      file.chunkHashes,
    );
    t.ok((await readAll(a, name, 0, file.bytes.length)).equals(file.bytes), 'the whole file, byte for byte');
    const across = chunkSize - 10;
    t.ok(
      (await readAll(a, name, across, chunkSize + 20)).equals(file.bytes.subarray(across, across + chunkSize + 20)),
      'a range across a chunk boundary',
    );
    const listed = [];
    for await (const entry of a.list('data/')) listed.push(entry.name);
    t.same(listed, [name]);
    const elsewhere = [];
    for await (const entry of a.list('other/')) elsewhere.push(entry.name);
    t.same(elsewhere, []);
  });

  t.test('a name is published once unless replaced on purpose; a reader of the old file is told it changed', async (t) => {
    const settings = await freshS3Bucket(t);
    const store = storeOn(t, settings);
    const first = fileOf(1000);
    const second = fileOf(2000);
    const put = async (file: ReturnType<typeof fileOf>, force: boolean) => {
      const upload = await store.createUpload({ name: 'x.txt', size: file.bytes.length, chunkSize, fingerprint: 'fp' });
      await store.writePart(upload, 0, file.bytes);
      return store.publish(upload, { sha256: file.sha256, chunkHashes: file.chunkHashes, force });
    };
    const old = await put(first, false);
    await t.rejects(put(second, false), { code: 'EEXIST' });
    t.ok((await readAll(store, 'x.txt', 0, 1000)).equals(first.bytes), 'the refused upload changed nothing');
    await store.abortUpload((await store.findUpload('x.txt'))!);
    await put(second, true);
    t.ok((await readAll(store, 'x.txt', 0, 2000)).equals(second.bytes), 'replaced with --force');
    await t.rejects(store.readRange(old, 0, 1000, Buffer.alloc(1000)), { code: 'ECHANGED' });

    t.equal(await store.delete('x.txt'), true);
    t.equal(await store.stat('x.txt'), undefined);
    t.equal(await store.delete('x.txt'), false, 'deleting what is gone says so');
    await t.rejects(store.readRange(old, 0, 1000, Buffer.alloc(1000)), { code: 'ECHANGED' });
  });

  t.test('an empty file', async (t) => {
    const store = storeOn(t, await freshS3Bucket(t));
    const empty = fileOf(0);
    const upload = await store.createUpload({ name: 'empty', size: 0, chunkSize, fingerprint: 'fp' });
    const published = await store.publish(upload, { sha256: empty.sha256, chunkHashes: [], force: false });
    t.equal(published.size, 0);
    t.same((await store.stat('empty'))?.chunkHashes, []);
    t.equal(await store.findUpload('empty'), undefined);
  });

  t.test('uploads nobody touched since the cutoff are aborted; newer ones stay', async (t) => {
    const store = storeOn(t, await freshS3Bucket(t));
    const old = await store.createUpload({ name: 'old.bin', size: 10, chunkSize, fingerprint: 'fp' });
    await store.writePart(old, 0, Buffer.alloc(10, 1));
    const cutoff = Date.now() + 1;
    await new Promise((resolve) => setTimeout(resolve, 5)); // the next upload's touch must come after the cutoff's millisecond
    await store.createUpload({ name: 'new.bin', size: 10, chunkSize, fingerprint: 'fp' });
    t.same(await store.expireUploads(cutoff), ['old.bin']);
    t.equal(await store.findUpload('old.bin'), undefined, 'its parts and manifest are gone');
    t.ok(await store.findUpload('new.bin'));
    t.same(await store.expireUploads(cutoff), [], 'nothing more to expire');

    // Aborting an upload another server has since replaced with its own leaves the newer one be.
    const stale = (await store.findUpload('new.bin'))!;
    const newer = await store.createUpload({ name: 'new.bin', size: 10, chunkSize, fingerprint: 'fp2' });
    await store.abortUpload(stale);
    t.equal((await store.findUpload('new.bin'))?.id, newer.id, 'the newer upload of the name is kept');
  });

  t.test('what the store holds is checked: damaged manifests, wrong chunk lengths, names that would leave the prefix', async (t) => {
    const settings = await freshS3Bucket(t, 'p/');
    const store = storeOn(t, settings);
    const raw = rawS3Client(t, settings);
    await raw.send(new PutObjectCommand({ Bucket: settings.bucket, Key: 'p/manifests/garbled', Body: '{"format":1,' }));
    await t.rejects(store.stat('garbled'), { code: 'EIO', message: /damaged manifest at p\/manifests\/garbled: not JSON/ });
    await raw.send(new PutObjectCommand({ Bucket: settings.bucket, Key: 'p/manifests/wrong', Body: '{"format":2}' }));
    await t.rejects(store.stat('wrong'), { code: 'EIO', message: /damaged manifest at p\/manifests\/wrong/ });

    const upload = await store.createUpload({ name: 'a.bin', size: 100, chunkSize, fingerprint: 'fp' });
    await t.rejects(store.writePart(upload, 0, Buffer.alloc(99)), { code: 'EPROTO' });
    await t.rejects(store.writePart(upload, 1, Buffer.alloc(100)), { code: 'EPROTO' });
    for (const name of ['../escape', '/abs', 'a/../../b']) {
      await t.rejects(store.createUpload({ name, size: 1, chunkSize, fingerprint: 'fp' }), { code: 'EBADNAME' }, name);
    }
    await t.rejects(store.createUpload({ name: 'huge', size: 10_001 * chunkSize, chunkSize, fingerprint: 'fp' }), {
      code: 'EQUOTA',
      message: /at most 10000/,
    });
  });
  t.end();
});
