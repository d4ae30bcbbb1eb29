/** What the metadata store holds (docs/design.md, "LMDB layout"). */
import type { LogEntry } from '../protocol/messages.js';

/** A finished, verified file, without its chunk hashes (what listing and stat need). */
export interface FileRecord {
  name: string;
  size: number;
  sha256: string;
  chunkSize: number;
  /** Milliseconds since the epoch. */
  created: number;
  modified: number;
  /**
   * Set when the bytes on disk were found not to match this record (wrong size, a chunk that
   * fails its xxh64, missing): why. A damaged file is listed but never served (ECORRUPT); delete
   * it or upload it again with --force.
   */
  damaged?: string;
  /** The uploaded local file's permission bits (as chmod takes them), when its client gave them. */
  mode?: number;
  /** The uploaded local file's modification time, milliseconds since the epoch, when its client gave it. */
  mtime?: number;
}

/** What a client may say of the local file it uploaded, kept with the stored file (`download -r` restores them). */
export type FileAttributes = Pick<FileRecord, 'mode' | 'mtime'>;

/** A stored file with its chunk hashes: `hashes` is the xxh64 of each chunk, 8 bytes big-endian apiece. */
export interface StoredFile extends FileRecord {
  hashes: Uint8Array;
}

/**
 * An upload in progress. Found again by `name` and matched on `size` + `fingerprint`, so the same
 * file re-sent after a cut resumes; `id` names its partial file and its chunk records.
 */
export interface UploadSessionRecord {
  id: string;
  name: string;
  size: number;
  fingerprint: string;
  chunkSize: number;
  created: number;
  /** Last time a client worked on it; sessions idle past the TTL are expired. */
  touched: number;
  /** Who the session counts against for the per-owner session limit: the account (a client network in sessions of servers before accounts; absent in older ones). */
  owner?: string;
}

/** What an account may do (docs/design.md, "Accounts"): read < write < admin. */
export type Role = 'read' | 'write' | 'admin';

/** An account, as stored. Passwords are kept only as their scrypt hash, parameters included. */
export interface UserRecord {
  name: string;
  /** PHC string: `$scrypt$ln=15,r=8,p=1$<salt>$<key>` (base64 without padding). */
  passwordHash: string;
  role: Role;
  /** The prefix the user's names live under: `''` (the whole store) or a folder ending in `/`. */
  root: string;
  /** Bytes the user may hold under its root (stored plus unfinished uploads); absent: no limit of its own. */
  quotaBytes?: number;
  /** Milliseconds since the epoch. */
  created: number;
  lastLogin?: number;
}

/** A login session, stored under the SHA-256 of its token (the token itself is never stored). */
export interface TokenRecord {
  user: string;
  created: number;
  /** Last time it opened a connection; it lapses `tokenIdleMs` after that. */
  used: number;
}

/** A transfer log entry as stored: what `log` replies with, its time in milliseconds since the epoch. */
export type TransferLogRecord = Omit<LogEntry, 'time'> & { time: number };

/** Whether two records describe the same upload of a file (not a later one that replaced it). */
export function sameUpload(a: FileRecord, b: FileRecord): boolean {
  return a.name === b.name && a.sha256 === b.sha256 && a.modified === b.modified;
}

export function chunkCountOf(size: number, chunkSize: number): number {
  return Math.ceil(size / chunkSize);
}

export function chunkLengthOf(index: number, size: number, chunkSize: number): number {
  return Math.min(chunkSize, size - index * chunkSize);
}

export function hashAt(hashes: Uint8Array, index: number): bigint {
  return new DataView(hashes.buffer, hashes.byteOffset, hashes.byteLength).getBigUint64(index * 8);
}

export function packHashes(values: readonly bigint[]): Uint8Array {
  const packed = new Uint8Array(values.length * 8);
  const view = new DataView(packed.buffer);
  values.forEach((value, index) => view.setBigUint64(index * 8, value));
  return packed;
}
