/**
 * Unfinished uploads are visible: `ferry list --partial` (bytes held, age), the count in `info`,
 * the `uploads` operation's pages; and a transfer that gives up says how to resume it.
 */
import t from 'tap';
import type { UploadSummary } from '../src/protocol/messages.js';
import { assertFailed, ferry, jsonOf } from './helpers/cli.js';
import { startCutProxy } from './helpers/cut-proxy.js';
import { makeFile } from './helpers/files.js';
import { startServer } from './helpers/server.js';
import { tempDir } from './helpers/temp-dir.js';

const KiB = 1024;
const MiB = 1024 * KiB;

t.test('an upload cut for good is listed with what the server holds of it, until it is finished', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: 64 * KiB });
  const proxy = await startCutProxy(t, running.port);
  const dir = tempDir(t);
  const big = await makeFile(dir, 'big.bin', 1 * MiB);
  const other = await makeFile(dir, 'another.bin', 512 * KiB);
  const direct = ['--server', `127.0.0.1:${running.port}`];
  const viaProxy = ['--server', `127.0.0.1:${proxy.port}`];

  const cut = proxy.cutAfter(300 * KiB, 'up');
  const failed = await ferry(['upload', big.path, '--retries', '0', ...viaProxy]);
  await cut;
  assertFailed(t, failed, 'ECONNLOST', 'ferry: connection to the server lost; gave up: run the same command again to resume (ECONNLOST)');
  const secondCut = proxy.cutAfter(100 * KiB, 'up');
  await ferry(['upload', other.path, '--retries', '0', ...viaProxy]);
  await secondCut;

  const listed = await ferry(['list', '--partial', ...direct]);
  t.equal(listed.code, 0, listed.stderr);
  t.match(
    listed.stdout,
    /^ *\d+ KiB of 512 KiB +\d+s ago {2}another\.bin\n *\d+ KiB of 1 MiB +\d+s ago {2}big\.bin\n$/u,
    'name order, bytes held, age',
  );
  const uploads = jsonOf<UploadSummary[]>(t, await ferry(['list', '--partial', '--json', ...direct]));
  t.same(
    uploads.map((upload) => [upload.name, upload.size]),
    [
      ['another.bin', 512 * KiB],
      ['big.bin', 1 * MiB],
    ],
  );
  const held = uploads[1]!;
  t.ok(held.received > 0 && held.received < 300 * KiB && held.received % (64 * KiB) === 0, `whole verified chunks: ${held.received}`);
  t.ok(Date.parse(held.touched) >= Date.parse(held.created), 'times');
  t.match((await ferry(['info', ...direct])).stdout, /^unfinished: +2 uploads \(ferry list --partial\)$/mu, 'info counts them');

  const client = running.client();
  const connection = await client.connection();
  const first = await connection.request('uploads', { limit: 1 });
  t.same(
    first.uploads.map((upload) => upload.name),
    ['another.bin'],
  );
  t.type(first.next, 'string', 'a next page');
  const second = await connection.request('uploads', { limit: 1, after: first.next! });
  t.same(
    second.uploads.map((upload) => upload.name),
    ['big.bin'],
  );
  t.equal(second.next, undefined, 'the last page');
  t.same((await connection.request('uploads', { prefix: 'big' })).uploads.length, 1, 'prefix');

  const resumed = await ferry(['upload', big.path, '--json', ...direct]);
  t.equal(jsonOf<{ resumed: boolean }>(t, resumed).resumed, true, 'the same command resumed it');
  t.match((await ferry(['list', '--partial', 'big', ...direct])).stdout, /^\(no unfinished uploads\)\n$/u, 'and it is no longer listed');
  t.match((await ferry(['info', ...direct])).stdout, /^unfinished: +1 upload \(ferry list --partial\)$/mu);
});
