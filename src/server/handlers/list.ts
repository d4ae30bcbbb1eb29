import { maxListPage } from '../../protocol/messages.js';
import { fileSummary } from './file-info.js';
import type { Handler } from './types.js';

export const list: Handler<'list'> = async (connection, request) => {
  const limit = request.limit ?? maxListPage;
  const page = connection.services.store.listFiles({ prefix: request.prefix, after: request.after, limit: limit + 1 });
  const files = page.slice(0, limit).map(fileSummary);
  const next = page.length > limit ? files.at(-1)?.name : undefined;
  return { result: next === undefined ? { files } : { files, next } };
};
