import { FerryError } from '../../protocol/errors.js';
import type { FileRecord, StoredFile } from '../../store/records.js';
import { accountOf } from '../account-view.js';
import type { RequestScope } from '../request-context.js';
import { fileInfo } from './file-info.js';
import { withFreshRecords } from './fresh-records.js';
import type { ScopedHandler } from './types.js';

/** The record of the stored file the account calls `name` (without its chunk hashes), or ENOENT. */
export function storedFileRecord(ctx: RequestScope, name: string): FileRecord {
  const file = ctx.services.store.fileRecord(accountOf(ctx).stored(name));
  if (!file) throw new FerryError('ENOENT', `${name}: not found on the server`);
  return file;
}

/** The stored file the account calls `name`, with its chunk hashes, or ENOENT. */
export function storedFile(ctx: RequestScope, name: string): StoredFile {
  const file = ctx.services.store.file(accountOf(ctx).stored(name));
  if (!file) throw new FerryError('ENOENT', `${name}: not found on the server`);
  return file;
}

export const stat: ScopedHandler<'stat'> = (request, ctx) =>
  withFreshRecords(
    ctx,
    (catalog) => catalog.refreshOne(accountOf(ctx).stored(request.name)),
    () => ({ result: fileInfo(storedFileRecord(ctx, request.name), accountOf(ctx)) }),
  );
