import { randomBytes } from 'node:crypto';
import { FerryError } from '../protocol/errors.js';
import { type ChunkHeader, rawLengthOf } from '../protocol/frames.js';
import type { WriteChunkTask } from '../../workers/tasks.js';
import {
  type FileAttributes,
  type StoredFile,
  type TransferLogRecord,
  type UploadSessionRecord,
  chunkCountOf,
  chunkLengthOf,
} from '../store/records.js';
import { fromSystemError } from '../system-errors.js';
import type { UploadBytes, UploadProgress } from './byte-store.js';
import { InOrderHasher } from './in-order-hasher.js';
import type { ServerServices } from './services.js';
import { publishInPlace } from './publish.js';
import type { ActiveUpload, ClaimedUpload } from './upload-registry.js';

/**
 * A received chunk for `write`: where it goes, and the sender's xxh64 of it, which the writer
 * checks; a chunk that came without one (a tus body) gets the one the writer computes.
 */
/** A received chunk: `length` bytes of the file at `offset`; in the buffer as they are, or `packed`. */
export type ChunkToWrite = Pick<WriteChunkTask, 'offset' | 'length' | 'xxh64' | 'packed'>;

/**
 * Per server, the uploads that more connections may send chunks to (parallel streams, a `put`
 * with `joinable`), each under a random key that only the client that made the `put` learns.
 */
const joinableByServer = new WeakMap<ServerServices, Map<string, UploadTransfer>>();

/**
 * One upload attached to one connection: receives verified-to-be chunks, has the pool check and
 * write them into the partial file (open for the upload's whole life), and records them in LMDB in
 * checkpoints, always after their bytes are synced (docs/design.md, "Durability"). Lives from
 * `put` to `putEnd` or to the connection's end.
 */
export class UploadTransfer implements ActiveUpload {
  readonly stream: number;
  /** The upload comes from a stream of unknown size: chunks in order, the size fixed by `finish` (see ClaimedUpload). */
  readonly streamed: boolean;
  readonly startedAt = Date.now();
  /** Chunks recorded in LMDB: written, synced, recorded (at putEnd, the last ones only synced: they are published in one commit). */
  readonly verified: Map<number, bigint>;
  /** Whether the client asked to replace an existing file of the same name. */
  readonly force: boolean;
  /** Settles when this upload no longer holds its name (finished, failed or detached). */
  readonly released: Promise<void>;
  /** Bytes of chunk payload received on this attachment (re-sent bytes included). */
  bytesReceived = 0;
  /** Set once `putEnd` began: the upload is being verified and published and cannot be taken over. */
  finishing = false;
  readonly #services: ServerServices;
  /** The upload's bytes in the store (on disk: the partial file), open from attach to release. */
  readonly #bytes: UploadBytes;
  /** Chunks written but not yet synced and recorded. */
  readonly #unsynced = new Map<number, bigint>();
  /** Chunks synced at `putEnd` without being recorded (the publish commit makes records moot). */
  readonly #syncedUnrecorded: [number, bigint][] = [];
  #unsyncedBytes = 0;
  /** Bytes in the checkpoint now running (synced but not yet recorded, or being synced). */
  #checkpointingBytes = 0;
  /** Distinct bytes of the file this session has received: what it counts against the quota. */
  #receivedBytes = 0;
  readonly #recordedListeners = new Set<() => void>();
  /** Chunk writes in flight, and the last write of each index being written (the hasher asks which are). */
  #inflight = 0;
  readonly #writing = new Map<number, Promise<void>>();
  #idle: (() => void)[] = [];
  #checkpoint: Promise<void> = Promise.resolve();
  #checkpointTimer: NodeJS.Timeout | undefined;
  #failure: FerryError | undefined;
  /** Set once the upload detached from its connection: settles once its progress is saved. */
  #detached: Promise<void> | undefined;
  #resolveReleased!: () => void;
  #releasedYet = false;
  /** The session was dropped at putEnd (its SHA-256 did not match): nothing of it is to be recorded. */
  #discarded = false;
  /** Feeds written chunks to the session's running SHA-256, in order. */
  readonly #hasher: InOrderHasher;
  readonly #onFailure: (error: FerryError) => void;
  #session: UploadSessionRecord;
  #chunkCount: number;
  /** Of a streamed upload: where its next chunk must start, and whether a short (so last) chunk came. */
  #streamedBytes = 0;
  #streamEnded = false;
  /** The file was published: nothing of a streamed session is left to drop. */
  #published = false;

  private constructor(
    services: ServerServices,
    bytes: UploadBytes,
    stream: number,
    claim: ClaimedUpload,
    force: boolean,
    onFailure: (error: FerryError) => void,
  ) {
    this.force = force;
    this.released = new Promise((resolve) => {
      this.#resolveReleased = resolve;
    });
    this.#services = services;
    this.#bytes = bytes;
    this.stream = stream;
    this.#session = claim.session;
    this.streamed = claim.streamed;
    this.verified = claim.verified;
    this.#chunkCount = chunkCountOf(claim.session.size, claim.session.chunkSize);
    this.#onFailure = onFailure;
    for (const index of claim.verified.keys()) this.#receivedBytes += this.#lengthOf(index);
    // Chunks that land past a gap (parallel streams) are read back from the partial file at their turn, where it can be read.
    const readBack = bytes.read && { chunkBytes: claim.session.chunkSize, read: bytes.read.bind(bytes) };
    this.#hasher = new InOrderHasher(claim.hashState, (index) => this.#writing.has(index), services.buffers, readBack);
  }

  /** Opens the claimed session's bytes (its partial file) and makes the upload that writes them. */
  static async open(
    services: ServerServices,
    stream: number,
    claim: ClaimedUpload,
    force: boolean,
    onFailure: (error: FerryError) => void,
  ): Promise<UploadTransfer> {
    if (!services.descriptors.take()) throw new FerryError('EBUSY', 'the server has too many files open; try again later');
    let bytes: UploadBytes;
    try {
      bytes = await services.bytes.openUpload(claim.session);
    } catch (error) {
      services.descriptors.release();
      throw fromSystemError(error, `opening the partial file of ${claim.session.name}`);
    }
    return new UploadTransfer(services, bytes, stream, claim, force, onFailure);
  }

  /**
   * Written bytes not yet recorded in LMDB: what a `kill -9` now would make the client send again.
   * The connection stops reading this upload's chunks while it is at `2 * syncEveryBytes`.
   */
  get durabilityLagBytes(): number {
    return this.#unsyncedBytes + this.#checkpointingBytes;
  }

  get lagging(): boolean {
    return this.durabilityLagBytes >= 2 * this.#services.config.syncEveryBytes;
  }

  /** Calls `listener` once, after the next checkpoint has recorded its chunks. */
  onceRecorded(listener: () => void): void {
    this.#recordedListeners.add(listener);
  }

  get failed(): FerryError | undefined {
    return this.#failure;
  }

  /**
   * Lets other connections send chunks of this upload (`putJoin`): returns the key they give, which
   * joins nothing once the upload lets go of its name.
   */
  joinable(): string {
    let byKey = joinableByServer.get(this.#services);
    if (!byKey) joinableByServer.set(this.#services, (byKey = new Map<string, UploadTransfer>()));
    const key = randomBytes(16).toString('hex');
    byKey.set(key, this);
    void this.released.then(() => byKey.delete(key));
    return key;
  }

  /** The upload of this server under `key`, if it still takes chunks and belongs to `owner`. */
  static joinedBy(services: ServerServices, key: string, owner: string): UploadTransfer | undefined {
    const upload = joinableByServer.get(services)?.get(key);
    return upload?.accepting && upload.session.owner === owner ? upload : undefined;
  }

  /** Whether chunks are still taken: not failed, finishing, detached or released (a joined connection's chunks check this). */
  get accepting(): boolean {
    return !this.#failure && !this.finishing && !this.#detached && !this.#releasedYet;
  }

  get session(): UploadSessionRecord {
    return this.#session;
  }

  /** Chunks of the file (of a streamed upload before `finish`: the most it may have). */
  get chunkCount(): number {
    return this.#chunkCount;
  }

  /** Checks a CHUNK header against this upload; returns the chunk index. */
  indexOf(header: ChunkHeader): number {
    if (this.streamed) return this.#streamedIndexOf(header);
    const { chunkSize, size } = this.session;
    const index = header.offset / chunkSize;
    if (!Number.isInteger(index) || index >= this.chunkCount) {
      throw new FerryError('EPROTO', `chunk offset ${header.offset} is not a chunk boundary of this ${size}-byte upload`);
    }
    const expected = this.#lengthOf(index);
    if (rawLengthOf(header) !== expected) {
      throw new FerryError('EPROTO', `chunk ${index} has ${rawLengthOf(header)} bytes, expected ${expected}`);
    }
    return index;
  }

  /**
   * A streamed upload's chunks come in order, each a whole chunk but the last: one at the next
   * offset, none after a short one. (Its size limit is checked as the data lands, in `write`.)
   */
  #streamedIndexOf(header: ChunkHeader): number {
    const { chunkSize } = this.session;
    if (this.#streamEnded) {
      throw new FerryError('EPROTO', `chunk at offset ${header.offset} after the short chunk that ended this stream`);
    }
    if (header.offset !== this.#streamedBytes) {
      throw new FerryError(
        'EPROTO',
        `chunks of an upload from a stream come in order: expected offset ${this.#streamedBytes}, got ${header.offset}`,
      );
    }
    const length = rawLengthOf(header);
    if (length < 1 || length > chunkSize) {
      throw new FerryError('EPROTO', `chunk at offset ${header.offset} has ${length} bytes, expected 1 to ${chunkSize}`);
    }
    this.#streamedBytes += length;
    this.#streamEnded = length < chunkSize;
    return header.offset / chunkSize;
  }

  /**
   * Hands a received chunk to the pool. The buffer goes back to the budget when the worker is
   * done; the promise settles then (it never rejects: failures fail the upload instead). A chunk
   * new to the session is counted against the quota first (EQUOTA fails the upload). A second
   * copy of a chunk whose first copy is still being written waits for it: copies of one chunk are
   * written one after the other, in the order they arrived, so the last one sent is the one on
   * disk and in the records. The xxh64 recorded is the one the writer checked (or computed).
   */
  write(index: number, header: ChunkToWrite, buffer: SharedArrayBuffer): Promise<void> {
    if (!this.accepting) {
      // A joined connection's chunk that came after the upload stopped taking any: dropped.
      this.#services.buffers.release(buffer);
      return Promise.resolve();
    }
    if (!this.verified.has(index) && !this.#unsynced.has(index) && !this.#writing.has(index)) {
      try {
        const limit = Math.min(this.#services.config.maxFileSizeBytes, this.#services.bytes.maxFileBytes ?? Infinity);
        if (this.streamed && header.offset + header.length > limit) {
          throw new FerryError('EQUOTA', `${this.session.name}: more than this server's file size limit of ${limit} bytes`);
        }
        this.#services.uploads.chargeReceived(this.session, this.#receivedBytes + header.length);
      } catch (error) {
        this.#services.buffers.release(buffer);
        this.#fail(error as FerryError);
        return Promise.resolve();
      }
      this.#receivedBytes += header.length;
    }
    this.bytesReceived += header.length;
    this.#inflight += 1;
    const earlier = this.#writing.get(index);
    const written = earlier ? earlier.then(() => this.#writeNow(index, header, buffer)) : this.#writeNow(index, header, buffer);
    this.#writing.set(index, written);
    return written.finally(() => {
      if (this.#writing.get(index) === written) this.#writing.delete(index);
      this.#hasher.writeEnded();
      this.#inflight -= 1;
      if (this.#inflight === 0) for (const wake of this.#idle.splice(0)) wake();
    });
  }

  #writeNow(index: number, header: ChunkToWrite, buffer: SharedArrayBuffer): Promise<void> {
    const { buffers } = this.#services;
    const task = { offset: header.offset, length: header.length, xxh64: header.xxh64, packed: header.packed, buffer };
    return this.#bytes.writeChunk(task).then(
      (result) => {
        if (!result.ok) {
          buffers.release(buffer);
          this.#fail(new FerryError(result.code, result.message));
          return;
        }
        this.#hasher.add(index, buffer, header.length);
        this.verified.delete(index);
        this.#unsynced.set(index, result.xxh64);
        this.#unsyncedBytes += header.length;
        this.#maybeCheckpoint();
      },
      (error: unknown) => {
        // The worker itself failed (not the task): nobody uses the buffer any more.
        buffers.release(buffer);
        this.#fail(new FerryError('EINTERNAL', `chunk worker failed: ${String(error)}`));
      },
    );
  }

  /**
   * Waits for every chunk in flight, then syncs what was written, and records it in LMDB unless
   * `record` is false: `finish` publishes the file in one commit instead, so recording chunks the
   * session is about to drop would only cost a commit.
   */
  async settle({ record = true }: { record?: boolean } = {}): Promise<void> {
    if (this.#inflight > 0) await new Promise<void>((resolve) => this.#idle.push(resolve));
    this.#hasher.stopWaiting();
    clearTimeout(this.#checkpointTimer);
    this.#checkpointTimer = undefined;
    await this.#queueCheckpoint(record);
  }

  /**
   * Ends the upload's attachment to its connection: its chunks in flight land and are recorded,
   * then its name is free for the next `put` (which resumes the session). Settles then.
   */
  detach(): Promise<void> {
    this.#detached ??= this.settle().finally(() => this.release());
    return this.#detached;
  }

  /**
   * Verifies the whole file and makes it visible under its name. Durable on return. `sha256` is
   * the client's: the bytes must have it (a client that gave none, a tus upload without a sha256,
   * gets the file as it arrived, each chunk checked on the way). `size` is the
   * client's word for the file's size: required of a streamed upload (it fixes the size), checked
   * against the declared size otherwise.
   */
  async finish(
    sha256: string | undefined,
    size: number | undefined,
    logEntry: () => TransferLogRecord,
    attributes: FileAttributes = {},
  ): Promise<StoredFile> {
    this.finishing = true;
    await this.settle({ record: false });
    try {
      this.#fixSize(size);
      return await this.#publish(sha256, logEntry, attributes);
    } catch (error) {
      // Not published: the chunks synced just now are recorded after all, so a resume keeps them
      // (unless the session was discarded: its SHA-256 did not match).
      if (!this.#discarded && this.#syncedUnrecorded.length > 0) {
        await this.#services.store.recordChunks(this.session, this.#syncedUnrecorded).catch((recordError: unknown) => {
          // The chunks stay on disk; a resume sends them again. The putEnd failure is what the client hears.
          this.#services.logger.warn(
            { err: recordError, name: this.session.name },
            'upload: recording chunks after a failed putEnd failed',
          );
        });
      }
      throw error;
    }
  }

  /** Checks `putEnd`'s size; a streamed upload's size is what it sent, and becomes its size. */
  #fixSize(size: number | undefined): void {
    if (!this.streamed) {
      if (size !== undefined && size !== this.session.size) {
        throw new FerryError('EPROTO', `putEnd says ${size} bytes, but the put of ${this.session.name} declared ${this.session.size}`);
      }
      return;
    }
    if (size === undefined) throw new FerryError('EPROTO', `putEnd of ${this.session.name}, an upload from a stream, needs its size`);
    if (size !== this.#streamedBytes) {
      throw new FerryError('EPROTO', `putEnd says ${size} bytes, but ${this.#streamedBytes} were sent on the stream`);
    }
    this.#session = { ...this.#session, size };
    this.#chunkCount = chunkCountOf(size, this.#session.chunkSize);
  }

  async #publish(sha256: string | undefined, logEntry: () => TransferLogRecord, attributes: FileAttributes): Promise<StoredFile> {
    if (this.#failure) throw this.#failure;
    const missing = this.chunkCount - this.verified.size;
    if (missing > 0) throw new FerryError('EINCOMPLETE', `${missing} of ${this.chunkCount} chunks have not been received`);
    const { uploads } = this.#services;
    const { sha256: stored, chunkHashes } = await this.#writtenContent();
    if (sha256 !== undefined && stored !== sha256) {
      // The verified chunks do not add up to the client's file: nothing here can be trusted.
      this.#discarded = true;
      // A streamed session goes when its upload is released.
      if (!this.streamed) await uploads.dropSession(this.session);
      throw new FerryError('ECHECKSUM', `sha256 mismatch: the client sent ${sha256}, the server has ${stored}; start the upload again`);
    }
    return uploads.exclusive(this.session.name, () => this.#putInPlace(stored, chunkHashes, logEntry, attributes));
  }

  /** Renames the verified partial file to its name and records it (no delete of the name runs meanwhile). */
  async #putInPlace(
    sha256: string,
    chunkHashes: bigint[],
    logEntry: () => TransferLogRecord,
    attributes: FileAttributes,
  ): Promise<StoredFile> {
    const { name, size, chunkSize } = this.session;
    const { file, replacedBytes } = await publishInPlace(this.#services, {
      bytes: this.#bytes,
      name,
      size,
      sha256,
      chunkSize,
      chunkHashes,
      force: this.force,
      attributes,
      session: this.streamed ? undefined : this.session,
      logEntry,
    });
    this.#published = true;
    this.#services.uploads.published(this.session, replacedBytes);
    return file;
  }

  /**
   * The SHA-256 of the bytes written and the xxh64 of each chunk, as the record will keep them.
   * From the running hash when every chunk was fed to it in order, exactly once (the usual case):
   * then each recorded xxh64 was checked on the very buffer that was written and hashed. Otherwise
   * (after a restart, chunks out of order or sent twice) from one pass over the partial file: the
   * chunk hashes are then taken from the bytes themselves, so whatever raced, the record describes
   * the file that the SHA-256 verifies, and a published file can always be served.
   */
  async #writtenContent(): Promise<{ sha256: string; chunkHashes: bigint[] }> {
    const running = await this.#hasher.digest(this.chunkCount);
    if (running !== undefined) {
      return { sha256: running, chunkHashes: Array.from({ length: this.chunkCount }, (_, index) => this.verified.get(index)!) };
    }
    const { size, chunkSize, name } = this.session;
    const hashed = await this.#bytes.hashStored(size, chunkSize);
    if (!hashed) {
      // The store cannot give back what it holds of an unfinished upload (S3): without the running
      // hash, nothing can vouch for the whole file. Rare (chunks out of order); the client starts over.
      this.#discarded = true;
      await this.#services.uploads.dropSession(this.session);
      throw new FerryError('EINCOMPLETE', `${name}: the running SHA-256 of this upload was lost; start the upload again`);
    }
    if (!hashed.ok) throw new FerryError(hashed.code, hashed.message);
    const differing = hashed.chunkHashes.filter((xxh64, index) => this.verified.get(index) !== xxh64).length;
    if (differing > 0) {
      this.#services.logger.warn(
        { name, chunks: differing },
        'upload: chunk records did not describe the bytes written; the file is recorded with the hashes of its bytes',
      );
    }
    return hashed;
  }

  /**
   * Lets go of the name, so the next `put` of it can proceed, and closes the partial file. Of a
   * streamed upload not published, the partial data goes too (a stream cannot be sent again):
   * the promise settles once it has.
   */
  release(): Promise<void> {
    if (this.#releasedYet) return Promise.resolve();
    this.#releasedYet = true;
    this.#services.uploads.release(this);
    let dropped = Promise.resolve();
    if (this.streamed && !this.#published) dropped = this.#services.uploads.dropStreamed(this.session);
    else this.#services.uploads.detached(this.session);
    this.#resolveReleased();
    // Every write has settled by now (settle() ran before each caller of release): the descriptor is free to close.
    this.#bytes
      .close()
      .catch((error: unknown) =>
        this.#services.logger.warn({ err: error, name: this.session.name }, 'upload: closing the partial file failed'),
      )
      .finally(() => this.#services.descriptors.release());
    return dropped;
  }

  /** Fails the upload: the connection is told (an `abort` event) and lets it go. */
  abort(error: FerryError): void {
    this.#fail(error);
  }

  #fail(error: FerryError): void {
    if (this.#failure) return;
    this.#failure = error;
    this.#onFailure(error);
  }

  #lengthOf(index: number): number {
    return chunkLengthOf(index, this.session.size, this.session.chunkSize);
  }

  #maybeCheckpoint(): void {
    const { syncEveryBytes, syncIntervalMs } = this.#services.config;
    if (this.#unsyncedBytes >= syncEveryBytes) {
      clearTimeout(this.#checkpointTimer);
      this.#checkpointTimer = undefined;
      void this.#queueCheckpoint();
    } else if (!this.#checkpointTimer) {
      this.#checkpointTimer = setTimeout(() => {
        this.#checkpointTimer = undefined;
        void this.#queueCheckpoint();
      }, syncIntervalMs);
    }
  }

  /** Runs checkpoints one after another; a failed one fails the upload, never the server. */
  #queueCheckpoint(record = true): Promise<void> {
    this.#checkpoint = this.#checkpoint
      .then(() => this.#runCheckpoint(record))
      .catch((error: unknown) => {
        this.#fail(fromSystemError(error, `syncing and recording chunks of ${this.session.name}`));
      });
    return this.#checkpoint;
  }

  /**
   * For a store that keeps an upload's progress with its bytes: the chunks it will hold once
   * synced, and the running hash's state (which the hashing thread gives once it has them all).
   */
  #progressToKeep(batch: [number, bigint][]): { chunks: Map<number, bigint>; hash: ReturnType<InOrderHasher['saved']> } | undefined {
    if (!this.#services.bytes.keepsProgress || this.streamed) return undefined;
    const chunks = new Map(this.verified);
    for (const [index, xxh64] of batch) chunks.set(index, xxh64);
    return { chunks, hash: this.#hasher.saved() };
  }

  static async progressOf(taken: { chunks: Map<number, bigint>; hash: ReturnType<InOrderHasher['saved']> }): Promise<UploadProgress> {
    const state = await taken.hash?.state;
    return { chunks: taken.chunks, hash: state === undefined ? undefined : { next: taken.hash!.next, state } };
  }

  // Durability order: the bytes are written (by the worker), then synced here, then recorded in
  // LMDB. A record never runs ahead of the data on disk. The sync runs on libuv's thread pool, not
  // in a chunk worker: it waits on the disk, and must not hold up other uploads' writes meanwhile.
  async #runCheckpoint(record: boolean): Promise<void> {
    if (this.#unsynced.size === 0) return;
    const batch = [...this.#unsynced];
    // Taken in the same tick as the batch: every chunk the running hash has had is in one or the other.
    const taken = this.#progressToKeep(batch);
    this.#unsynced.clear();
    this.#checkpointingBytes = this.#unsyncedBytes;
    this.#unsyncedBytes = 0;
    try {
      await this.#bytes.sync(taken && (await UploadTransfer.progressOf(taken)));
      // A streamed session is never saved: its chunks are not recorded (nothing could resume them).
      if (record && !this.streamed) await this.#services.store.recordChunks(this.session, batch);
      else if (!this.streamed) this.#syncedUnrecorded.push(...batch);
      // A chunk written again meanwhile is left to the checkpoint of its newer copy.
      for (const [index, xxh64] of batch) if (!this.#unsynced.has(index) && !this.#writing.has(index)) this.verified.set(index, xxh64);
    } finally {
      this.#checkpointingBytes = 0;
      const listeners = [...this.#recordedListeners];
      this.#recordedListeners.clear();
      for (const listener of listeners) listener();
    }
  }
}
