import { closeSync, fdatasync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmdirSync, writeSync } from 'node:fs';
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { performance } from 'node:perf_hooks';
import { syncDirectory } from '../../src/server/sync-directory.js';
import { makeTempDir, removeDir } from './files.js';

const fdatasyncOf = promisify(fdatasync);

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

/**
 * A floor for a tree's durable transfer on this disk: copies the tree at `from` to `to` (a new
 * folder) with `concurrency` files at a time, as any receiver that makes each file durable must:
 * the folders made first, then per file a staging file created, written, fdatasynced and closed,
 * renamed into its folder, and that folder fsynced (shared by the renames waiting on it, as the
 * server's `syncDirectory` does). No network, no hashing, no metadata: what a tree transfer pays
 * the file system alone. Blocking calls but for the syncs, as Ferry's own fast paths. Returns its
 * wall and CPU seconds (this process's).
 */
export async function durableTreeCopy(from: string, to: string, concurrency: number): Promise<{ seconds: number; cpuSeconds: number }> {
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const files: string[] = [];
  const folders: string[] = [];
  const walk = (relative: string): void => {
    for (const entry of readdirSync(join(from, relative), { withFileTypes: true })) {
      const path = join(relative, entry.name);
      if (entry.isDirectory()) {
        folders.push(path);
        walk(path);
      } else if (entry.isFile()) files.push(path);
    }
  };
  walk('');
  const staging = join(to, '.staging');
  mkdirSync(staging, { recursive: true });
  for (const folder of folders) mkdirSync(join(to, folder), { recursive: true });
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let index = next++; index < files.length; index = next++) {
        const file = files[index]!;
        const bytes = readFileSync(join(from, file));
        const staged = join(staging, String(index));
        const fd = openSync(staged, 'wx');
        try {
          writeSync(fd, bytes);
          await fdatasyncOf(fd);
        } finally {
          closeSync(fd);
        }
        renameSync(staged, join(to, file));
        await syncDirectory(dirname(join(to, file)));
      }
    }),
  );
  rmdirSync(staging);
  const cpu = process.cpuUsage(cpuBefore);
  return { seconds: (performance.now() - started) / 1000, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
}
