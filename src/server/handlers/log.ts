import type { LogEntry } from '../../protocol/messages.js';
import type { Handler } from './types.js';

export const log: Handler<'log'> = async (connection, request) => {
  const records = connection.services.store.recentLog(request.limit ?? 50);
  const entries: LogEntry[] = records.map((record) => ({ ...record, time: new Date(record.time).toISOString() }));
  return { result: { entries } };
};
