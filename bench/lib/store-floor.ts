import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { syncDirectory } from '../../src/server/sync-directory.js';
import { makeTempDir, removeDir } from './files.js';

/**
 * A floor for durable small-file uploads on this disk: the file-system work of storing `count`
 * copies of `sourcePath`, `concurrency` at a time, and nothing else (no network, no hashing, no
 * metadata). Each copy: write a new file, fdatasync it, close, rename it into place; the renames
 * are made durable by the server's own grouped directory fsync (`syncDirectory`). Returns files
 * per second.
 */
export async function durableStoreFloor(sourcePath: string, count: number, concurrency: number): Promise<number> {
  const bytes = await readFile(sourcePath);
  const base = await makeTempDir('disk', 'store-floor');
  const stored = join(base, 'files');
  const partial = join(base, 'partial');
  await mkdir(stored);
  await mkdir(partial);
  try {
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        for (let index = next++; index < count; index = next++) {
          const path = join(partial, String(index));
          const handle = await open(path, 'wx');
          try {
            await handle.write(bytes, 0, bytes.length, 0);
            await handle.datasync();
          } finally {
            await handle.close();
          }
          await rename(path, join(stored, String(index)));
          await syncDirectory(stored);
        }
      }),
    );
    return count / ((performance.now() - started) / 1000);
  } finally {
    await removeDir(base);
  }
}
