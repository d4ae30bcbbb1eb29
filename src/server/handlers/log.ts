import { defaultLogPageEntries } from '../../protocol/limits.js';
import type { LogEntry } from '../../protocol/messages.js';
import { accountOf } from '../account-view.js';
import { takeWithin } from './reply-size.js';
import type { ScopedHandler } from './types.js';

export const log: ScopedHandler<'log'> = async (request, ctx) => {
  // Transfers that ended before this request are in the reply (a download's entry is appended
  // as its last chunk leaves, and committed a moment later).
  await ctx.services.store.logCommitted();
  const account = accountOf(ctx);
  // An admin reads the whole log; anyone else the entries of their own transfers.
  const records = ctx.services.store.recentLog(
    request.limit ?? defaultLogPageEntries,
    account.isAdmin ? undefined : (entry) => entry.user === account.name,
  );
  // Cut by bytes too: fewer entries than asked for when they are long.
  const entries: LogEntry[] = takeWithin(
    records.map((record) => ({ ...record, name: account.shown(record.name), time: new Date(record.time).toISOString() })),
    records.length,
    ctx.services.config.maxReplyBytes,
  ).taken;
  return { result: { entries } };
};
