/**
 * The client's hash cache (src/client/hash-cache.ts): what a tree transfer remembers of local
 * files' SHA-256 is found again, within the run (before any commit) and by the next run (after
 * the cache is closed), however many entries one run gathers; an entry whose file changed is
 * dropped, committed or not. Real LMDB in a temporary directory.
 */
import { stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { HashCache } from '../src/client/hash-cache.js';
import { tempDir } from './helpers/temp-dir.js';

const sha256Of = (index: number): string => index.toString(16).padStart(64, '0');

t.test('entries are found at once, and by the next process once the cache is closed, however many', async (t) => {
  const dir = tempDir(t, 'ferry-cache');
  const files = tempDir(t, 'ferry-files');
  const path = join(files, 'a.bin');
  await writeFile(path, 'some bytes');
  const stats = await stat(path);
  // More entries than one commit takes: some are written while the run goes on, the rest at close.
  const count = 2_500;
  const pathOf = (index: number): string => join(files, `copy-${index}.bin`);

  const first = HashCache.open(dir);
  for (let index = 0; index < count; index += 1) first.set(pathOf(index), stats, sha256Of(index));
  t.equal(first.get(pathOf(count - 1), stats), sha256Of(count - 1), 'the last entry, not yet committed, is found');
  t.equal(first.get(pathOf(0), stats), sha256Of(0), 'the first one too');
  await first.close();

  const next = HashCache.open(dir);
  t.teardown(() => next.close());
  const found = Array.from({ length: count }, (_, index) => next.get(pathOf(index), stats));
  t.equal(found.filter((sha256, index) => sha256 === sha256Of(index)).length, count, 'every entry is there after a reopen');
});

t.test('an entry whose file changed is dropped, whether it was committed or not', async (t) => {
  const dir = tempDir(t, 'ferry-cache');
  const files = tempDir(t, 'ferry-files');
  const committedPath = join(files, 'committed.bin');
  const pendingPath = join(files, 'pending.bin');
  await writeFile(committedPath, 'first');
  await writeFile(pendingPath, 'second');
  const committedStats = await stat(committedPath);
  const pendingStats = await stat(pendingPath);

  const first = HashCache.open(dir);
  first.set(committedPath, committedStats, sha256Of(1));
  await first.close();

  const second = HashCache.open(dir);
  second.set(pendingPath, pendingStats, sha256Of(2));
  const later = new Date('2030-01-01T00:00:00Z');
  await utimes(committedPath, later, later);
  await utimes(pendingPath, later, later);
  t.equal(second.get(committedPath, await stat(committedPath)), undefined, 'a committed entry of a changed file is not used');
  t.equal(second.get(pendingPath, await stat(pendingPath)), undefined, 'nor a pending one');
  t.equal(second.get(pendingPath, pendingStats), undefined, 'the pending one is gone, not kept for the old stats');
  await second.close();

  const third = HashCache.open(dir);
  t.teardown(() => third.close());
  t.equal(third.get(committedPath, committedStats), undefined, 'the committed one was removed');
  t.equal(third.get(pendingPath, pendingStats), undefined, 'the pending one never written');
});
