import { FerryError } from '../../protocol/errors.js';
import { maxListPageEntries } from '../../protocol/limits.js';
import type { UploadSummary } from '../../protocol/messages.js';
import { maxNameBytes } from '../../protocol/names.js';
import { chunkLengthOf } from '../../store/records.js';
import { accountOf } from '../account-view.js';
import { takeWithin } from './reply-size.js';
import type { Handler } from './types.js';

/** Where an upload sorts: by name, then by session (two uploads of one name, of different files, may wait at once). */
function cursorOf(name: string, id: string): string {
  return `${name}\u0000${id}`;
}

/** The unfinished uploads, a page at a time, in name order: what each holds and when it was last worked on. */
export const uploads: Handler<'uploads'> = (request, ctx) => {
  if (request.prefix !== undefined && Buffer.byteLength(request.prefix, 'utf8') > maxNameBytes) {
    throw new FerryError('EBADNAME', `uploads prefix is longer than ${maxNameBytes} bytes`);
  }
  const { store, config } = ctx.services;
  const account = accountOf(ctx);
  const prefix = account.storedPrefix(request.prefix);
  const sessions = store
    .sessions()
    .filter((session) => session.name.startsWith(prefix))
    .map((session) => ({ session, cursor: cursorOf(session.name, session.id) }))
    .filter(({ cursor }) => request.after === undefined || cursor > request.after)
    .sort((a, b) => (a.cursor < b.cursor ? -1 : a.cursor > b.cursor ? 1 : 0));
  const cursors: string[] = [];
  function* summaries(): Generator<UploadSummary> {
    for (const { session, cursor } of sessions) {
      let received = 0;
      for (const index of store.verifiedChunks(session.id).keys()) received += chunkLengthOf(index, session.size, session.chunkSize);
      cursors.push(cursor);
      yield {
        name: account.shown(session.name),
        size: session.size,
        received,
        created: new Date(session.created).toISOString(),
        touched: new Date(session.touched).toISOString(),
      };
    }
  }
  const { taken, more } = takeWithin(summaries(), request.limit ?? maxListPageEntries, config.maxReplyBytes);
  const next = more ? cursors[taken.length - 1] : undefined;
  return { result: next === undefined ? { uploads: taken } : { uploads: taken, next } };
};
