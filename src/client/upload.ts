import { capability } from '../protocol/capabilities.js';
import { type FileHandle, open } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { FerryError } from '../protocol/errors.js';
import { fromSystemError } from '../system-errors.js';
import { xxh64FromHex } from '../protocol/frames.js';
import { maxHashesPageEntries } from '../protocol/limits.js';
import type { FileInfo, PutResult } from '../protocol/messages.js';
import type { ClientConnection } from './connection.js';
import { LocalFileReading } from './local-file-reading.js';
import { putWhole, readWholeFile } from './whole-put.js';
import { uploadChunkBudget } from './chunk-budget.js';
import { isRetryable } from './retry.js';
import type { ProgressListener, StartListener } from './progress.js';
import { loadXxh64 } from '../hashing/xxh64.js';
import { sharedCodecThreads } from '../compression/codec-threads.js';
import { type CompressChoice, packingFor } from '../compression/negotiation.js';
import { type PackTicket, type PolicyPacking, connectionPacking } from '../compression/packing-policy.js';
import type { ChunkHeader } from '../protocol/frames.js';
import { UploadLanes } from './upload-lanes.js';

export interface UploadOptions {
  /** Remote name; defaults to the local file's base name. */
  name: string;
  force?: boolean;
  onProgress?: ProgressListener;
  /** Called once the server has said what it already holds, before any chunk is sent. */
  onStart?: StartListener;
  /** Called with the file's SHA-256 just before `putEnd` is sent. */
  onFinishing?: (sha256: string) => void;
  /**
   * What earlier attempts of this upload read of the file, to go on from (the client passes one
   * per upload, across its retries); without it the attempt reads and hashes the whole file.
   */
  reading?: LocalFileReading;
  /** Whether chunks go compressed (default `auto`: when that is measured to pay). */
  compress?: CompressChoice;
  /** Connections to send the chunks on at once (parallel streams; default 1): used if the server and the file allow. */
  streams?: number;
  /** Opens another connection to the same server as the same user: for `streams`. */
  openConnection?: () => Promise<ClientConnection>;
  /** Says what the user should know that is not an error (fewer streams than asked). */
  onNotice?: (text: string) => void;
}

export interface UploadResult {
  name: string;
  size: number;
  sha256: string;
  /** File bytes sent in this run (what a resume saved does not count). */
  bytesSent: number;
  /** Payload bytes that carried them: fewer than `bytesSent` when chunks went compressed. */
  wireBytes: number;
  resumed: boolean;
  /** Set when nothing was sent because the server already holds this content under the name (`force` only). */
  skipped?: true;
  file: FileInfo;
}

/**
 * Chunks of one upload in flight at once (on one connection; more with parallel streams): one
 * being read while others are on the wire and being hashed. Their buffers come from the process's
 * shared budget (`uploadChunkBudget`), in shared memory, so the hashing thread reads them in place
 * while the socket sends them.
 */
const chunksInFlight = 4;
const fingerprintBytes = 64 * 1024;
/** While nothing is sent (chunks the server already has), a `ping` this often keeps the link alive. */
const keepaliveMs = 5000;

/**
 * The identity of a local file for resuming: its size plus the xxh64 of its first and last
 * 64 KiB. Cheap to compute; a change elsewhere is caught by the per-chunk comparison.
 */
async function fingerprintOf(handle: FileHandle, size: number, xxh64: (bytes: Uint8Array) => bigint): Promise<string> {
  const head = Buffer.alloc(Math.min(size, fingerprintBytes));
  await handle.read(head, 0, head.length, 0);
  // A file no bigger than the ends is its own head and tail: one read, not two.
  const tail = size <= fingerprintBytes ? head : Buffer.alloc(fingerprintBytes);
  if (tail !== head) await handle.read(tail, 0, tail.length, size - tail.length);
  const headHash = xxh64(head).toString(16);
  return `v1:${size}:${headHash}:${tail === head ? headHash : xxh64(tail).toString(16)}`;
}

/** What the server already holds: chunk index -> xxh64, read page by page. */
async function serverChunkHashes(connection: ClientConnection, stream: number, verified: [number, number][]): Promise<Map<number, bigint>> {
  const hashes = new Map<number, bigint>();
  for (const [start, end] of verified) {
    for (let from = start; from < end; from += maxHashesPageEntries) {
      const page = await connection.request('hashes', { stream, from, count: Math.min(maxHashesPageEntries, end - from) });
      page.hashes.forEach((hex, offset) => {
        if (hex !== null) hashes.set(page.from + offset, xxh64FromHex(hex));
      });
    }
  }
  return hashes;
}

/** Bytes of the file the server already holds verified, from the `put` reply's chunk ranges. */
function heldBytes(put: PutResult, size: number): number {
  let bytes = 0;
  for (const [start, end] of put.verified) bytes += Math.max(0, Math.min(size, end * put.chunkSize) - start * put.chunkSize);
  return bytes;
}

/**
 * The chunks of an upload between being read and being done with (hashed, and flushed to the
 * socket if sent): at most `size` at once, whichever finish first (with parallel streams, a chunk
 * on a slow connection does not hold up the others). The first failure of one is kept.
 */
class ChunksInFlight {
  readonly #size: number;
  #count = 0;
  #waiters: (() => void)[] = [];
  failure: Error | undefined;

  constructor(size: number) {
    this.#size = size;
  }

  /** Waits for room for one more chunk. */
  async take(): Promise<void> {
    while (this.#count >= this.#size) await new Promise<void>((resolve) => this.#waiters.push(resolve));
    this.#count += 1;
  }

  /** The chunk taken is done with once `done` settles (its failure is kept). */
  release(done: Promise<unknown>): void {
    void done
      .catch((error: unknown) => {
        this.failure ??= error instanceof Error ? error : new FerryError('EINTERNAL', String(error));
      })
      .finally(() => {
        this.#count -= 1;
        this.#waiters.shift()?.();
      });
  }
}

/** A chunk's buffer from the budget: the shared memory, and a Buffer over it. */
interface ChunkBuffer {
  shared: SharedArrayBuffer;
  buffer: Buffer;
}

/**
 * Uploads (or resumes uploading) one local file. One pass over the file: every chunk is read,
 * hashed with xxh64, fed to the SHA-256 (on the hashing thread, while it is sent), and sent
 * unless the server already has a chunk with that hash at that index. A chunk an earlier attempt
 * read (`options.reading`) is not hashed again, nor even read when the server has it.
 */
export async function uploadFile(connection: ClientConnection, path: string, options: UploadOptions): Promise<UploadResult> {
  const xxh64 = await loadXxh64();
  // Settled before anything is asked of the server: a codec it lacks fails the upload here, not half-way.
  // One policy for every upload on the connection: the files of a folder measure its link together.
  const packing = connectionPacking(connection, packingFor(options.compress ?? 'auto', connection.hello.capabilities));
  const force = options.force ?? false;
  const attributesOf = (stats: Stats): { mode?: number; mtime?: number } =>
    connection.hello.capabilities.includes(capability.fileAttributes)
      ? { mode: stats.mode & 0o7777, mtime: Math.round(stats.mtimeMs) }
      : {};
  const whole = readWholeFile(path, connection.hello);
  if (whole) {
    const { file, wireBytes } = await putWhole(
      connection,
      whole.bytes,
      { ...options, force, attributes: attributesOf(whole.stats), packing },
      xxh64,
    );
    const { name, size, sha256 } = file;
    return { name, size, sha256, bytesSent: size, wireBytes, resumed: false, file };
  }
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    throw fromSystemError(error, `local file ${path}`);
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) throw new FerryError('EBADNAME', `${path}: not a regular file`);
    const attributes = attributesOf(stats);
    const fingerprint = await fingerprintOf(handle, stats.size, xxh64);
    const joinable = joinableUpload(options, connection, stats.size);
    const put = await connection.request('put', {
      name: options.name,
      size: stats.size,
      fingerprint,
      force,
      ...(joinable ? { joinable } : {}),
    });
    options.onStart?.({ name: options.name, from: heldBytes(put, stats.size), total: stats.size });
    const attempt = new UploadAttempt(connection, handle, path, stats.size, put, { ...options, attributes, packing }, xxh64);
    return await attempt.run(fingerprint);
  } finally {
    await handle.close();
  }
}

/** Fewer chunks than this per stream and more streams are not worth their connections. */
const minChunksPerStream = 2;

/** Whether an upload of `size` bytes asks for other connections to join it: `streams` asked, a server that can, a file that is big enough. */
function joinableUpload(options: UploadOptions, connection: ClientConnection, size: number): true | undefined {
  const streams = options.streams ?? 1;
  if (streams <= 1 || !options.openConnection || !connection.hello.capabilities.includes(capability.putJoin)) return undefined;
  return size >= minChunksPerStream * 2 * connection.hello.chunkSize ? true : undefined;
}

/** How many connections an attempt sends on: as asked, if the chunks left to send allow. */
function streamsFor(asked: number, put: PutResult, size: number): number {
  const chunks = Math.ceil(size / put.chunkSize) - put.verified.reduce((sum, [start, end]) => sum + end - start, 0);
  return Math.max(1, Math.min(asked, Math.floor(chunks / minChunksPerStream)));
}

/** An attempt's options: the user's, with what was learned of the file and the server. */
type AttemptOptions = UploadOptions & { attributes: { mode?: number; mtime?: number }; packing: PolicyPacking | undefined };

/**
 * One attempt at an upload the server has accepted (`put` answered): sends what the server lacks
 * and finishes with `putEnd`. The client's mirror of the server's UploadTransfer.
 */
class UploadAttempt {
  readonly #connection: ClientConnection;
  readonly #handle: FileHandle;
  readonly #path: string;
  readonly #size: number;
  readonly #put: PutResult;
  readonly #options: AttemptOptions;
  /** When chunks may go compressed: the codec, and whether to pack the next one. */
  readonly #packing: PolicyPacking | undefined;
  /** Settles when the last chunk has been handed to the socket: packed chunks are packed in parallel but sent in order. */
  #sendTurn: Promise<void> = Promise.resolve();
  /** Why a chunk could not be packed (a codec thread failed), if one could not. */
  #packFailure: FerryError | undefined;
  readonly #xxh64: (bytes: Uint8Array) => bigint;
  /** What earlier attempts of this upload read is kept (see LocalFileReading); alone, this attempt reads everything. */
  readonly #reading: LocalFileReading;
  /** Set when the server aborts the stream (a bad chunk, a full disk): the reason. */
  #aborted: FerryError | undefined;
  #bytesSent = 0;
  #wireBytes = 0;
  #lastSentAt = Date.now();
  /** The connections the chunks go out on: the upload's own, and any that joined it. */
  #lanes: UploadLanes;
  /** Chunks read and not yet done with (set when the lanes are known). */
  #inFlight = new ChunksInFlight(chunksInFlight);

  constructor(
    connection: ClientConnection,
    handle: FileHandle,
    path: string,
    size: number,
    put: PutResult,
    options: AttemptOptions,
    xxh64: (bytes: Uint8Array) => bigint,
  ) {
    this.#packing = options.packing;
    this.#connection = connection;
    this.#handle = handle;
    this.#path = path;
    this.#size = size;
    this.#put = put;
    this.#options = options;
    this.#xxh64 = xxh64;
    this.#reading = options.reading ?? new LocalFileReading();
    this.#lanes = UploadLanes.single(connection, put.stream);
  }

  async run(fingerprint: string): Promise<UploadResult> {
    const { stream, chunkSize } = this.#put;
    const onServer = await serverChunkHashes(this.#connection, stream, this.#put.verified);
    this.#connection.openStream(stream, {
      chunkStart() {},
      chunkData() {},
      chunkEnd() {},
      fail: (error) => {
        this.#aborted = error;
      },
    });
    await this.#reading.begin(this.#size, fingerprint, chunkSize);
    try {
      const { streams, openConnection, onNotice } = this.#options;
      const joinKey = this.#put.joinKey;
      const lanes = joinKey && openConnection ? streamsFor(streams ?? 1, this.#put, this.#size) : 1;
      if (lanes > 1)
        this.#lanes = await UploadLanes.open(this.#connection, { stream, joinKey: joinKey! }, lanes, openConnection!, onNotice);
      await this.#sendChunks(onServer);
      return await this.#finish();
    } catch (error) {
      // The server still holds this upload for us: hang up so it saves the progress and frees
      // the name (a later run resumes), rather than leave it attached to a connection we reuse.
      if (!this.#connection.lost) this.#connection.destroy();
      // Kept for the next attempt only while the cause may pass; a file that changed starts over.
      if (!this.#options.reading || !isRetryable(error)) this.#reading.forget();
      throw error;
    } finally {
      this.#lanes.close();
      this.#connection.closeStream(stream);
    }
  }

  /** Reads, hashes and sends every chunk the server lacks, in order, a few in flight at once. */
  async #sendChunks(onServer: Map<number, bigint>): Promise<void> {
    const { chunkSize } = this.#put;
    const size = this.#size;
    // Two chunks per lane in flight (one on the wire, one being read), and more for one lane.
    this.#inFlight = new ChunksInFlight(Math.max(chunksInFlight, 2 * this.#lanes.count + 2));
    let done = 0;
    for (let index = 0, offset = 0; offset < size; index += 1, offset += chunkSize) {
      this.#checkAlive();
      await this.#sendLost();
      const length = Math.min(chunkSize, size - offset);
      const known = this.#reading.hashOf(index);
      done += length;
      if (known !== undefined && onServer.get(index) === known) {
        // Read and hashed by an earlier attempt, and the server has it: nothing to do.
        this.#keepAlive();
      } else {
        await this.#sendChunk(index, offset, length, known, onServer.get(index));
      }
      this.#options.onProgress?.({ name: this.#options.name, done, total: size, transferred: this.#bytesSent });
    }
    // Every chunk sent on a joined lane is taken by the server (or sent again, if its lane was cut) before putEnd.
    for (;;) {
      await this.#sendTurn;
      await this.#lanes.settled();
      if (!(await this.#sendLost())) return;
    }
  }

  /** Sends again the chunks of joined lanes that were cut before the server confirmed them; whether there were any. */
  async #sendLost(): Promise<boolean> {
    const lost = this.#lanes.takeLost();
    const { chunkSize } = this.#put;
    for (const index of lost) {
      this.#checkAlive();
      const offset = index * chunkSize;
      await this.#sendChunk(index, offset, Math.min(chunkSize, this.#size - offset), this.#reading.hashOf(index), undefined);
    }
    return lost.length > 0;
  }

  /** Reads chunk `index`, checks it against what an earlier attempt read, and sends it unless the server has it. */
  async #sendChunk(index: number, offset: number, length: number, known: bigint | undefined, onServer: bigint | undefined): Promise<void> {
    await this.#inFlight.take();
    this.#checkAlive();
    // No bigger than the file needs: a small file takes a small buffer.
    let shared: SharedArrayBuffer;
    try {
      shared = await uploadChunkBudget.acquire(Math.min(this.#put.chunkSize, this.#size));
    } catch (error) {
      this.#inFlight.release(Promise.resolve());
      throw error;
    }
    const chunk: ChunkBuffer = { shared, buffer: Buffer.from(shared) };
    let hashed: Promise<unknown> = Promise.resolve();
    let flushed: Promise<unknown> = Promise.resolve();
    let sent = false;
    try {
      const bytes = chunk.buffer.subarray(0, length);
      const { bytesRead } = await this.#handle.read(bytes, 0, length, offset);
      if (bytesRead !== length) throw new FerryError('ECHANGED', `${this.#path} shrank while it was being uploaded`);
      const hash = this.#xxh64(bytes);
      if (known !== undefined && hash !== known) throw new FerryError('ECHANGED', `${this.#path} changed while it was being uploaded`);
      if (known === undefined) hashed = this.#reading.add(index, hash, shared, length);
      if (onServer !== hash) {
        this.#lastSentAt = Date.now();
        const header = { stream: this.#put.stream, offset, xxh64: hash, length };
        flushed = this.#packing ? this.#sendPackable(chunk, header, this.#packing) : this.#send(header, bytes);
        sent = true;
        this.#bytesSent += length;
      } else {
        this.#keepAlive();
      }
    } finally {
      // The buffer goes back once nothing uses it any more, whatever became of the chunk.
      void Promise.allSettled([hashed, flushed]).then(() => uploadChunkBudget.release(shared));
      // Its place goes once hashed and flushed; a failure of either shows at the next check.
      this.#inFlight.release(Promise.all([hashed, flushed]));
    }
    if (sent) await this.#lanes.room();
  }

  /** Sends a chunk as it is, on the lane with the least queued; settles once it has left. */
  #send(header: ChunkHeader, payload: Uint8Array, ticket?: PackTicket, flushed?: () => void): Promise<void> {
    this.#wireBytes += payload.byteLength;
    return new Promise<void>((resolve) => {
      const done = (): void => {
        flushed?.();
        resolve();
      };
      const index = header.offset / this.#put.chunkSize;
      const room = this.#lanes.send(index, (connection, stream) => connection.writeChunk({ ...header, stream }, payload, done));
      if (!room && ticket) this.#packing?.policy.blocked(ticket);
    });
  }

  /**
   * Sends a chunk packed if the policy says so and it shrinks enough, else raw; in order after
   * the chunks before it. Settles once it has left.
   */
  #sendPackable(slot: ChunkBuffer, header: ChunkHeader, packing: PolicyPacking): Promise<void> {
    const { codec, policy } = packing;
    const { length } = header;
    const ticket = policy.packNext(length);
    // A probe is one chunk packed as any other, to learn what packing costs and gives: timing a
    // small sample on this thread read brotli as three times slower than it packs a whole chunk.
    const packed =
      ticket.way !== 'raw'
        ? sharedCodecThreads()
            .pack(codec, slot.shared, length)
            .then(
              (result) => {
                policy.packed(result.measure);
                return result.packed;
              },
              (error: unknown) => {
                throw new FerryError('EINTERNAL', `compressing a chunk failed: ${String(error)}`);
              },
            )
        : undefined;
    packed?.catch(() => undefined); // its failure is taken up in turn, below
    // After the chunk before it, even when packing fails: chunks reach the socket in order.
    const sent = this.#sendTurn
      .then(() => packed)
      .then((bytes) => {
        const onWire = bytes ? { ...header, length: bytes.byteLength, packed: { codec, rawLength: length } } : header;
        const payload = bytes ?? slot.buffer.subarray(0, length);
        return { flushed: this.#send(onWire, payload, ticket, () => policy.flushed(ticket, payload.byteLength)) };
      });
    this.#sendTurn = sent.then(
      () => {},
      (error: unknown) => {
        policy.unsent(ticket); // the connection's policy goes on with its other transfers
        this.#packFailure ??= error as FerryError;
      },
    );
    return sent.then((each) => each.flushed);
  }

  /** Verifies the whole file with the server (`putEnd`): the SHA-256 of what was read. */
  async #finish(): Promise<UploadResult> {
    // Every chunk is on its way before putEnd is (and those of joined lanes taken: see #sendChunks).
    await this.#sendTurn;
    this.#checkAlive();
    const digest = await this.#reading.digest();
    this.#options.onFinishing?.(digest);
    // The server may have aborted the stream (a full disk) while putEnd was on its way: its
    // abort comes before putEnd's reply ("no upload on stream"), and is the cause to report.
    const request = { stream: this.#put.stream, sha256: digest, ...this.#options.attributes };
    const file = await this.#connection.request('putEnd', request).catch((error: unknown) => {
      throw this.#aborted ?? error;
    });
    const { name, size, sha256 } = file;
    return { name, size, sha256, bytesSent: this.#bytesSent, wireBytes: this.#wireBytes, resumed: this.#put.resumed, file };
  }

  #checkAlive(): void {
    if (this.#aborted) throw this.#aborted;
    if (this.#inFlight.failure) throw this.#inFlight.failure;
    if (this.#packFailure) throw this.#packFailure;
    if (this.#connection.lost) throw this.#connection.lost;
  }

  /**
   * Skipping what the server has can take a while on a big file: a `ping` now and then keeps the
   * connection from looking stalled to the server.
   */
  #keepAlive(): void {
    if (Date.now() - this.#lastSentAt <= keepaliveMs) return;
    this.#lastSentAt = Date.now();
    this.#connection.request('ping', {}).catch(() => undefined); // a lost link shows in the next send
  }
}
