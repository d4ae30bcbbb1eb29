import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import t, { type Test } from 'tap';
import { FerryClient } from '../src/client/client.js';
import { formatLog } from '../src/cli/output.js';
import type { S3Settings } from '../src/object-store/s3-client.js';
import { S3Store } from '../src/object-store/s3-store.js';
import type { LogEntry } from '../src/protocol/messages.js';
import { loginAt } from './helpers/accounts.js';
import { RawClient } from './helpers/raw-client.js';
import { startCutProxy } from './helpers/cut-proxy.js';
import { makeFile, sha256Of } from './helpers/files.js';
import { freshS3Bucket, rawS3Client, s3Endpoint, s3Skip } from './helpers/s3.js';
import { startServer } from './helpers/server.js';
import { tempDir } from './helpers/temp-dir.js';

// Downloads a client reads from a server's S3 store itself (`ferry serve --s3-direct-reads`,
// capability get-direct), against a real Ceph RGW: exact, verified, logged, and read through the
// server instead wherever the store cannot or may not be read directly.

const MiB = 1024 * 1024;
const chunkSize = 5 * MiB;

interface DirectServer {
  port: number;
}

/**
 * A server on the bucket offering direct reads signed for `directReads` (default: the store's own
 * endpoint); it reaches the store itself at `endpoint`. Clear text unless `tls`.
 */
async function serverOn(
  t: Test,
  settings: S3Settings,
  { endpoint = s3Endpoint!.endpoint, directReads = s3Endpoint!.endpoint, tls = false } = {},
): Promise<DirectServer> {
  const s3Store = new S3Store({ ...settings, endpoint, directReadEndpoint: directReads });
  return startServer(t, { chunkSizeBytes: chunkSize, tls }, { s3Store });
}

function clientFor(t: Test, port: number): FerryClient {
  const client = new FerryClient({ host: '127.0.0.1', port, retry: { retries: 0 }, ...loginAt(port) });
  t.teardown(() => client.close());
  return client;
}

/** Downloads `name` to a new local file; the notices the client printed come back with the result. */
async function download(t: Test, client: FerryClient, name: string, options: { direct?: boolean; streams?: number } = {}) {
  const notices: string[] = [];
  const out = join(tempDir(t), name);
  const result = await client.download(name, { out, onNotice: (text) => notices.push(text), ...options });
  return { ...result, notices, localSha256: await sha256Of(out) };
}

const downloadsIn = (entries: LogEntry[]): LogEntry[] => entries.filter((entry) => entry.op === 'download');

t.test('downloads read from the store by the client', { skip: s3Skip }, (t) => {
  t.test('exact and verified, none of their bytes through the server, logged as the client reports them', async (t) => {
    const settings = await freshS3Bucket(t);
    // The server reaches the store through a proxy that counts what the store sends it.
    const serverLink = await startCutProxy(t, Number(new URL(s3Endpoint!.endpoint).port));
    const server = await serverOn(t, settings, { endpoint: `http://127.0.0.1:${serverLink.port}` });
    const client = clientFor(t, server.port);
    t.ok((await client.info()).capabilities.includes('get-direct'), 'the server offers get-direct');
    const local = await makeFile(tempDir(t), 'big.bin', 3 * chunkSize + 12_345);
    await client.upload(local.path, { name: 'big.bin' });
    const empty = await makeFile(tempDir(t), 'empty.bin', 0);
    await client.upload(empty.path, { name: 'empty.bin' });

    const before = serverLink.downstreamBytes;
    const back = await download(t, client, 'big.bin');
    t.equal(back.localSha256, local.sha256, 'the downloaded file is exact');
    t.same(back.notices, [], 'all of it read from the store');
    const throughServer = serverLink.downstreamBytes - before;
    t.ok(throughServer < 64 * 1024, `the server read ${throughServer} bytes from the store for it (its record), not the file`);
    t.equal((await download(t, client, 'empty.bin')).localSha256, empty.sha256, 'an empty file too');
    const wide = await download(t, client, 'big.bin', { streams: 8 });
    t.equal(wide.localSha256, local.sha256, '--streams 8: eight reads at once, exact');
    t.same(wide.notices, []);

    // What the client was given: a window of hashes from the chunk it asked for, a signed URL of the object, its version.
    const raw = await RawClient.connect(t, server.port);
    await raw.hello();
    const window = await raw.call('getDirect', { name: 'big.bin', fromChunk: 2, sha256: local.sha256 });
    t.match(window, {
      ok: true,
      result: { size: local.bytes.length, chunkCount: 4, fromChunk: 2, toChunk: 4, hashes: [/^[0-9a-f]{16}$/u, /^[0-9a-f]{16}$/u] },
    });
    const where = window['result'] as { url: string; etag: string; expiresInSeconds: number };
    t.match(where.url, /^http:\/\/127\.0\.0\.1:\d+\/.*files\/big\.bin\?.*X-Amz-Signature=/u, 'a URL signed for the store, not the server');
    t.equal(where.expiresInSeconds, 15 * 60, 'good for 15 minutes');
    t.match(
      await raw.call('getDirect', { name: 'big.bin', sha256: empty.sha256 }),
      { ok: false, code: 'ECHANGED' },
      'only the content asked for',
    );
    // A report of a direct download is taken only of the stored content, and of no more bytes than it has.
    const report = { name: 'big.bin', sha256: local.sha256, bytes: local.bytes.length, durationMs: 5, result: 'ok' };
    t.match(await raw.call('getDirectEnd', { ...report, sha256: empty.sha256 }), { ok: false, code: 'ECHANGED' });
    t.match(await raw.call('getDirectEnd', { ...report, bytes: local.bytes.length + 1 }), { ok: false, code: 'EPROTO' });
    t.match(await raw.call('getDirectEnd', { ...report, name: 'missing.bin' }), { ok: false, code: 'ENOENT' });
    raw.destroy();

    const [, emptyEntry, bigEntry] = downloadsIn(await client.log(10));
    t.match(bigEntry, { name: 'big.bin', bytes: local.bytes.length, result: 'ok', direct: true }, 'the log has it, marked direct');
    t.match(emptyEntry, { name: 'empty.bin', bytes: 0, result: 'ok', direct: true });
    t.match(formatLog([bigEntry!]), / {2}big\.bin {2}\(direct\)$/u, '`ferry log` says so at the end of its line');
  });

  t.test('URLs that lapse within the minute the client keeps in hand: a fresh window before each read, the file exact', async (t) => {
    const settings = await freshS3Bucket(t);
    /** The store of the server, counting the URLs it signs for clients. */
    class CountingStore extends S3Store {
      signed = 0;
      override signedReadUrl(name: string, seconds: number): Promise<string | undefined> {
        this.signed += 1;
        return super.signedReadUrl(name, seconds);
      }
    }
    const store = new CountingStore({
      ...settings,
      endpoint: s3Endpoint!.endpoint,
      directReadEndpoint: s3Endpoint!.endpoint,
      directReadSeconds: 30,
    });
    const server = await startServer(t, { chunkSizeBytes: chunkSize, tls: false }, { s3Store: store });
    const client = clientFor(t, server.port);
    const local = await makeFile(tempDir(t), 'short.bin', 4 * chunkSize + 3);
    await client.upload(local.path, { name: 'short.bin' });
    const back = await download(t, client, 'short.bin');
    t.equal(back.localSha256, local.sha256, 'exact');
    t.same(back.notices, [], 'all of it read from the store');
    t.ok(store.signed > 1, `the window was asked for again (${store.signed} URLs signed for one download)`);
  });

  t.test('a store that breaks off a read: the rest comes through the server, from the first chunk not read', async (t) => {
    const settings = await freshS3Bucket(t);
    // Clients reach the store through a proxy that cuts the third connection made to it (the third chunk's read).
    const clientLink = await startCutProxy(t, Number(new URL(s3Endpoint!.endpoint).port));
    const server = await serverOn(t, settings, { directReads: `http://127.0.0.1:${clientLink.port}` });
    const client = clientFor(t, server.port);
    const local = await makeFile(tempDir(t), 'cut.bin', 6 * chunkSize + 1);
    await client.upload(local.path, { name: 'cut.bin' });
    void clientLink.cutConnectionAfter(3, 1000, 'down');
    const back = await download(t, client, 'cut.bin');
    t.equal(back.localSha256, local.sha256, 'exact');
    t.match(back.notices, [/^cut\.bin: reading the rest from \d+ MiB through the server \(.*\)$/u], 'one notice says so');
    const [relayed, direct] = downloadsIn(await client.log(10));
    t.match(direct, { direct: true, result: 'EIO' }, 'the direct part is logged with how it ended');
    t.equal(direct!.bytes % chunkSize, 0, 'whole chunks came directly');
    t.ok(direct!.bytes >= chunkSize, `${direct!.bytes} bytes came directly`);
    t.match(relayed, { result: 'ok' });
    t.equal(relayed!.direct, undefined);
    t.equal(direct!.bytes + relayed!.bytes, local.bytes.length, 'and the server sent exactly the rest');
  });

  t.test('where the store cannot or may not be read directly, the download goes through the server', async (t) => {
    const settings = await freshS3Bucket(t);
    const local = await makeFile(tempDir(t), 'file.bin', chunkSize + 99);

    // A URL nobody answers at (port 1 of this host).
    const unreachable = await serverOn(t, settings, { directReads: 'http://127.0.0.1:1' });
    const client = clientFor(t, unreachable.port);
    await client.upload(local.path, { name: 'file.bin' });
    const viaServer = await download(t, client, 'file.bin');
    t.equal(viaServer.localSha256, local.sha256, 'store unreachable: exact');
    t.match(viaServer.notices, [/reading it through the server \(127\.0\.0\.1:1\/.*ECONNREFUSED\); the next downloads too$/u]);
    // The client does not try that store again for each file (a folder of them would pay the failure per file).
    const next = await download(t, client, 'file.bin');
    t.equal(next.localSha256, local.sha256, 'the next download: exact');
    t.same(next.notices, [], 'through the server without trying the store again');

    // Asked not to.
    const told = await download(t, client, 'file.bin', { direct: false });
    t.equal(told.localSha256, local.sha256, 'direct: false: exact');
    t.same(told.notices, []);
    t.notOk(
      downloadsIn(await client.log(10)).some((entry) => entry.direct),
      'nothing was read directly (a direct read that brought nothing is not logged)',
    );

    // The connection to the server is encrypted and the store's URL is not: the bytes stay on TLS.
    const overTls = await serverOn(t, settings, { tls: true });
    const tlsClient = clientFor(t, overTls.port);
    const secure = await download(t, tlsClient, 'file.bin');
    t.equal(secure.localSha256, local.sha256, 'over TLS: exact');
    t.match(secure.notices, [
      /reading it through the server \(the store's URL is http:\/\/, and this connection to the server is encrypted\)/u,
    ]);
  });

  t.test('an object changed behind Ferry: the server, reading it, flags the file damaged', async (t) => {
    const settings = await freshS3Bucket(t);
    const server = await serverOn(t, settings);
    const client = clientFor(t, server.port);
    const local = await makeFile(tempDir(t), 'rot.bin', 2 * chunkSize);
    await client.upload(local.path, { name: 'rot.bin' });
    const damaged = Buffer.from(local.bytes);
    damaged.writeUInt8(damaged.readUInt8(chunkSize + 5) ^ 0xff, chunkSize + 5);
    await rawS3Client(t, settings).send(new PutObjectCommand({ Bucket: settings.bucket, Key: 'files/rot.bin', Body: damaged }));
    await t.rejects(client.download('rot.bin', { out: join(tempDir(t), 'rot.bin') }), { code: 'ECORRUPT' });
    t.match((await client.stat('rot.bin')).damaged, /not the one its record describes/, 'flagged damaged, with the reason');
  });

  t.end();
});
