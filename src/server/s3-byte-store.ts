import { FerryError } from '../protocol/errors.js';
import { xxh64FromHex, xxh64ToHex } from '../protocol/frames.js';
import type { S3Store } from '../object-store/s3-store.js';
import type { S3FileManifest, S3UploadManifest } from '../object-store/s3-manifests.js';
import { s3MaxParts } from '../object-store/s3-limits.js';
import type { StoredFile, UploadSessionRecord } from '../store/records.js';
import type { ReadChunkResult, WriteChunkResult } from '../../workers/tasks.js';
import type {
  ByteStore,
  ChunkRead,
  ChunkWrite,
  DirectRead,
  DirectReads,
  FileBytes,
  FoundUpload,
  PlacedFile,
  PlacedTimes,
  StagedWhole,
  UploadBytes,
  UploadProgress,
} from './byte-store.js';
import type { ChunkWorkers } from './chunk-workers.js';
import type { RecentManifests } from './recent-manifests.js';

/**
 * How long a URL for a client's direct reads holds unless the settings say (`directReadSeconds`):
 * a download that outlasts it asks for a fresh one (each window of chunk hashes comes with one).
 */
const directReadUrlSeconds = 15 * 60;

/**
 * The bytes of files and unfinished uploads in an S3-compatible store (S3Store), shared by
 * several servers. A chunk is checked (its xxh64) on this thread, then stored as its upload's
 * multipart part; each checkpoint saves the upload's chunk hashes and running SHA-256 state in
 * the store, so any server takes the upload up from there. Packed (compressed) chunks are
 * unpacked on a chunk thread first: parts hold the raw bytes, as files on disk do.
 */
export class S3ByteStore implements ByteStore {
  readonly keepsProgress = true;
  /** S3's part count bounds a file: at most 10,000 chunks of this server's size. */
  readonly maxFileBytes: number;
  readonly s3: S3Store;
  readonly #workers: ChunkWorkers;
  /** The chunk size of this server: a whole small file is recorded as one chunk of it. */
  readonly #chunkSize: number;
  /** The store's record of each upload this server has open or made, by session id. */
  readonly #uploads = new Map<string, S3UploadManifest>();
  /** Manifests the shared catalog has just read (for the downloads that asked it to). */
  readonly #recent: RecentManifests;
  readonly directReads?: DirectReads;

  constructor(s3: S3Store, workers: ChunkWorkers, chunkSize: number, recent: RecentManifests) {
    this.s3 = s3;
    this.#workers = workers;
    this.#chunkSize = chunkSize;
    this.maxFileBytes = s3MaxParts * chunkSize;
    this.#recent = recent;
    if (s3.settings.directReadEndpoint !== undefined) this.directReads = { locate: (file) => this.#locate(file) };
  }

  /** The manifest of `file` as its record describes it: the one the catalog has just read, else the store's; ECHANGED if neither is. */
  async #manifestOf(file: StoredFile): Promise<S3FileManifest> {
    const describes = (manifest: S3FileManifest | undefined): manifest is S3FileManifest =>
      manifest !== undefined && manifest.sha256 === file.sha256 && manifest.size === file.size;
    const recent = this.#recent.take(file.name);
    const manifest = describes(recent) ? recent : await this.s3.stat(file.name);
    if (!describes(manifest)) {
      throw new FerryError('ECHANGED', `${file.name} was deleted or replaced in the shared store`);
    }
    return manifest;
  }

  async #locate(file: StoredFile): Promise<DirectRead> {
    const manifest = await this.#manifestOf(file);
    const seconds = this.s3.settings.directReadSeconds ?? directReadUrlSeconds;
    const url = await this.s3.signedReadUrl(file.name, seconds);
    if (url === undefined) throw new FerryError('ECONFIG', 'this server offers no direct reads from its store');
    return { url, etag: manifest.etag, expiresInSeconds: seconds };
  }

  async createUpload(session: UploadSessionRecord, size: number | undefined): Promise<void> {
    const upload = await this.s3.createUpload({
      id: session.id,
      name: session.name,
      size,
      chunkSize: session.chunkSize,
      fingerprint: session.fingerprint,
      ...(session.owner === undefined ? {} : { owner: session.owner }),
    });
    this.#uploads.set(session.id, upload);
  }

  async uploadExists(session: UploadSessionRecord): Promise<boolean> {
    return (await this.#uploadOf(session)) !== undefined;
  }

  async removeUpload(session: UploadSessionRecord): Promise<void> {
    const upload = await this.#uploadOf(session);
    this.#uploads.delete(session.id);
    // The store's record of the name may be another server's newer upload by now: only ours goes.
    if (upload) await this.s3.abortUpload(upload);
  }

  async openUpload(session: UploadSessionRecord): Promise<UploadBytes> {
    const upload = await this.#uploadOf(session);
    if (!upload) throw new FerryError('ENOENT', `the upload of ${session.name} is no longer in the store`);
    return new S3UploadBytes(this, this.#workers, upload);
  }

  /** The unfinished upload of `name` any server left in the store, as this server records it. */
  async findUpload(name: string): Promise<FoundUpload | undefined> {
    const upload = await this.s3.findUpload(name);
    if (!upload) return undefined;
    this.#uploads.set(upload.id, upload);
    const chunks = new Map<number, bigint>();
    upload.chunks.forEach((hex, index) => {
      if (hex !== null) chunks.set(index, xxh64FromHex(hex));
    });
    const session: UploadSessionRecord = {
      id: upload.id,
      name: upload.name,
      size: upload.size,
      fingerprint: upload.fingerprint,
      chunkSize: upload.chunkSize,
      created: upload.created,
      touched: upload.touched,
      ...(upload.owner === undefined ? {} : { owner: upload.owner }),
    };
    const hash = upload.sha256State === undefined ? undefined : { next: upload.hashedChunks, state: upload.sha256State };
    return { session, chunks, hash };
  }

  async openFile(file: StoredFile): Promise<FileBytes> {
    const manifest = await this.#manifestOf(file);
    const workers = this.#workers;
    const s3 = this.s3;
    return {
      async readChunk(task: ChunkRead): Promise<ReadChunkResult> {
        const { buffer } = task;
        try {
          const bytes = new Uint8Array(buffer, 0, task.length);
          await s3.readRange(manifest, task.offset, task.length, bytes);
          // To be packed: checked and packed on a chunk thread.
          if (task.pack !== undefined) return await workers.readChunk({ ...task, fd: undefined });
          const xxh64 = workers.xxh64(bytes);
          if (xxh64 !== task.xxh64) {
            const index = task.offset / manifest.chunkSize;
            const message = `chunk ${index} has xxh64 ${xxh64ToHex(xxh64)} in the store, its record says ${xxh64ToHex(task.xxh64)}`;
            return { ok: false, code: 'ECHECKSUM', message };
          }
          return { ok: true };
        } catch (error) {
          const failure = error instanceof FerryError ? error : new FerryError('EIO', String(error));
          if (failure.code !== 'ECHANGED') return { ok: false, code: 'EIO', message: failure.message };
          // The object is not the one the manifest describes. Replaced through Ferry, the manifest
          // changed too; if it did not, the object was changed behind the record: damage.
          const now = await s3.stat(file.name).catch(() => undefined);
          if (now?.etag === manifest.etag) {
            const message = `the object in the store is not the one its record describes (ETag ${manifest.etag})`;
            return { ok: false, code: 'ECHECKSUM', message };
          }
          return { ok: false, code: 'ECHANGED', message: failure.message };
        }
      },
      close: () => Promise.resolve(),
    };
  }

  async removeFile(name: string): Promise<void> {
    await this.s3.delete(name);
  }

  /** The bytes stay in their buffer until one PUT places them (the object appears whole, at once). */
  stageWhole(bytes: Uint8Array, release: () => void): Promise<StagedWhole> {
    const s3 = this.s3;
    const chunkSize = this.#chunkSize;
    return Promise.resolve({
      async place(file: PlacedFile): Promise<PlacedTimes> {
        try {
          const manifest = await s3.putWhole(file.name, bytes, chunkSize, {
            sha256: file.sha256,
            chunkHashes: file.chunkHashes,
            force: file.force,
            ...(file.attributes.mode === undefined ? {} : { mode: file.attributes.mode }),
            ...(file.attributes.mtime === undefined ? {} : { mtime: file.attributes.mtime }),
          });
          return { created: manifest.created, modified: manifest.modified };
        } finally {
          release();
        }
      },
      discard: () => Promise.resolve(release()),
    });
  }

  expireAbandoned(cutoff: number): Promise<string[]> {
    return this.s3.expireUploads(cutoff);
  }

  /** Forgets what it kept of an upload that was published or dropped. */
  forget(sessionId: string): void {
    this.#uploads.delete(sessionId);
  }

  async #uploadOf(session: UploadSessionRecord): Promise<S3UploadManifest | undefined> {
    const known = this.#uploads.get(session.id);
    if (known) return known;
    const found = await this.s3.findUpload(session.name);
    if (!found || found.id !== session.id) return undefined;
    this.#uploads.set(session.id, found);
    return found;
  }
}

class S3UploadBytes implements UploadBytes {
  readonly #owner: S3ByteStore;
  readonly #workers: ChunkWorkers;
  readonly #upload: S3UploadManifest;

  constructor(owner: S3ByteStore, workers: ChunkWorkers, upload: S3UploadManifest) {
    this.#owner = owner;
    this.#workers = workers;
    this.#upload = upload;
  }

  async writeChunk(task: ChunkWrite): Promise<WriteChunkResult> {
    const { buffer, offset, length } = task;
    const upload = this.#upload;
    let checked: WriteChunkResult;
    if (task.packed) {
      // Unpacked (into its own buffer) and checked on a chunk thread: the part holds the raw bytes.
      checked = await this.#workers.writeChunk({ ...task, fd: undefined });
      if (!checked.ok) return checked;
    } else {
      const xxh64 = this.#workers.xxh64(new Uint8Array(buffer, 0, length));
      if (task.xxh64 !== undefined && xxh64 !== task.xxh64) {
        return {
          ok: false,
          code: 'ECHECKSUM',
          message: `chunk at offset ${offset} has xxh64 ${xxh64ToHex(xxh64)}, its frame said ${xxh64ToHex(task.xxh64)}`,
        };
      }
      checked = { ok: true, xxh64 };
    }
    try {
      // Its index and length were checked against the upload as its header came (and writePart checks them again).
      await this.#owner.s3.writePart(upload, offset / upload.chunkSize, new Uint8Array(buffer, 0, length));
    } catch (error) {
      return { ok: false, code: 'EIO', message: error instanceof Error ? error.message : String(error) };
    }
    return checked;
  }

  async sync(progress: UploadProgress | undefined): Promise<void> {
    // Each part is durable in the store once written: what is left to keep is the progress.
    if (!progress) return;
    const upload = this.#upload;
    // From a stream, the chunks known grow as they come.
    const length = Math.max(upload.chunks.length, ...[...progress.chunks.keys()].map((index) => index + 1));
    upload.chunks = Array.from({ length }, (_, index) => {
      const xxh64 = progress.chunks.get(index);
      return xxh64 === undefined ? null : xxh64ToHex(xxh64);
    });
    if (progress.hash) {
      upload.hashedChunks = progress.hash.next;
      upload.sha256State = progress.hash.state;
    }
    await this.#owner.s3.saveUpload(upload);
  }

  hashStored(): Promise<undefined> {
    // An unfinished multipart upload cannot be read back.
    return Promise.resolve(undefined);
  }

  async place(file: PlacedFile): Promise<PlacedTimes> {
    if (this.#upload.streamed) {
      // A stream's size is known now: the upload is of exactly the chunks that make it.
      this.#upload.size = file.size;
      this.#upload.chunks = file.chunkHashes.map(xxh64ToHex);
    }
    const manifest = await this.#owner.s3.publish(this.#upload, {
      sha256: file.sha256,
      chunkHashes: file.chunkHashes,
      force: file.force,
      ...(file.attributes.mode === undefined ? {} : { mode: file.attributes.mode }),
      ...(file.attributes.mtime === undefined ? {} : { mtime: file.attributes.mtime }),
    });
    this.#owner.forget(this.#upload.id);
    return { created: manifest.created, modified: manifest.modified };
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
