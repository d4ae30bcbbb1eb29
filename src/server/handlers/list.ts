import { FerryError } from '../../protocol/errors.js';
import { maxListPageEntries } from '../../protocol/limits.js';
import type { FileSummary } from '../../protocol/messages.js';
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
  const page: ListPage = {
    prefix: account.storedPrefix(request.prefix),
    after: request.after === undefined ? undefined : account.storedPrefix(request.after),
    limit: request.limit ?? maxListPageEntries,
  };
  return withFreshRecords(
    ctx,
    // Only the page this request shows, from just after `after`: its `limit` files and one more
    // (whether there is a next page).
    (catalog) => catalog.refreshPage(page.prefix, page.after, page.limit + 1),
    () => listNow(page, ctx),
  );
};

/** A page of a listing, in stored names (under the account's root). */
interface ListPage {
  prefix: string;
  after: string | undefined;
  limit: number;
}

function listNow(page: ListPage, ctx: RequestScope): Handled<'list'> {
  const { store, config } = ctx.services;
  const account = accountOf(ctx);
  function* summaries(): Generator<FileSummary> {
    for (const file of store.filesFrom({ prefix: page.prefix, after: page.after })) {
      yield { ...fileSummary(file), name: account.shown(file.name) };
    }
  }
  const { taken: files, more } = takeWithin(summaries(), page.limit, config.maxReplyBytes);
  const next = more ? files.at(-1)?.name : undefined;
  return { result: next === undefined ? { files } : { files, next } };
}
