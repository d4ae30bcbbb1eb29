import { FerryError } from '../../protocol/errors.js';
import { maxListPageEntries } from '../../protocol/limits.js';
import type { FileSummary, RequestOf } from '../../protocol/messages.js';
import type { RequestScope } from '../request-context.js';
import { maxNameBytes } from '../../protocol/names.js';
import { accountOf } from '../account-view.js';
import { fileSummary } from './file-info.js';
import { takeWithin } from './reply-size.js';
import { withFreshRecords } from './fresh-records.js';
import type { Handled, ScopedHandler } from './types.js';

export const list: ScopedHandler<'list'> = (request, ctx) => {
  for (const bound of [request.prefix, request.after]) {
    if (bound !== undefined && Buffer.byteLength(bound, 'utf8') > maxNameBytes) {
      throw new FerryError('EBADNAME', `list prefix or after is longer than ${maxNameBytes} bytes`);
    }
  }
  const account = accountOf(ctx);
  const after = request.after === undefined ? undefined : account.storedPrefix(request.after);
  const limit = Math.min(request.limit ?? maxListPageEntries, maxListPageEntries);
  return withFreshRecords(
    ctx,
    // Only the page this request shows, from just after `after`: its `limit` files and one more
    // (whether there is a next page).
    (catalog) => catalog.refreshPage(account.storedPrefix(request.prefix), after, limit + 1),
    () => listNow(request, ctx),
  );
};

function listNow(request: RequestOf<'list'>, ctx: RequestScope): Handled<'list'> {
  const { store, config } = ctx.services;
  const account = accountOf(ctx);
  const after = request.after === undefined ? undefined : account.storedPrefix(request.after);
  function* summaries(): Generator<FileSummary> {
    for (const file of store.filesFrom({ prefix: account.storedPrefix(request.prefix), after })) {
      yield { ...fileSummary(file), name: account.shown(file.name) };
    }
  }
  const { taken: files, more } = takeWithin(summaries(), request.limit ?? maxListPageEntries, config.maxReplyBytes);
  const next = more ? files.at(-1)?.name : undefined;
  return { result: next === undefined ? { files } : { files, next } };
}
