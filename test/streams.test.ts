/**
 * Parallel streams (issue 16): `download --streams N` fetches one file over N connections, each a
 * range of its chunks, verified chunk by chunk and by SHA-256 at the end; a cut one resumes.
 * `upload --streams N` sends one upload's chunks over N connections (the others join it with
 * `putJoin`); a cut joined connection's unconfirmed chunks go again on the others.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { splitChunks } from '../src/client/parallel-download.js';
import { describe, ferry, jsonOf } from './helpers/cli.js';
import { startCutProxy } from './helpers/cut-proxy.js';
import { makeFile } from './helpers/files.js';
import { RawClient, chunkFrame } from './helpers/raw-client.js';
import { startServer } from './helpers/server.js';
import { tempDir } from './helpers/temp-dir.js';

const KiB = 1024;
const MiB = 1024 * KiB;

t.test('ranges split the chunks evenly, in order, with nothing left out', (t) => {
  t.same(splitChunks(0, 10, 3), [
    { from: 0, to: 3 },
    { from: 3, to: 6 },
    { from: 6, to: 10 },
  ]);
  t.same(splitChunks(4, 6, 2), [
    { from: 4, to: 5 },
    { from: 5, to: 6 },
  ]);
  t.end();
});

t.test('download --streams 3: three connections, the same bytes; a cut run is finished by the next', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: 256 * KiB });
  const proxy = await startCutProxy(t, running.port);
  const dir = tempDir(t);
  const local = await makeFile(dir, 'big.bin', 5 * MiB + 1234);
  const client = running.client();
  t.teardown(() => client.close());
  await client.upload(local.path, { name: 'big.bin' });
  const server = ['--server', `127.0.0.1:${proxy.port}`];

  const before = proxy.connections;
  const out = join(dir, 'copy.bin');
  const run = jsonOf<{ sha256: string; bytesReceived: number }>(
    t,
    await ferry(['download', 'big.bin', '--out', out, '--streams', '3', '--json', ...server]),
  );
  t.equal(run.sha256, local.sha256);
  t.ok((await readFile(out)).equals(local.bytes), 'the same bytes');
  t.equal(proxy.connections - before, 3, 'over three connections');

  // Cut part-way: the part file keeps what landed, and the same command finishes it.
  const cut = join(dir, 'cut.bin');
  const cutting = proxy.cutAfter(3 * MiB, 'down');
  const first = await ferry(['download', 'big.bin', '--out', cut, '--streams', '3', '--retries', '0', ...server]);
  await cutting;
  t.equal(first.code, 1, `the cut run fails (${describe(first)})`);
  t.ok((await stat(`${cut}.ferry-part`)).size > 0, 'a part file is left');
  const again = await ferry(['download', 'big.bin', '--out', cut, '--streams', '3', '--json', ...server]);
  t.equal(again.code, 0, describe(again));
  // What resumes is the verified start of the part: chunks the other streams landed past a gap, if any, are fetched again.
  t.match(again.stderr, /^(?:\S+cut\.bin\.ferry-part: kept the [\d.]+ \w+ that match the server's big\.bin, discarded [^\n]+\n)?$/u);
  const second = JSON.parse(again.stdout) as { sha256: string; bytesReceived: number; resumed: boolean };
  t.equal(second.sha256, local.sha256);
  t.equal(second.resumed, true, 'resumed');
  t.ok(
    second.bytesReceived < local.bytes.length,
    `only what was missing from the verified start was fetched (${second.bytesReceived} bytes)`,
  );
  t.ok((await readFile(cut)).equals(local.bytes), 'the same bytes');
});

t.test('download --streams 3: a connection cut mid-file has its chunks fetched by the others, in the same run', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: 256 * KiB });
  const proxy = await startCutProxy(t, running.port);
  const dir = tempDir(t);
  const local = await makeFile(dir, 'big.bin', 6 * MiB + 4321);
  const uploader = running.client();
  await uploader.upload(local.path, { name: 'big.bin' });
  // Connection 1 is the client's own; 2 and 3 are the extra streams. Cut the second part-way through its first range (4 chunks).
  let cut = false;
  const client = running.client({ port: proxy.port, retries: 0 });
  await client.info();
  void proxy.cutConnectionAfter(2, 600 * KiB, 'down').then(() => (cut = true));
  const out = join(dir, 'copy.bin');
  const result = await client.download('big.bin', { out, streams: 3 });
  t.ok(cut, 'the second connection was cut');
  t.equal(result.sha256, local.sha256, 'verified end to end, in the same run (no retries)');
  t.equal(proxy.connections, 3, 'no reconnect: the others fetched what it had not');
  // The chunk it was receiving when cut is fetched again; the ones it landed (written, even after the cut) are not.
  t.equal(result.bytesReceived, local.bytes.length, 'every byte came once (what the cut one landed counts)');
  t.ok((await readFile(out)).equals(local.bytes), 'the same bytes');
});

t.test('upload --streams 3: three connections, one upload, the same bytes stored', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: 256 * KiB });
  const proxy = await startCutProxy(t, running.port);
  const dir = tempDir(t);
  const local = await makeFile(dir, 'big.bin', 5 * MiB + 1234);
  const run = await ferry(['upload', local.path, '--streams', '3', '--json', '--server', `127.0.0.1:${proxy.port}`]);
  const result = jsonOf<{ sha256: string; bytesSent: number; resumed: boolean }>(t, run);
  t.equal(result.sha256, local.sha256, 'verified end to end');
  t.equal(result.bytesSent, local.bytes.length, 'every byte sent once');
  t.equal(proxy.connections, 3, 'over three connections');
  t.ok(proxy.upstreamBytes > local.bytes.length, 'the bytes went through the proxy');
  const stored = await readFile(join(running.dataDir, 'files', 'big.bin'));
  t.ok(stored.equals(local.bytes), 'the stored file is the local one');
});

t.test('upload --streams: a joined connection cut mid-upload has its chunks sent again on the others', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: 256 * KiB });
  const proxy = await startCutProxy(t, running.port);
  const dir = tempDir(t);
  const local = await makeFile(dir, 'big.bin', 8 * MiB + 99);
  // Connection 1 is the upload's own (hello, put); 2 and 3 join it. Cut the second one part-way.
  let cut = false;
  void proxy.cutConnectionAfter(2, MiB + 1000).then(() => (cut = true));
  const client = running.client({ port: proxy.port, retries: 0 });
  const result = await client.upload(local.path, { name: 'big.bin', streams: 3 });
  t.ok(cut, 'the second connection was cut');
  t.equal(result.sha256, local.sha256, 'verified end to end, in the same attempt (no retries)');
  t.equal(result.resumed, false);
  t.equal(proxy.connections, 3, "no reconnect: the others carried the cut one's chunks");
  t.ok(result.bytesSent > local.bytes.length, `the cut connection's unconfirmed chunks went again (${result.bytesSent} bytes)`);
  t.ok(result.bytesSent < local.bytes.length + 4 * MiB, 'only those: not the whole file again');
  t.ok((await readFile(join(running.dataDir, 'files', 'big.bin'))).equals(local.bytes), 'the stored file is the local one');
});

t.test("upload --streams: the upload's own connection cut ends the attempt; the retry resumes", async (t) => {
  const running = await startServer(t, { chunkSizeBytes: 256 * KiB });
  const proxy = await startCutProxy(t, running.port);
  const dir = tempDir(t);
  const local = await makeFile(dir, 'big.bin', 6 * MiB);
  let cut = false;
  void proxy.cutConnectionAfter(1, 2 * MiB).then(() => (cut = true));
  const client = running.client({ port: proxy.port, retries: 3 });
  const result = await client.upload(local.path, { name: 'big.bin', streams: 2 });
  t.ok(cut, 'the first connection was cut');
  t.equal(result.sha256, local.sha256);
  t.ok(proxy.connections >= 3, 'a second attempt connected again');
  t.ok((await readFile(join(running.dataDir, 'files', 'big.bin'))).equals(local.bytes), 'the stored file is the local one');
});

t.test('--streams beyond what the server takes from one network: fewer streams, said once, and the file all the same', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: 256 * KiB, maxConnectionsPerAddress: 3 });
  const dir = tempDir(t);
  const local = await makeFile(dir, 'big.bin', 4 * MiB);
  const client = running.client();
  const notices: string[] = [];
  const up = await client.upload(local.path, { name: 'big.bin', streams: 6, onNotice: (text) => notices.push(text) });
  t.equal(up.sha256, local.sha256);
  t.same(notices, ['the server takes no more connections from this network: 3 streams instead of 6'], 'the upload says it');
  notices.length = 0;
  const out = join(dir, 'copy.bin');
  const down = await client.download('big.bin', { out, streams: 6, onNotice: (text) => notices.push(text) });
  t.equal(down.sha256, local.sha256);
  t.same(notices, ['the server takes no more connections from this network: 3 streams instead of 6'], 'and so does the download');
  t.ok((await readFile(out)).equals(local.bytes), 'the same bytes');
});

t.test('putJoin: only with the key, only by the same account, only while the upload takes chunks', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: 256 * KiB });
  await running.server.accounts.add('other', 'other-password');
  const bytes = randomBytes(600 * KiB);
  const owner = await RawClient.connect(t, running.port);
  await owner.hello();
  const put = await owner.call('put', { name: 'joined.bin', size: bytes.length, fingerprint: 'raw', joinable: true });
  t.match(put, { ok: true, result: { stream: 1, joinKey: /^[0-9a-f]{32}$/u } });
  const key = (put['result'] as { joinKey: string }).joinKey;

  const stranger = await RawClient.connect(t, running.port);
  await stranger.hello(true);
  t.match(await stranger.call('login', { user: 'other', password: 'other-password' }), { ok: true });
  t.match(await stranger.call('putJoin', { key }), { ok: false, code: 'ENOENT' }, "another account's connection cannot join");
  t.match(await stranger.call('putJoin', { key: 'f'.repeat(32) }), { ok: false, code: 'ENOENT' }, 'nor with a key of nothing');
  t.match(await stranger.call('putJoin', { key: 'not-a-key' }), { ok: false, code: 'EPROTO' });
  t.match(
    await stranger.call('put', { name: 'stream.bin', joinable: true }),
    { ok: false, code: 'EPROTO', message: /cannot take chunks from other connections/u },
    'an upload from a stream cannot be joined (nothing is claimed)',
  );
  t.match(
    await stranger.call('put', { name: 'stream.bin', size: 10, fingerprint: 'raw' }),
    { ok: true },
    'the name was not left held (a put of it goes on)',
  );

  const helper = await RawClient.connect(t, running.port);
  await helper.hello();
  const joined = await helper.call('putJoin', { key });
  t.match(joined, { ok: true, result: { stream: 1, chunkSize: 256 * KiB } });
  // Chunks 1 and 2 on the joined connection, chunk 0 on the upload's own; a ping behind them confirms they were taken.
  await helper.write([
    await chunkFrame(1, 256 * KiB, bytes.subarray(256 * KiB, 512 * KiB)),
    await chunkFrame(1, 512 * KiB, bytes.subarray(512 * KiB)),
  ]);
  t.match(await helper.call('ping'), { ok: true });
  await owner.write(await chunkFrame(1, 0, bytes.subarray(0, 256 * KiB)));
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  t.match(await owner.call('putEnd', { stream: 1, sha256 }), { ok: true, result: { name: 'joined.bin', sha256 } });
  t.ok((await readFile(join(running.dataDir, 'files', 'joined.bin'))).equals(bytes), 'stored whole');

  // The upload is done: its key joins nothing, and a late chunk on the joined stream is skipped, not a protocol error.
  t.match(await helper.call('putJoin', { key }), { ok: false, code: 'ENOENT' });
  await helper.write(await chunkFrame(1, 0, bytes.subarray(0, 256 * KiB)));
  t.match(await helper.call('ping'), { ok: true }, 'the joined connection goes on');
  t.ok((await readFile(join(running.dataDir, 'files', 'joined.bin'))).equals(bytes), 'the late chunk changed nothing');
});

t.test('--streams takes 1 to 16', async (t) => {
  const run = await ferry(['upload', 'x', '--streams', '17', '--server', '127.0.0.1:1']);
  t.equal(run.code, 2, describe(run));
  t.match(run.stderr, /--streams takes 1 to 16: 17/u);
});
