import { FerryError } from '../../protocol/errors.js';
import { maxListPageEntries } from '../../protocol/limits.js';
import { maxNameBytes } from '../../protocol/names.js';
import { fileSummary } from './file-info.js';
import type { Handler } from './types.js';

export const list: Handler<'list'> = (request, ctx) => {
  for (const bound of [request.prefix, request.after]) {
    if (bound !== undefined && Buffer.byteLength(bound, 'utf8') > maxNameBytes) {
      throw new FerryError('EBADNAME', `list prefix or after is longer than ${maxNameBytes} bytes`);
    }
  }
  const limit = request.limit ?? maxListPageEntries;
  const page = ctx.services.store.listFiles({ prefix: request.prefix, after: request.after, limit: limit + 1 });
  const files = page.slice(0, limit).map(fileSummary);
  const next = page.length > limit ? files.at(-1)?.name : undefined;
  return { result: next === undefined ? { files } : { files, next } };
};
