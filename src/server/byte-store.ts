import { randomUUID } from 'node:crypto';
import { closeSync, renameSync } from 'node:fs';
import { type FileHandle, open, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { HashFileResult, ReadChunkResult, ReadChunkTask, WriteChunkResult, WriteChunkTask } from '../../workers/tasks.js';
import { FerryError } from '../protocol/errors.js';
import type { FileAttributes, StoredFile, UploadSessionRecord } from '../store/records.js';
import { fromSystemError } from '../system-errors.js';
import type { ChunkWorkers } from './chunk-workers.js';
import type { DataLayout } from './data-layout.js';
import { newFileWriter } from './new-file.js';
import { syncRenameInto } from './sync-directory.js';

/** A chunk to check and store: where it goes in the file, its bytes, and the sender's xxh64. */
export type ChunkWrite = Omit<WriteChunkTask, 'fd'>;
/** A chunk to read and check against its recorded xxh64. */
export type ChunkRead = Omit<ReadChunkTask, 'fd'>;

/** What an upload holds after a checkpoint, for a store that keeps it with the bytes (`keepsProgress`). */
export interface UploadProgress {
  /** Every chunk stored and checked, by index: its xxh64. */
  chunks: ReadonlyMap<number, bigint>;
  /** The running SHA-256 over chunks [0, next), as its saved state; undefined when it cannot be saved or is lost. */
  hash: { next: number; state: string } | undefined;
}

/** A verified file about to become visible under its name: what the store keeps with it. */
export interface PlacedFile {
  name: string;
  size: number;
  sha256: string;
  chunkHashes: readonly bigint[];
  force: boolean;
  attributes: FileAttributes;
}

/** When a store that keeps its own record of a file says it was made and last published (every server then records the same). */
export interface PlacedTimes {
  created: number;
  modified: number;
}

/** One unfinished upload's bytes, open while an upload is attached to a connection. */
export interface UploadBytes {
  /** Checks a chunk (its xxh64, or computes it) and stores it at its offset; the buffer always comes back. */
  writeChunk(task: ChunkWrite): Promise<WriteChunkResult>;
  /** Makes what `writeChunk` stored durable (and, where the store keeps it, the upload's progress with it). */
  sync(progress: UploadProgress | undefined): Promise<void>;
  /** The SHA-256 and chunk hashes of the stored bytes, from one pass over them; undefined where they cannot be read back. */
  hashStored(size: number, chunkSize: number): Promise<HashFileResult | undefined>;
  /** Reads `into.length` stored bytes at `position` (all of them, or rejects); absent where they cannot be read back. */
  read?(position: number, into: Uint8Array): Promise<void>;
  /** Makes the verified bytes the file `name`, durably (the caller records it once this returns). */
  place(file: PlacedFile): Promise<PlacedTimes | undefined>;
  close(): Promise<void>;
}

/** A whole small file's bytes, checked and held by the store until they are placed under their name (or discarded). */
export interface StagedWhole {
  place(file: PlacedFile): Promise<PlacedTimes | undefined>;
  discard(): Promise<void>;
}

/** One stored file open for reading. */
export interface FileBytes {
  /** Reads a chunk and checks it against its recorded xxh64 (ECHECKSUM if it does not match; the buffer always comes back). */
  readChunk(task: ChunkRead): Promise<ReadChunkResult>;
  close(): Promise<void>;
}

/** Where a client may read a stored file itself (capability `get-direct`): a signed URL of its bytes. */
export interface DirectRead {
  url: string;
  /** The version of the object the record describes: the client reads with If-Match, so never another. */
  etag: string;
  /** Seconds from now until the URL lapses (a lifetime, not a time: the client's clock need not agree with the server's). */
  expiresInSeconds: number;
}

/** A store whose clients may read files from it themselves (`ferry serve --s3-direct-reads`). */
export interface DirectReads {
  /** A signed URL of `file`'s bytes, the very version its record describes (ECHANGED if that is gone). */
  locate(file: StoredFile): Promise<DirectRead>;
}

/**
 * Where the bytes of files and unfinished uploads live (docs/design.md, "The store interface"):
 * the data directory (`LocalByteStore`), or an S3-compatible object store shared by several
 * servers (`S3ByteStore`). The engine's rules (names, quotas, one writer per name, per-chunk
 * xxh64, SHA-256 end to end, the records in LMDB) sit above it and are the same for both.
 */
export interface ByteStore {
  /** Whether each checkpoint's progress goes to the store with the bytes (`UploadProgress`): another server may take the upload up. */
  readonly keepsProgress: boolean;
  /** The largest file the store takes (S3: its part count at the chunk size), if it has a limit of its own. */
  readonly maxFileBytes?: number;
  /** Present when clients may read files from the store directly (an S3 store with direct reads on). */
  readonly directReads?: DirectReads;
  /** Makes the place of a new upload's bytes; `size` undefined: an upload from a stream, of a size known only at its end. */
  createUpload(session: UploadSessionRecord, size: number | undefined): Promise<void>;
  uploadExists(session: UploadSessionRecord): Promise<boolean>;
  removeUpload(session: UploadSessionRecord): Promise<void>;
  openUpload(session: UploadSessionRecord): Promise<UploadBytes>;
  openFile(file: StoredFile): Promise<FileBytes>;
  /**
   * Takes a whole small file's checked bytes (`putWhole`) toward publishing: durable where the
   * store needs them to be before `place` (on disk: written and synced to a file of its own).
   * `release` gives their buffer back as soon as the store no longer needs it.
   */
  stageWhole(bytes: Uint8Array, release: () => void): Promise<StagedWhole>;
  /** Removes a stored file's bytes (its record is gone already). */
  removeFile(name: string): Promise<void>;
  /**
   * Of a store several servers share (`keepsProgress`): the unfinished upload of `name` that any
   * of them left there, with the chunks it holds and its running hash's saved state.
   */
  findUpload?(name: string): Promise<FoundUpload | undefined>;
  /** Of a shared store: drops the unfinished uploads nobody has touched since `cutoff` (any server's); returns their names. */
  expireAbandoned?(cutoff: number): Promise<string[]>;
}

/** An unfinished upload found in a shared store. */
export interface FoundUpload {
  session: UploadSessionRecord;
  chunks: Map<number, bigint>;
  hash: { next: number; state: string } | undefined;
}

/** The data directory: files under files/, unfinished uploads as partial/<session>.part, written by the chunk workers. */
export class LocalByteStore implements ByteStore {
  readonly keepsProgress = false;
  readonly #layout: DataLayout;
  readonly #workers: ChunkWorkers;

  constructor(layout: DataLayout, workers: ChunkWorkers) {
    this.#layout = layout;
    this.#workers = workers;
  }

  createUpload(session: UploadSessionRecord, size: number | undefined): Promise<void> {
    // A stream's partial file grows as its chunks are written.
    return this.#layout.createPartial(session.id, size ?? 0);
  }

  uploadExists(session: UploadSessionRecord): Promise<boolean> {
    return this.#layout.partialExists(session.id);
  }

  removeUpload(session: UploadSessionRecord): Promise<void> {
    return this.#layout.removePartial(session.id);
  }

  async openUpload(session: UploadSessionRecord): Promise<UploadBytes> {
    const path = this.#layout.partialPath(session.id);
    const file = await open(path, 'r+');
    return new LocalUploadBytes(this.#layout, this.#workers, path, file);
  }

  openFile(stored: StoredFile): Promise<FileBytes> {
    // Opened blocking (see openStoredFile); a failure still rejects, as an open on the pool did.
    return new Promise((resolve) => {
      const fd = this.#layout.openStoredFile(stored.name);
      const workers = this.#workers;
      let closed = false;
      resolve({
        readChunk: (task) => workers.readChunk({ ...task, fd }),
        close: () => {
          // Once only: the descriptor's number may be another file's after.
          if (!closed) closeSync(fd);
          closed = true;
          return Promise.resolve();
        },
      });
    });
  }

  /**
   * Writes the bytes to a file of its own in partial/ and syncs it (the buffer goes back as soon
   * as the bytes are written). A file left there by a crash is an orphan that start-up recovery
   * removes; one left by a failure is removed by `discard`.
   */
  async stageWhole(bytes: Uint8Array, release: () => void): Promise<StagedWhole> {
    const layout = this.#layout;
    const path = layout.partialPath(`whole-${randomUUID()}`);
    const discard = (): Promise<void> => rm(path, { force: true }).catch(() => undefined);
    try {
      await newFileWriter().write(path, bytes, layout.fileMode);
      release();
    } catch (error) {
      await discard();
      throw error;
    }
    return { place: (file) => placeLocalFile(layout, path, file.name).then(() => undefined), discard };
  }

  async removeFile(name: string): Promise<void> {
    const path = this.#layout.safeFilePath(name);
    await rm(path, { force: true });
    await this.#layout.pruneEmptyFolders(name);
  }
}

class LocalUploadBytes implements UploadBytes {
  readonly #layout: DataLayout;
  readonly #workers: ChunkWorkers;
  readonly #path: string;
  readonly #file: FileHandle;

  constructor(layout: DataLayout, workers: ChunkWorkers, path: string, file: FileHandle) {
    this.#layout = layout;
    this.#workers = workers;
    this.#path = path;
    this.#file = file;
  }

  writeChunk(task: ChunkWrite): Promise<WriteChunkResult> {
    return this.#workers.writeChunk({ ...task, fd: this.#file.fd });
  }

  sync(): Promise<void> {
    return this.#file.datasync();
  }

  hashStored(size: number, chunkSize: number): Promise<HashFileResult> {
    return this.#workers.hashFile({ path: this.#path, size, chunkSize });
  }

  async read(position: number, into: Uint8Array): Promise<void> {
    const { bytesRead } = await this.#file.read(into, 0, into.length, position);
    if (bytesRead !== into.length) throw new Error(`${this.#path}: ${bytesRead} bytes at ${position}, expected ${into.length}`);
  }

  async place(file: PlacedFile): Promise<undefined> {
    await placeLocalFile(this.#layout, this.#path, file.name);
    return undefined;
  }

  close(): Promise<void> {
    return this.#file.close();
  }
}

/**
 * Renames a synced file at `from` into place as `name`: the rename, and the entry of every
 * folder made for it, are durable on return (docs/design.md, "Durability").
 */
export async function placeLocalFile(layout: DataLayout, from: string, name: string): Promise<void> {
  const finalPath = layout.safeFilePath(name);
  const folder = dirname(finalPath);
  /** The first folder this publish had to make, if it made any. */
  let madeFolder: string | undefined;
  try {
    // Usually the folder exists: try the rename first, and make the folder only when it is missing.
    // Blocking: a rename moves a directory entry, and costs less that way than a hop through
    // libuv's pool (docs/perf-notes.md, "A whole put in one hop").
    try {
      renameSync(from, finalPath);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      madeFolder = await layout.makeFolders(folder);
      renameSync(from, finalPath);
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR' || code === 'EISDIR' || code === 'EEXIST' || code === 'ENOTEMPTY') {
      throw new FerryError('EEXIST', `${name} clashes with a stored file or folder of that name`, { cause: error });
    }
    throw fromSystemError(error, `publishing ${name}`);
  }
  await syncRenameInto(folder, madeFolder);
}
