import { defaultLogPageEntries } from '../../protocol/limits.js';
import type { LogEntry } from '../../protocol/messages.js';
import type { Handler } from './types.js';

export const log: Handler<'log'> = (request, ctx) => {
  const records = ctx.services.store.recentLog(request.limit ?? defaultLogPageEntries);
  const entries: LogEntry[] = records.map((record) => ({ ...record, time: new Date(record.time).toISOString() }));
  return { result: { entries } };
};
