import { pbkdf2, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { PartFile } from '../src/client/part-file.js';
import { tempDir } from './helpers/temp-dir.js';

t.test('close waits for the writes and syncs under way, as a FileHandle does', async (t) => {
  const path = join(tempDir(t), 'x.ferry-part');
  const part = PartFile.create(path)!;
  t.ok(part, 'made');
  t.equal(PartFile.create(path), undefined, 'a second create finds it there');
  // Large enough to go through the thread pool, and queued there behind work that keeps its four
  // threads busy: certainly still under way when close is called.
  const poolBusy = Array.from({ length: 4 }, () => promisify(pbkdf2)('p', 's', 200_000, 32, 'sha256'));
  const big = randomBytes(3 * 1024 * 1024);
  const small = randomBytes(1000);
  const writes = [part.write(big, 0), part.write(small, big.length)];
  const synced = part.datasync();
  const closed = part.close();
  await Promise.all([...writes, synced, closed, ...poolBusy]);
  t.same(await readFile(path), Buffer.concat([big, small]), 'every write landed before the descriptor was closed');
  t.equal(part.close(), closed, 'closing again is the same close');
  await t.rejects(part.write(small, 0), { code: 'EBADF' }, 'a write after close is refused, not sent to whatever reuses the descriptor');
  t.throws(() => part.size(), { code: 'EBADF' });
});

t.test('open keeps (r+) or empties (w+) what is there; size and truncate', async (t) => {
  const path = join(tempDir(t), 'y.ferry-part');
  const first = PartFile.create(path)!;
  await first.write(Buffer.from('hello world'), 0);
  await first.close();
  const kept = PartFile.open(path, 'r+');
  t.equal(kept.size(), 11);
  await kept.truncate(5);
  const buffer = Buffer.alloc(5);
  t.same(await kept.read(buffer, 0, 5, 0), { bytesRead: 5 });
  t.equal(buffer.toString(), 'hello');
  await kept.close();
  const emptied = PartFile.open(path, 'w+');
  t.equal(emptied.size(), 0);
  await emptied.close();
});
