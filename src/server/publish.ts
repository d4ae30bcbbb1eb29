import { rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { FerryError } from '../protocol/errors.js';
import { type FileAttributes, type StoredFile, type TransferLogRecord, type UploadSessionRecord, packHashes } from '../store/records.js';
import { fromSystemError } from '../system-errors.js';
import type { ServerServices } from './services.js';
import { syncRenameInto } from './sync-directory.js';

/** A verified file, complete and synced at `from`, to be made visible as `name`. */
export interface Publication {
  /** The synced file to rename into place. */
  from: string;
  name: string;
  size: number;
  sha256: string;
  chunkSize: number;
  chunkHashes: readonly bigint[];
  /** Replace a stored file of that name (else EEXIST). */
  force: boolean;
  attributes: FileAttributes;
  /** The upload session that ends with this publish: removed in the same commit. */
  session: UploadSessionRecord | undefined;
  logEntry: () => TransferLogRecord;
}

/**
 * Renames a verified file into place and records it (docs/design.md, "Durability"): the rename,
 * and the entry of every folder made for it, are durable before the record says the file
 * exists; the record, the transfer log entry and the end of the session are one LMDB commit.
 * Run it under the name's lock (`UploadRegistry.exclusive`). Returns the file and the size of the
 * one it replaced (0: none).
 */
export async function publishInPlace(
  services: ServerServices,
  publication: Publication,
): Promise<{ file: StoredFile; replacedBytes: number }> {
  const { layout, store } = services;
  const { name, force } = publication;
  const existing = store.fileRecord(name);
  if (existing && !force) throw new FerryError('EEXIST', `${name} already exists (use --force to replace it)`);
  const finalPath = await layout.safeFilePath(name);
  const folder = dirname(finalPath);
  /** The first folder this publish had to make, if it made any. */
  let madeFolder: string | undefined;
  try {
    // Usually the folder exists: try the rename first, and make the folder only when it is missing.
    await rename(publication.from, finalPath).catch(async (error: unknown) => {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      madeFolder = await layout.makeFolders(folder);
      await rename(publication.from, finalPath);
    });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR' || code === 'EISDIR' || code === 'EEXIST' || code === 'ENOTEMPTY') {
      throw new FerryError('EEXIST', `${name} clashes with a stored file or folder of that name`, { cause: error });
    }
    throw fromSystemError(error, `publishing ${name}`);
  }
  await syncRenameInto(folder, madeFolder);
  const now = Date.now();
  const { attributes } = publication;
  const file: StoredFile = {
    name,
    size: publication.size,
    sha256: publication.sha256,
    chunkSize: publication.chunkSize,
    hashes: packHashes(publication.chunkHashes),
    created: existing?.created ?? now,
    modified: now,
    ...(attributes.mode === undefined ? {} : { mode: attributes.mode }),
    ...(attributes.mtime === undefined ? {} : { mtime: attributes.mtime }),
  };
  await store.commitFile(file, publication.session, publication.logEntry());
  return { file, replacedBytes: existing?.size ?? 0 };
}
