import { defaultLogPageEntries } from '../../protocol/limits.js';
import type { LogEntry } from '../../protocol/messages.js';
import { takeWithin } from './reply-size.js';
import type { Handler } from './types.js';

export const log: Handler<'log'> = (request, ctx) => {
  const records = ctx.services.store.recentLog(request.limit ?? defaultLogPageEntries);
  // Cut by bytes too: fewer entries than asked for when they are long.
  const entries: LogEntry[] = takeWithin(
    records.map((record) => ({ ...record, time: new Date(record.time).toISOString() })),
    records.length,
    ctx.services.config.maxReplyBytes,
  ).taken;
  return { result: { entries } };
};
