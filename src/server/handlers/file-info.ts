import type { FileInfo, FileSummary } from '../../protocol/messages.js';
import { type FileRecord, chunkCountOf } from '../../store/records.js';

export function fileSummary(file: FileRecord): FileSummary {
  const summary: FileSummary = { name: file.name, size: file.size, sha256: file.sha256, modified: new Date(file.modified).toISOString() };
  if (file.damaged !== undefined) summary.damaged = file.damaged;
  return summary;
}

export function fileInfo(file: FileRecord): FileInfo {
  return {
    ...fileSummary(file),
    chunkSize: file.chunkSize,
    chunkCount: chunkCountOf(file.size, file.chunkSize),
    created: new Date(file.created).toISOString(),
  };
}
