import { FerryError } from '../protocol/errors.js';
import { type FileAttributes, type StoredFile, type TransferLogRecord, type UploadSessionRecord, packHashes } from '../store/records.js';
import type { PlacedFile, PlacedTimes } from './byte-store.js';
import type { ServerServices } from './services.js';

/** A verified file, complete and durable where its store keeps it, to be made visible as `name`. */
export interface Publication {
  /** Puts the verified bytes in place under the name, durably (a rename on disk, a completed multipart upload in S3). */
  bytes: { place(file: PlacedFile): Promise<PlacedTimes | undefined> };
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
 * Puts a verified file in place and records it (docs/design.md, "Durability"): the bytes are in
 * place, durably (on disk: the rename and the entry of every folder made for it), before the
 * record says the file exists; the record, the transfer log entry and the end of the session are
 * one LMDB commit.
 * Run it under the name's lock (`UploadRegistry.exclusive`). Returns the file and the size of the
 * one it replaced (0: none).
 */
export async function publishInPlace(
  services: ServerServices,
  publication: Publication,
): Promise<{ file: StoredFile; replacedBytes: number }> {
  const { store } = services;
  const { name, force, attributes } = publication;
  const existing = store.fileRecord(name);
  if (existing && !force) throw new FerryError('EEXIST', `${name} already exists (use --force to replace it)`);
  const placed = await publication.bytes.place({
    name,
    size: publication.size,
    sha256: publication.sha256,
    chunkHashes: publication.chunkHashes,
    force,
    attributes,
  });
  const now = placed?.modified ?? Date.now();
  const file: StoredFile = {
    name,
    size: publication.size,
    sha256: publication.sha256,
    chunkSize: publication.chunkSize,
    hashes: packHashes(publication.chunkHashes),
    created: existing?.created ?? placed?.created ?? now,
    modified: now,
    ...(attributes.mode === undefined ? {} : { mode: attributes.mode }),
    ...(attributes.mtime === undefined ? {} : { mtime: attributes.mtime }),
  };
  await store.commitFile(file, publication.session, publication.logEntry());
  return { file, replacedBytes: existing?.size ?? 0 };
}
