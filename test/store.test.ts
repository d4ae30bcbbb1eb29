import t from 'tap';
import { MetaStore } from '../src/store/meta-store.js';
import { type StoredFile, type UploadSessionRecord, hashAt, packHashes } from '../src/store/records.js';
import { tempDir } from './helpers/temp-dir.js';

function session(name: string, id: string): UploadSessionRecord {
  return { id, name, size: 10, fingerprint: 'fp', chunkSize: 4, created: 1, touched: 1 };
}

function file(name: string, size: number): StoredFile {
  return { name, size, sha256: 'a'.repeat(64), chunkSize: 4, hashes: packHashes([1n, 2n ** 64n - 1n]), created: 1, modified: 2 };
}

t.test('sessions, verified chunks and files survive a reopen (real LMDB)', async (t) => {
  const path = tempDir(t);
  const store = new MetaStore({ path });
  const upload = session('x.bin', 's1');
  await store.saveSession(upload);
  await store.recordChunks(upload, [[0, 11n], [2, 2n ** 64n - 1n]]);
  await store.saveSession(session('other.bin', 's2'));
  await store.recordChunks(session('other.bin', 's2'), [[0, 99n]]);
  await store.close();

  const reopened = new MetaStore({ path });
  t.teardown(() => reopened.close());
  t.match(reopened.session('x.bin'), { id: 's1', size: 10 });
  t.same([...reopened.verifiedChunks('s1')], [[0, 11n], [2, 2n ** 64n - 1n]], 'chunk hashes, full 64 bits');
  t.same([...reopened.verifiedChunks('s2')], [[0, 99n]], 'sessions do not see each other');

  await reopened.commitFile(file('x.bin', 8), upload);
  t.equal(reopened.session('x.bin'), undefined, 'committing a file forgets its session');
  t.equal(reopened.verifiedChunks('s1').size, 0, '... and its chunk records');
  t.equal(reopened.verifiedChunks('s2').size, 1, '... and no other session');
  const stored = reopened.file('x.bin')!;
  t.equal(hashAt(stored.hashes, 1), 2n ** 64n - 1n);
  t.same(reopened.stats(), { files: 1, bytes: 8 });
  await reopened.commitFile(file('x.bin', 20));
  t.same(reopened.stats(), { files: 1, bytes: 20 }, 'replacing counts the new size once');
  t.match(await reopened.deleteFile('x.bin'), { size: 20 });
  t.equal(await reopened.deleteFile('x.bin'), undefined);
  t.same(reopened.stats(), { files: 0, bytes: 0 });
});

t.test('listFiles pages by name and prefix', async (t) => {
  const store = new MetaStore({ path: tempDir(t) });
  t.teardown(() => store.close());
  for (const name of ['b/2', 'a', 'b/1', 'c']) await store.commitFile(file(name, 1));
  t.same(store.listFiles({ limit: 10 }).map((f) => f.name), ['a', 'b/1', 'b/2', 'c']);
  t.same(store.listFiles({ prefix: 'b/', limit: 10 }).map((f) => f.name), ['b/1', 'b/2']);
  t.same(store.listFiles({ after: 'b/1', limit: 2 }).map((f) => f.name), ['b/2', 'c']);
  t.same(store.listFiles({ prefix: 'b/', after: 'b/1', limit: 10 }).map((f) => f.name), ['b/2']);
});

t.test('the transfer log keeps the newest entries, newest first', async (t) => {
  const store = new MetaStore({ path: tempDir(t), maxLogEntries: 150 });
  t.teardown(() => store.close());
  for (let index = 0; index < 300; index += 1) {
    await store.appendLog({ time: 1000 + index, client: 'c', op: 'upload', name: `f${index}`, bytes: index, durationMs: 1, result: 'ok' });
  }
  const recent = store.recentLog(1000);
  t.ok(recent.length <= 250 && recent.length >= 150, `pruned to about the limit (${recent.length})`);
  t.equal(recent[0]?.name, 'f299', 'newest first');
  t.same(store.recentLog(3).map((entry) => entry.name), ['f299', 'f298', 'f297']);
});
