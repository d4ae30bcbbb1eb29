import t from 'tap';
import { foldName } from '../src/protocol/names.js';
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
  await store.recordChunks(upload, [
    [0, 11n],
    [2, 2n ** 64n - 1n],
  ]);
  await store.saveSession(session('other.bin', 's2'));
  await store.recordChunks(session('other.bin', 's2'), [[0, 99n]]);
  await store.close();

  const reopened = new MetaStore({ path });
  t.teardown(() => reopened.close());
  t.match(reopened.session('x.bin'), { id: 's1', size: 10 });
  t.same(
    [...reopened.verifiedChunks('s1')],
    [
      [0, 11n],
      [2, 2n ** 64n - 1n],
    ],
    'chunk hashes, full 64 bits',
  );
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
  t.same(
    store.listFiles({ limit: 10 }).map((f) => f.name),
    ['a', 'b/1', 'b/2', 'c'],
  );
  t.same(
    store.listFiles({ prefix: 'b/', limit: 10 }).map((f) => f.name),
    ['b/1', 'b/2'],
  );
  t.same(
    store.listFiles({ after: 'b/1', limit: 2 }).map((f) => f.name),
    ['b/2', 'c'],
  );
  t.same(
    store.listFiles({ prefix: 'b/', after: 'b/1', limit: 10 }).map((f) => f.name),
    ['b/2'],
  );
});

t.test('holdsFilesUnder tells whether any stored name starts with a prefix', async (t) => {
  const store = new MetaStore({ path: tempDir(t) });
  t.teardown(() => store.close());
  for (const name of ['a', 'b/1', 'b0', 'c/d/e']) await store.commitFile(file(name, 1));
  t.ok(store.holdsFilesUnder('b/'), 'b/1 is under b/');
  t.ok(store.holdsFilesUnder('c/'), 'deeper names count');
  t.ok(store.holdsFilesUnder('c/d/'));
  t.notOk(store.holdsFilesUnder('a/'), 'a is a file, not a folder: the next name (b/1) is not under it');
  t.notOk(store.holdsFilesUnder('b0/'), 'a name that only starts the same (b0) is not a folder');
  t.notOk(store.holdsFilesUnder('z/'), 'past the last name');
});

t.test('the transfer log keeps what is younger than its retention, newest first, and at most its cap', async (t) => {
  const minute = 60_000;
  const now = Date.now();
  const store = new MetaStore({ path: tempDir(t), logRetentionMs: 60 * minute, maxLogEntries: 1000 });
  t.teardown(() => store.close());
  // One entry a minute over the last 150 minutes: the oldest 90 are past the hour's retention.
  for (let index = 0; index < 150; index += 1) {
    await store.appendLog({
      time: now - (150 - index) * minute + minute / 2,
      client: 'c',
      op: 'upload',
      name: `f${index}`,
      bytes: index,
      durationMs: 1,
      result: 'ok',
    });
  }
  const recent = store.recentLog(1000);
  t.ok(recent.length < 150, `entries past the retention are pruned as the log grows (${recent.length} left)`);
  await store.pruneLog(now);
  t.same(
    store.recentLog(1000).map((entry) => entry.name),
    Array.from({ length: 60 }, (_, index) => `f${149 - index}`),
    'exactly the last hour is kept, newest first',
  );

  const capped = new MetaStore({ path: tempDir(t), logRetentionMs: 60 * minute, maxLogEntries: 25 });
  t.teardown(() => capped.close());
  for (let index = 0; index < 40; index += 1) {
    await capped.appendLog({
      time: now - (40 - index),
      client: 'c',
      op: 'delete',
      name: `g${index}`,
      bytes: 0,
      durationMs: 1,
      result: 'ok',
    });
  }
  await capped.pruneLog(now);
  t.same(
    capped.recentLog(3).map((entry) => entry.name),
    ['g39', 'g38', 'g37'],
  );
  t.equal(capped.recentLog(1000).length, 25, 'at most maxLogEntries, whatever their age');
});

t.test(
  'log entries appended together are written together: each resolves once written, and logCommitted and close write those waiting',
  async (t) => {
    const path = tempDir(t);
    const store = new MetaStore({ path });
    const now = Date.now();
    const entry = (index: number): Parameters<MetaStore['appendLog']>[0] => ({
      time: now + index,
      client: 'c',
      op: 'download',
      name: `e${index}`,
      bytes: index,
      durationMs: 1,
      result: 'ok',
    });
    // More than one batch's worth, as downloads ending about together append them (none awaited alone).
    const appended = Array.from({ length: 600 }, (_, index) => store.appendLog(entry(index)));
    t.same(await Promise.all(appended), Array(600).fill(true), 'each resolves true once written');
    t.same(
      store.recentLog(3).map((each) => each.name),
      ['e599', 'e598', 'e597'],
    );
    t.equal(store.recentLog(1000).length, 600, 'none lost');
    void store.appendLog(entry(600));
    await store.logCommitted();
    t.equal(store.recentLog(1)[0]?.name, 'e600', 'logCommitted writes what waits: a `log` request sees the download that just ended');
    void store.appendLog(entry(601));
    await store.close();
    t.equal(await store.appendLog(entry(602)), false, 'after close, an entry is refused (a download that ends as the server stops)');
    const reopened = new MetaStore({ path });
    t.teardown(() => reopened.close());
    t.equal(reopened.recentLog(1)[0]?.name, 'e601', 'close writes what waits');
  },
);

t.test('the folded-name index holds the longest names, also ones case folding makes longer than an LMDB key', async (t) => {
  const store = new MetaStore({ path: tempDir(t) });
  t.teardown(() => store.close());
  const ascii = ['A'.repeat(250), 'B'.repeat(250), 'C'.repeat(250), 'D'.repeat(250)].join('/'); // 1003 bytes
  const growing = Array.from({ length: 4 }, () => 'ΐ'.repeat(120)).join('/'); // 963 bytes; upper case makes each ΐ three code points
  t.ok(Buffer.byteLength(foldName(growing)) > 1978, 'its folded form is longer than any LMDB key');
  for (const name of [ascii, growing, 'a', 'A']) await store.commitFile(file(name, 1));
  t.same(store.namesFolding(foldName(ascii)), [ascii]);
  t.same(store.namesFolding(foldName(growing)), [growing]);
  t.same(store.namesFolding(foldName('a')).sort(), ['A', 'a'], 'names that fold alike are all kept');
  t.same(store.namesFolding(foldName('A'.repeat(250) + '/'), true), [ascii], 'and found under a folded folder');
  await store.deleteFile('A');
  t.same(store.namesFolding(foldName('a')), ['a'], 'a deleted name leaves the index');
});
