import type { FileInfo, FileSummary } from '../../protocol/messages.js';
import { type FileRecord, chunkCountOf } from '../../store/records.js';
import type { AccountView } from '../account-view.js';

/** The stored name as it is: the caller names it as its account sees it. */
export function fileSummary(file: FileRecord): FileSummary {
  const summary: FileSummary = { name: file.name, size: file.size, sha256: file.sha256, modified: new Date(file.modified).toISOString() };
  if (file.damaged !== undefined) summary.damaged = file.damaged;
  if (file.mode !== undefined) summary.mode = file.mode;
  if (file.mtime !== undefined) summary.mtime = new Date(file.mtime).toISOString();
  return summary;
}

/** A file's info, named as `account` sees it. */
export function fileInfo(file: FileRecord, account: AccountView): FileInfo {
  return {
    ...fileSummary(file),
    name: account.shown(file.name),
    chunkSize: file.chunkSize,
    chunkCount: chunkCountOf(file.size, file.chunkSize),
    created: new Date(file.created).toISOString(),
  };
}
