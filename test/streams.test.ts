/**
 * Parallel streams (issue 16): `download --streams N` fetches one file over N connections, each a
 * range of its chunks, verified chunk by chunk and by SHA-256 at the end; a cut one resumes.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { splitChunks } from '../src/client/parallel-download.js';
import { describe, ferry, jsonOf } from './helpers/cli.js';
import { startCutProxy } from './helpers/cut-proxy.js';
import { makeFile } from './helpers/files.js';
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
  // What resumes is the verified start of the part: chunks the other streams landed past a gap are fetched again.
  t.match(again.stderr, /^\S+cut\.bin\.ferry-part: kept the [\d.]+ \w+ that match the server's big\.bin, discarded /u);
  const second = JSON.parse(again.stdout) as { sha256: string; bytesReceived: number; resumed: boolean };
  t.equal(second.sha256, local.sha256);
  t.equal(second.resumed, true, 'resumed');
  t.ok(
    second.bytesReceived < local.bytes.length,
    `only what was missing from the verified start was fetched (${second.bytesReceived} bytes)`,
  );
  t.ok((await readFile(cut)).equals(local.bytes), 'the same bytes');
});

t.test('upload --streams is not built yet, and says so', async (t) => {
  const running = await startServer(t);
  const dir = tempDir(t);
  const local = await makeFile(dir, 'a.bin', 1000);
  const run = await ferry(['upload', local.path, '--streams', '2', '--server', `127.0.0.1:${running.port}`]);
  t.equal(run.code, 1);
  t.match(run.stderr, /parallel streams \(--streams\) are not built for uploads yet: downloads only \(ENOTYET\)/u);
});
