import type { FileInfo, FileSummary } from '../../protocol/messages.js';
import { type StoredFile, chunkCountOf } from '../../store/records.js';

export function fileSummary(file: StoredFile): FileSummary {
  const summary: FileSummary = { name: file.name, size: file.size, sha256: file.sha256, modified: new Date(file.modified).toISOString() };
  if (file.damaged !== undefined) summary.damaged = file.damaged;
  return summary;
}

export function fileInfo(file: StoredFile): FileInfo {
  return {
    ...fileSummary(file),
    chunkSize: file.chunkSize,
    chunkCount: chunkCountOf(file.size, file.chunkSize),
    created: new Date(file.created).toISOString(),
  };
}
