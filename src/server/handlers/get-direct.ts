import { FerryError } from '../../protocol/errors.js';
import { maxHashesPageEntries } from '../../protocol/limits.js';
import { chunkCountOf } from '../../store/records.js';
import { accountOf } from '../account-view.js';
import { withFreshRecords } from './fresh-records.js';
import { servableFile } from './get.js';
import { chunkHashesOf } from './hashes.js';
import { storedFile } from './stat.js';
import type { Handler } from './types.js';

/**
 * Where the client reads a stored file from the object store itself (capability `get-direct`):
 * the file as `get` describes it, a URL signed for its object, the ETag of the version the record
 * describes, and the xxh64 of a window of its chunks from `fromChunk`. The bytes never pass
 * through this server; the client checks each chunk and the SHA-256 as it does for `get`.
 */
export const getDirect: Handler<'getDirect'> = async (request, ctx) => {
  const directReads = ctx.services.bytes.directReads;
  if (!directReads) throw new FerryError('ECONFIG', 'this server offers no direct reads from its store: use get');
  const file = await withFreshRecords(
    ctx,
    (catalog) => catalog.refreshOne(accountOf(ctx).stored(request.name)),
    () => servableFile(ctx, request.name, request.sha256),
  );
  const chunkCount = chunkCountOf(file.size, file.chunkSize);
  const fromChunk = request.fromChunk ?? 0;
  if (fromChunk > chunkCount) throw new FerryError('EPROTO', `fromChunk ${fromChunk} is past the last chunk (${chunkCount})`);
  const toChunk = Math.min(chunkCount, fromChunk + maxHashesPageEntries);
  const hashes = chunkHashesOf(file, fromChunk, toChunk);
  const where = await directReads.locate(file);
  const { size, sha256, chunkSize } = file;
  const name = accountOf(ctx).shown(file.name);
  return { result: { name, size, sha256, chunkSize, chunkCount, fromChunk, toChunk, ...where, hashes } };
};

/**
 * A client's word on how its direct download ended: the server saw none of it, so this is what its
 * transfer log records (marked direct). Only where direct reads are offered: elsewhere no client
 * has a direct download to report.
 */
export const getDirectEnd: Handler<'getDirectEnd'> = async (request, ctx) => {
  if (!ctx.services.bytes.directReads) throw new FerryError('ECONFIG', 'this server offers no direct reads from its store');
  // Only of the content stored now, and never more bytes than it has: the log holds no download of a file that is not there.
  const file = await withFreshRecords(
    ctx,
    (catalog) => catalog.refreshOne(accountOf(ctx).stored(request.name)),
    () => storedFile(ctx, request.name),
  );
  if (file.sha256 !== request.sha256) throw new FerryError('ECHANGED', `${file.name} is no longer the content reported on`);
  if (request.bytes > file.size) throw new FerryError('EPROTO', `${request.bytes} bytes reported of a file of ${file.size}`);
  const { bytes, durationMs, result } = request;
  // Written with the next batch of log entries (MetaStore.appendLog): a `log` request waits for it, the reply does not.
  void ctx.logTransfer({ time: Date.now(), op: 'download', name: file.name, bytes, durationMs, result, direct: true });
  return { result: {} };
};
