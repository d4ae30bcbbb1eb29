import { existsSync } from 'node:fs';
import { FerryError } from '../protocol/errors.js';
import type { DataLayout } from '../server/data-layout.js';
import type { MetaStore } from '../store/meta-store.js';

/** A data directory opened by an offline command (fsck, sessions) on the server's machine. */
export interface OpenedDataDir {
  layout: DataLayout;
  store: MetaStore;
  /** The live server holding the directory, if one does ("pid 123"). */
  servedBy: string | undefined;
  close(): Promise<void>;
}

/**
 * Opens the data directory at `path` without a server: read-only (fsck, a listing; a server may
 * run beside it), or for changes (`exclusive`: the directory's lock is taken, so no server runs
 * meanwhile; EBUSY naming the one that does). Loaded on demand: client commands never pay for it.
 */
export async function openDataDir(path: string, mode: { exclusive: boolean }): Promise<OpenedDataDir> {
  const [{ DataLayout }, { MetaStore }, { DataDirLock, servedBy }] = await Promise.all([
    import('../server/data-layout.js'),
    import('../store/meta-store.js'),
    import('../server/data-dir-lock.js'),
  ]);
  const layout = new DataLayout(path);
  for (const dir of [layout.filesDir, layout.partialDir, layout.dbDir]) {
    if (!existsSync(dir)) throw new FerryError('ENOENT', `${layout.root} is not a Ferry data directory (no ${dir})`);
  }
  const lock = mode.exclusive ? DataDirLock.acquire(layout.root) : undefined;
  try {
    const store = new MetaStore({ path: layout.dbDir, readOnly: !mode.exclusive });
    return {
      layout,
      store,
      servedBy: lock ? undefined : servedBy(layout.root),
      async close() {
        try {
          await store.close();
        } finally {
          lock?.release();
        }
      },
    };
  } catch (error) {
    lock?.release();
    throw error;
  }
}
