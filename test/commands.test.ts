import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { makeFile, sha256Of } from './helpers/files.js';
import { startServer } from './helpers/server.js';
import { tempDir } from './helpers/temp-dir.js';

const chunkSizeBytes = 64 * 1024;

t.test('every command against one server, and their errors', async (t) => {
  const running = await startServer(t, { chunkSizeBytes, inflightBudgetBytes: 16 * chunkSizeBytes });
  const ferry = running.client();
  const dir = tempDir(t);

  t.test('info describes the server', async (t) => {
    const info = await ferry.info();
    t.match(info, { protocolVersion: 2, chunkSize: chunkSizeBytes, files: 0, bytes: 0, workers: 2 });
    t.match(info.version, /^\d+\.\d+\.\d+/u);
    t.ok(info.clients >= 1, 'counts this client');
    t.ok(info.uptimeSeconds >= 0);
    t.ok(info.capabilities.includes('resume'));
  });

  t.test('list, stat, upload under unicode and nested names', async (t) => {
    t.same(await ferry.list(), [], 'empty at first');
    const names = ['résumé/日本語.txt', 'emoji 🚀.bin', 'a/b/c/deep.bin'];
    const sums = new Map<string, string>();
    for (const [index, name] of names.entries()) {
      const local = await makeFile(dir, `u${index}`, 1000 * (index + 1) + 7);
      const result = await ferry.upload(local.path, { name });
      t.equal(result.name, name);
      sums.set(name, local.sha256);
    }
    const listed = await ferry.list();
    t.same(
      listed.map((file) => file.name),
      [...names].sort(),
      'listed in name order',
    );
    for (const file of listed) {
      t.equal(file.sha256, sums.get(file.name));
      t.ok(!Number.isNaN(Date.parse(file.modified)), 'modified is an ISO time');
    }
    t.same(
      (await ferry.list('a/')).map((file) => file.name),
      ['a/b/c/deep.bin'],
      'prefix filter',
    );
    const info = await ferry.stat('a/b/c/deep.bin');
    t.match(info, { name: 'a/b/c/deep.bin', size: 3007, chunkSize: chunkSizeBytes, chunkCount: 1, sha256: sums.get('a/b/c/deep.bin') });
    t.equal(
      await sha256Of(join(running.dataDir, 'files', 'a', 'b', 'c', 'deep.bin')),
      sums.get('a/b/c/deep.bin'),
      'stored under files/ by name',
    );
    t.match(await ferry.info(), { files: 3 });
  });

  t.test('upload refuses an existing name unless forced, and never mixes contents', async (t) => {
    const first = await makeFile(dir, 'first', 3 * chunkSizeBytes + 1);
    const second = await makeFile(dir, 'second', chunkSizeBytes + 5);
    await ferry.upload(first.path, { name: 'same.bin' });
    await t.rejects(ferry.upload(second.path, { name: 'same.bin' }), { code: 'EEXIST' });
    t.equal((await ferry.stat('same.bin')).sha256, first.sha256, 'the refused upload changed nothing');
    const replaced = await ferry.upload(second.path, { name: 'same.bin', force: true });
    t.equal(replaced.sha256, second.sha256);
    t.match(await ferry.stat('same.bin'), { sha256: second.sha256, size: chunkSizeBytes + 5 });
  });

  t.test('a name is a file or a folder, not both', async (t) => {
    const local = await makeFile(dir, 'clash', 10);
    await ferry.upload(local.path, { name: 'clash/inner.bin' });
    await t.rejects(ferry.upload(local.path, { name: 'clash' }), { code: 'EEXIST' }, 'a folder of stored files');
    await t.rejects(ferry.upload(local.path, { name: 'clash/inner.bin/deeper' }), { code: 'EEXIST' }, 'below a file');
  });

  t.test('stat, delete and download of a missing name: ENOENT', async (t) => {
    await t.rejects(ferry.stat('nope.bin'), { code: 'ENOENT', message: 'nope.bin: not found on the server' });
    await t.rejects(ferry.delete('nope.bin'), { code: 'ENOENT' });
    await t.rejects(ferry.download('nope.bin', { out: join(dir, 'nope.bin') }), { code: 'ENOENT' });
    await t.rejects(stat(join(dir, 'nope.bin')), { code: 'ENOENT' }, 'no local file appears');
  });

  t.test('bad names are refused before anything is written', async (t) => {
    const local = await makeFile(dir, 'bad', 10);
    for (const name of ['../escape.bin', '/abs.bin', 'a/../b', 'a//b', 'x/', '.', 'ctl\u0001.bin', '']) {
      await t.rejects(ferry.upload(local.path, { name }), { code: 'EBADNAME' }, `upload ${JSON.stringify(name)}`);
      await t.rejects(ferry.stat(name), { code: 'EBADNAME' }, `stat ${JSON.stringify(name)}`);
    }
    await t.rejects(stat(join(running.dataDir, '..', 'escape.bin')), { code: 'ENOENT' }, 'nothing outside the data dir');
  });

  t.test('delete removes the file, its listing and its bytes', async (t) => {
    const local = await makeFile(dir, 'gone', 2 * chunkSizeBytes);
    await ferry.upload(local.path, { name: 'gone.bin' });
    await ferry.delete('gone.bin');
    await t.rejects(ferry.stat('gone.bin'), { code: 'ENOENT' });
    t.notOk((await ferry.list()).some((file) => file.name === 'gone.bin'));
    await t.rejects(stat(join(running.dataDir, 'files', 'gone.bin')), { code: 'ENOENT' });
  });

  t.test('download refuses to overwrite a local file unless forced', async (t) => {
    const local = await makeFile(dir, 'src', chunkSizeBytes * 2 + 3);
    await ferry.upload(local.path, { name: 'keep.bin' });
    const out = join(dir, 'existing.bin');
    await writeFile(out, 'precious');
    await t.rejects(ferry.download('keep.bin', { out }), { code: 'EEXIST' });
    t.equal(await readFile(out, 'utf8'), 'precious', 'the local file is untouched');
    const result = await ferry.download('keep.bin', { out, force: true });
    t.equal(result.sha256, local.sha256);
    t.equal(await sha256Of(out), local.sha256);
  });

  t.test('log records uploads, downloads and deletes, newest first', async (t) => {
    const entries = await ferry.log(100);
    const ops = entries.map((entry) => `${entry.op} ${entry.name} ${entry.result}`);
    t.ok(ops.includes('delete gone.bin ok'));
    t.ok(ops.includes('download keep.bin ok'));
    t.ok(ops.includes('upload keep.bin ok'));
    const times = entries.map((entry) => Date.parse(entry.time));
    t.same(
      times,
      [...times].sort((a, b) => b - a),
      'newest first',
    );
    t.match(entries[0], { client: /^127\.0\.0\.1:\d+$/u });
    t.equal((await ferry.log(2)).length, 2, 'limit');
  });

  t.test('list pages through more files than one reply holds', async (t) => {
    const connection = await ferry.connection();
    const page = await connection.request('list', { prefix: 'résumé', limit: 1 });
    t.equal(page.files.length, 1);
    t.equal(page.next, undefined, 'one match, no next page');
    const all = await connection.request('list', { limit: 2 });
    t.equal(all.files.length, 2);
    t.type(all.next, 'string', 'a next page');
    const rest = await connection.request('list', { after: all.next!, limit: 1000 });
    t.same(
      [...all.files, ...rest.files].map((file) => file.name),
      (await ferry.list()).map((file) => file.name),
    );
  });
});
