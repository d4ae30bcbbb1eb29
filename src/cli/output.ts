import { FerryError } from '../protocol/errors.js';
import type { FileInfo, FileSummary, InfoResult, LogEntry, UploadSummary } from '../protocol/messages.js';
import { formatBytes, formatElapsed, formatLocalTime, formatTransferTime } from './units.js';

/** Where the CLI writes: stdout for results, stderr for everything else. Tests pass their own. */
export interface Output {
  out(text: string): void;
  err(text: string): void;
}

export const processOutput: Output = {
  out: (text) => process.stdout.write(text + '\n'),
  err: (text) => process.stderr.write(text + '\n'),
};

export function printJson(output: Output, value: unknown): void {
  output.out(JSON.stringify(value, null, 2));
}

export function formatList(files: FileSummary[]): string {
  if (files.length === 0) return '(no files)';
  const sizes = files.map((file) => formatBytes(file.size));
  const width = Math.max(...sizes.map((size) => size.length));
  return files
    .map(
      (file, index) =>
        `${sizes[index]!.padStart(width)}  ${formatLocalTime(file.modified)}  ${file.name}${file.damaged === undefined ? '' : '  [DAMAGED]'}`,
    )
    .join('\n');
}

/** `, 4.2x smaller on the wire` when compression saved bytes; nothing otherwise. */
export function compressedNote(payloadBytes: number, wireBytes: number): string {
  return wireBytes < payloadBytes ? `, ${(payloadBytes / Math.max(wireBytes, 1)).toFixed(1)}x smaller on the wire` : '';
}

/** Unfinished uploads: bytes held of the size, how long since a client last worked on each, the name. */
export function formatUploads(uploads: UploadSummary[], now = Date.now()): string {
  if (uploads.length === 0) return '(no unfinished uploads)';
  const held = uploads.map((upload) => `${formatBytes(upload.received)} of ${formatBytes(upload.size)}`);
  const ages = uploads.map((upload) => `${formatElapsed((now - Date.parse(upload.touched)) / 1000)} ago`);
  const heldWidth = Math.max(...held.map((text) => text.length));
  const ageWidth = Math.max(...ages.map((text) => text.length));
  return uploads
    .map((upload, index) => `${held[index]!.padStart(heldWidth)}  ${ages[index]!.padStart(ageWidth)}  ${upload.name}`)
    .join('\n');
}

export function formatStat(file: FileInfo): string {
  return [
    `name:      ${file.name}`,
    `size:      ${formatBytes(file.size)} (${file.size.toLocaleString('en-US')} bytes)`,
    `sha256:    ${file.sha256}`,
    `chunks:    ${file.chunkCount} x ${formatBytes(file.chunkSize)}`,
    `created:   ${formatLocalTime(file.created)}`,
    `modified:  ${formatLocalTime(file.modified)}`,
    ...(file.mode === undefined ? [] : [`mode:      ${file.mode.toString(8).padStart(4, '0')} (of the uploaded file)`]),
    ...(file.mtime === undefined ? [] : [`mtime:     ${formatLocalTime(file.mtime)} (of the uploaded file)`]),
    ...(file.damaged === undefined ? [] : [`DAMAGED:   ${file.damaged} (not served; delete it or upload it again with --force)`]),
  ].join('\n');
}

export function formatInfo(info: InfoResult): string {
  return [
    `server:        ferry ${info.version} (protocol ${info.protocolVersion})`,
    `files:         ${info.files} (${formatBytes(info.bytes)})`,
    `unfinished:    ${info.uploads} upload${info.uploads === 1 ? '' : 's'}${info.uploads > 0 ? ' (ferry list --partial)' : ''}`,
    `clients:       ${info.clients}`,
    `workers:       ${info.workers}`,
    `chunk size:    ${formatBytes(info.chunkSize)}`,
    `uptime:        ${formatElapsed(info.uptimeSeconds)}`,
    `capabilities:  ${info.capabilities.join(', ')}`,
  ].join('\n');
}

export function formatLog(entries: LogEntry[]): string {
  if (entries.length === 0) return '(no transfers yet)';
  return entries
    .map(
      (entry) =>
        `${formatLocalTime(entry.time)}  ${entry.op.padEnd(8)}  ${entry.result.padEnd(11)}  ${formatBytes(entry.bytes).padStart(10)}  ${formatTransferTime(entry.durationMs).padStart(8)}  ${entry.user === undefined ? '' : `${entry.user}@`}${entry.client}  ${entry.name}${entry.direct ? '  (direct)' : ''}`,
    )
    .join('\n');
}

export function formatRate(bytes: number, ms: number): string {
  return `${formatBytes(bytes / Math.max(ms / 1000, 0.001))}/s`;
}

/** The one line an operation's failure prints: `ferry: <what went wrong> (<CODE>)`. */
export function errorLine(error: unknown): string {
  if (error instanceof FerryError) return `ferry: ${error.message} (${error.code})`;
  return `ferry: ${error instanceof Error ? error.message : String(error)} (EINTERNAL)`;
}
