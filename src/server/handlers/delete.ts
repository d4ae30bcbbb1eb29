import { FerryError } from '../../protocol/errors.js';
import { accountOf } from '../account-view.js';
import type { ScopedHandler } from './types.js';

// The record goes first, then the bytes: a crash in between leaves an orphan file (reclaimed by
// recovery), never a listed file without its bytes. No publish of the name runs meanwhile. On a
// shared store the record is brought up to date inside the same exclusive section: one read
// before it could see a manifest that an earlier delete then removed, and answer ok twice.
export const deleteFile: ScopedHandler<'delete'> = async (request, ctx) => {
  const name = accountOf(ctx).stored(request.name);
  const { store, layout, uploads, bytes, catalog } = ctx.services;
  const started = Date.now();
  const removed = await uploads.exclusive(name, async () => {
    await catalog?.refreshOne(name);
    // On disk, a symbolic link on the way to the file is refused before anything is removed.
    if (!catalog) layout.safeFilePath(name);
    const record = await store.deleteFile(name);
    if (!record) throw new FerryError('ENOENT', `${request.name}: not found on the server`);
    uploads.storedChanged(name, record.size, 0);
    await bytes.removeFile(name);
    return record;
  });
  // Written with the next batch of log entries (MetaStore.appendLog): a `log` request waits for it, the reply does not.
  void ctx.logTransfer({ time: Date.now(), op: 'delete', name, bytes: removed.size, durationMs: Date.now() - started, result: 'ok' });
  return { result: { name: request.name } };
};
