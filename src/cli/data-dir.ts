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
 * run beside it), for changes beside a running server (`writable`: what LMDB alone keeps safe,
 * such as accounts; `create` makes a directory that does not exist yet), or for changes no server
 * may see happen (`exclusive`: the directory's lock is taken; EBUSY naming the server that holds
 * it). Loaded on demand: client commands never pay for it.
 */
export async function openDataDir(
  path: string,
  mode: { exclusive: boolean; writable?: boolean; create?: boolean },
): Promise<OpenedDataDir> {
  const [{ DataLayout }, { MetaStore }, { DataDirLock, servedBy }] = await Promise.all([
    import('../server/data-layout.js'),
    import('../store/meta-store.js'),
    import('../server/data-dir-lock.js'),
  ]);
  const layout = new DataLayout(path);
  if (mode.create) layout.create();
  for (const dir of [layout.filesDir, layout.partialDir, layout.dbDir]) {
    if (!existsSync(dir)) throw new FerryError('ENOENT', `${layout.root} is not a Ferry data directory (no ${dir})`);
  }
  const lock = mode.exclusive ? DataDirLock.acquire(layout.root) : undefined;
  try {
    const store = new MetaStore({ path: layout.dbDir, readOnly: !mode.exclusive && !mode.writable });
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
