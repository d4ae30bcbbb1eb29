import { FerryError } from '../../protocol/errors.js';
import { xxh64ToHex } from '../../protocol/frames.js';
import { type StoredFile, chunkCountOf, hashAt } from '../../store/records.js';
import { accountOf } from '../account-view.js';
import { withFreshRecords } from './fresh-records.js';
import { storedFile } from './stat.js';
import type { Handler } from './types.js';

/** The recorded xxh64 (hex) of a stored file's chunks [from, end). */
export function chunkHashesOf(file: StoredFile, from: number, end: number): string[] {
  const page: string[] = [];
  for (let index = from; index < end; index += 1) page.push(xxh64ToHex(hashAt(file.hashes, index)));
  return page;
}

/** A page of chunk hashes: of a stored file (by name) or of this connection's upload (by stream). */
export const hashes: Handler<'hashes'> = (request, ctx) => {
  const { from, count } = request;
  if ((request.name === undefined) === (request.stream === undefined)) {
    throw new FerryError('EPROTO', 'hashes takes exactly one of name and stream');
  }
  if (request.name !== undefined) {
    const name = request.name;
    return withFreshRecords(
      ctx,
      (catalog) => catalog.refreshOne(accountOf(ctx).stored(name)),
      () => {
        const file = storedFile(ctx, name);
        return { result: { from, hashes: chunkHashesOf(file, from, Math.min(from + count, chunkCountOf(file.size, file.chunkSize))) } };
      },
    );
  }
  const upload = ctx.upload(request.stream!);
  if (!upload) throw new FerryError('ENOENT', `no upload on stream ${request.stream}`);
  const end = Math.min(from + count, upload.chunkCount);
  const page: (string | null)[] = [];
  for (let index = from; index < end; index += 1) {
    const xxh64 = upload.verified.get(index);
    page.push(xxh64 === undefined ? null : xxh64ToHex(xxh64));
  }
  return { result: { from, hashes: page } };
};
