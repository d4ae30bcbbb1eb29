import { sharedCodecThreads } from '../compression/codec-threads.js';
import type { Packing } from '../compression/negotiation.js';
import type { RunningSha256 } from '../hashing/running-sha256.js';
import { FerryError } from '../protocol/errors.js';
import { type ChunkHeader, type CodecName, rawLengthOf } from '../protocol/frames.js';
import type { GetResult } from '../protocol/messages.js';
import { fromSystemError } from '../system-errors.js';
import type { ClientConnection, StreamSink } from './connection.js';
import type { ProgressListener } from './progress.js';
import { copyIntoShared } from '../shared-copy.js';
import { downloadChunkBudget } from './chunk-budget.js';

/**
 * Chunk buffers one download holds at most: one filling from the socket while others are written
 * to disk (and hashed). They come from the process's download budget (`downloadChunkBudget`), so
 * however many downloads run at once, their buffers stay within it.
 */
const writesInFlight = 3;
/**
 * Received bytes are synced to disk in the background every this many bytes, so the sync that
 * makes the finished file durable has little left to do.
 */
const backgroundSyncBytes = 64 * 1024 * 1024;

/** What a receiver tells its caller as chunks land. */
export interface ReceiverOptions {
  onProgress?: ProgressListener | undefined;
  /** Hears of the receiver once the server has answered the `get` (to ask, after a failure, where it stopped). */
  onReceiver?: ((receiver: DownloadReceiver) => void) | undefined;
}

/** The bytes that the first `chunks` chunks of a file hold (the last chunk may be short). */
export function completeBytes(chunks: number, file: { size: number; chunkSize: number }): number {
  return Math.min(file.size, chunks * file.chunkSize);
}

/**
 * Asks for the chunks of the file `wanted` names (the content with that SHA-256, if given, from
 * chunk `fromChunk`), packed as `pack` says (see `packingFor`), and receives them into `writer`,
 * hashed by `sha256` (or by the one it makes once the reply says what the file is).
 */
export async function receiveChunks(
  connection: ClientConnection,
  wanted: { name: string; sha256?: string; fromChunk: number; toChunk?: number; pack: Packing | undefined },
  writer: ChunkWriter,
  sha256: RunningSha256 | ((get: GetResult) => RunningSha256),
  xxh64: (bytes: Uint8Array) => bigint,
  options: ReceiverOptions,
): Promise<Received> {
  let receiver: DownloadReceiver | undefined;
  // A buffer for the first chunk before the file is asked for: once the server sends, this
  // download never waits for the budget (a client that stops reading while the server holds
  // buffers for it is one the server closes).
  const first = await downloadChunkBudget.acquire(connection.hello.chunkSize);
  try {
    // The receiver is made as the reply is decoded, so the stream is open before its first chunk.
    await connection.request('get', wanted, (get) => {
      const hash = typeof sha256 === 'function' ? sha256(get) : sha256;
      receiver = new DownloadReceiver(connection, writer, hash, xxh64, options, get, first, wanted.pack?.codec);
      options.onReceiver?.(receiver);
      return receiver;
    });
  } catch (error) {
    if (!receiver) downloadChunkBudget.release(first);
    throw error;
  }
  return receiver!.done;
}

/** A chunk buffer of the receiver: shared memory, so the hashing thread reads a chunk in place while it is written to disk. */
interface ReceiveSlot {
  shared: SharedArrayBuffer;
  buffer: Buffer;
}

/** Where a download's verified chunks go: a file (at their offsets, several at once) or a stream (in order). */
export interface ChunkWriter {
  write(bytes: Uint8Array, offset: number): Promise<unknown>;
  /** Makes what was written so far durable (a file); absent where there is nothing to make durable. */
  sync?(): Promise<void>;
}

/** What a download stream brought: file bytes, and the payload bytes that carried them. */
export interface Received {
  bytesReceived: number;
  wireBytes: number;
}

/**
 * Receives one download stream: its chunks in order, each unpacked if it came compressed (on the
 * codec threads), checked against its xxh64, fed to the SHA-256 and written at its offset;
 * reading pauses while it has no free buffer (until one is written, or the budget gives one). `done` settles with the bytes received once the last
 * one is written (and the background sync, if any, is over). The client's mirror of the server's
 * DownloadTransfer.
 */
export class DownloadReceiver implements StreamSink {
  readonly done: Promise<Received>;
  readonly #connection: ClientConnection;
  readonly #writer: ChunkWriter;
  readonly #sha256: RunningSha256;
  readonly #xxh64: (bytes: Uint8Array) => bigint;
  readonly #options: ReceiverOptions;
  readonly #get: GetResult;
  /** Buffers held and not in use; with the ones in use, at most `#maxSlots`. */
  readonly #free: ReceiveSlot[] = [];
  #slotsHeld = 0;
  readonly #maxSlots: number;
  readonly #slotBytes: number;
  #settle!: { resolve: (received: Received) => void; reject: (error: FerryError) => void };
  /** The codec the server may pack chunks with, if it was asked to. */
  readonly #codec: CodecName | undefined;
  /** Settles when the last chunk before has been handed on: packed chunks unpack in parallel, but go on in order. */
  #turn: Promise<void> = Promise.resolve();
  #nextOffset: number;
  /** Where this stream's chunks end: the file's end, or the end of the range asked for. */
  readonly #end: number;
  #received = 0;
  #wireBytes = 0;
  #readInPlace = 0;
  #writing = 0;
  readonly #sync: BackgroundSync;
  /** The chunk being received; `lent` once the socket was given its buffer to read into (`payloadTarget`). */
  #current: { header: ChunkHeader; slot: ReceiveSlot; filled: number; lent: boolean } | undefined;
  #failed = false;
  /** Where the file is complete up to: what the attempt reports as done. */
  #lastDone: number;
  /** Chunks written past `#lastDone` (writes may settle out of order), by offset: their lengths. */
  readonly #landedAhead = new Map<number, number>();
  /** Chunks handed to the hash and the writer, until both are done with them (and `#written` has counted them). */
  readonly #writes = new Set<Promise<unknown>>();

  constructor(
    connection: ClientConnection,
    writer: ChunkWriter,
    sha256: RunningSha256,
    xxh64: (bytes: Uint8Array) => bigint,
    options: ReceiverOptions,
    get: GetResult,
    first: SharedArrayBuffer,
    codec?: CodecName,
  ) {
    this.#codec = codec;
    this.#connection = connection;
    this.#writer = writer;
    this.#sync = new BackgroundSync(writer);
    this.#sha256 = sha256;
    this.#xxh64 = xxh64;
    this.#options = options;
    this.#get = get;
    this.#nextOffset = this.#lastDone = completeBytes(get.fromChunk, get);
    this.done = new Promise<Received>((resolve, reject) => {
      this.#settle = { resolve, reject };
    });
    this.done.catch(() => undefined); // awaited by the caller once `get` is answered; never unhandled meanwhile
    // All of one size (the server's chunk size, as `first`), so the budget reuses them.
    this.#slotBytes = first.byteLength;
    this.#end = completeBytes(get.toChunk ?? get.chunkCount, get);
    this.#maxSlots = Math.max(1, Math.min(writesInFlight, (get.toChunk ?? get.chunkCount) - get.fromChunk));
    this.#slotsHeld = 1;
    this.#free.push({ shared: first, buffer: Buffer.from(first) });
    this.#readWhenRoom();
    queueMicrotask(() => this.#finishIfDone()); // a download with nothing left to fetch ends at once
  }

  chunkStart(header: ChunkHeader): void {
    const { chunkSize, size } = this.#get;
    const slot = this.#free.pop();
    if (
      header.offset !== this.#nextOffset ||
      this.#nextOffset >= this.#end ||
      rawLengthOf(header) !== Math.min(chunkSize, size - this.#nextOffset) ||
      !slot
    ) {
      if (slot) this.#free.push(slot); // goes back to the budget with the other free ones
      return this.fail(new FerryError('EPROTO', `unexpected chunk at offset ${header.offset} (expected ${this.#nextOffset})`));
    }
    if (header.packed && header.packed.codec !== this.#codec) {
      this.#free.push(slot);
      return this.fail(
        new FerryError('EPROTO', `chunk at offset ${header.offset} came ${header.packed.codec}-compressed, which was not asked for`),
      );
    }
    this.#current = { header, slot, filled: 0, lent: false };
  }

  /** Payload bytes the socket read straight into their chunk buffer (`payloadTarget`), not copied there. */
  get bytesReadInPlace(): number {
    return this.#readInPlace;
  }

  payloadTarget(bytes: number): Uint8Array | undefined {
    const current = this.#current;
    if (!current || this.#failed) return undefined;
    current.lent = true;
    return current.slot.buffer.subarray(current.filled, current.filled + bytes);
  }

  chunkData(piece: Uint8Array): void {
    const current = this.#current;
    if (!current) return;
    // Read straight into the slot (`payloadTarget`), the bytes are where they go already.
    const inPlace = piece.buffer === current.slot.shared && piece.byteOffset === current.slot.buffer.byteOffset + current.filled;
    if (inPlace) this.#readInPlace += piece.byteLength;
    else copyIntoShared(current.slot.buffer, piece, current.filled);
    current.filled += piece.byteLength;
  }

  chunkEnd(): void {
    const chunk = this.#current;
    this.#current = undefined;
    if (!chunk) return;
    if (this.#failed) return this.#slotDone(chunk.slot);
    const { slot, header } = chunk;
    const length = rawLengthOf(header);
    this.#nextOffset += length;
    this.#wireBytes += header.length;
    this.#writing += 1;
    this.#readWhenRoom();
    if (!this.#codec) return this.#accept(slot, header.offset, length, header.xxh64);
    // Unpacked on the codec threads, two at once; handed on in order (the SHA-256 needs it).
    const { packed } = header;
    const unpacked = packed ? sharedCodecThreads().unpack(packed.codec, slot.shared, header.length, length) : undefined;
    const previous = this.#turn;
    this.#turn = Promise.all([unpacked, previous]).then(
      ([failure]) => {
        if (failure === undefined) return this.#accept(slot, header.offset, length, header.xxh64);
        this.fail(new FerryError('ECHECKSUM', `${this.#get.name}: chunk at offset ${header.offset}: ${failure}`));
        this.#slotDone(slot);
      },
      (error: unknown) => {
        this.fail(new FerryError('EINTERNAL', `unpacking a chunk failed: ${String(error)}`));
        // The codec thread may still hold it (the other promise failed): it is not reused.
        void Promise.allSettled([unpacked, previous]).then(() => this.#slotDone(slot));
      },
    );
  }

  /** A chunk's `length` raw bytes are in `slot`: checked, hashed and written. */
  #accept(slot: ReceiveSlot, offset: number, length: number, xxh64: bigint): void {
    if (this.#failed) return this.#slotDone(slot);
    const bytes = slot.buffer.subarray(0, length);
    if (this.#xxh64(bytes) !== xxh64) {
      this.fail(new FerryError('ECHECKSUM', `${this.#get.name}: chunk at offset ${offset} failed its xxh64 check`));
      return this.#slotDone(slot);
    }
    this.#received += length;
    const hashed = this.#sha256.update(slot.shared, length);
    const written = this.#writer.write(bytes, offset);
    const settled = Promise.all([hashed, written]).then(
      () => this.#written(slot, offset, length),
      async (error: unknown) => {
        this.fail(fromSystemError(error, `writing ${this.#get.name}`));
        // Given back once neither the hashing thread nor the write uses it any more.
        await Promise.allSettled([hashed, written]);
        this.#slotDone(slot);
      },
    );
    this.#writes.add(settled);
    void settled.then(() => this.#writes.delete(settled));
  }

  /**
   * After a failure: once every chunk it had verified is written (or failed to be), where the
   * file is complete up to from this stream's start (what it reported as done; a chunk it verified
   * past a gap is fetched again), and what it received. Chunks verified and not yet handed on are dropped.
   */
  async stoppedAt(): Promise<Received & { completeUpTo: number }> {
    await this.#turn;
    await Promise.all(this.#writes);
    return { completeUpTo: this.#lastDone, bytesReceived: this.#received, wireBytes: this.#wireBytes };
  }

  fail(error: FerryError): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#connection.closeStream(this.#get.stream);
    // The chunk being filled gets no more bytes; the free buffers go back to the budget, and reading
    // goes on. One the socket was reading into is not reused: its next read may still land there.
    if (this.#current?.lent) this.#discard(this.#current.slot);
    else if (this.#current) this.#slotDone(this.#current.slot);
    this.#current = undefined;
    this.#readWhenRoom();
    // The attempt's last word on what it received: every verified chunk counts, also one whose
    // write is still under way (it lands, and the next attempt keeps it without fetching it).
    this.#progress();
    this.#settle.reject(error);
  }

  #written(slot: ReceiveSlot, offset: number, length: number): void {
    this.#writing -= 1;
    this.#slotDone(slot);
    // A chunk written after a failure has landed too: where the file is complete counts it.
    this.#landedAhead.set(offset, length);
    for (let next = this.#landedAhead.get(this.#lastDone); next !== undefined; next = this.#landedAhead.get(this.#lastDone)) {
      this.#landedAhead.delete(this.#lastDone);
      this.#lastDone += next;
    }
    if (this.#failed) return; // this attempt has already reported its end
    this.#sync.wrote(length);
    this.#progress();
    this.#finishIfDone();
  }

  /** Nothing uses `slot` any more: it is free for the next chunk, or goes back to the budget once no chunk is to come. */
  #slotDone(slot: ReceiveSlot): void {
    if (this.#failed || this.#nextOffset >= this.#end) return this.#giveBack(slot);
    this.#free.push(slot);
    this.#readWhenRoom();
  }

  #giveBack(slot: ReceiveSlot): void {
    this.#slotsHeld -= 1;
    downloadChunkBudget.release(slot.shared);
  }

  #discard(slot: ReceiveSlot): void {
    this.#slotsHeld -= 1;
    downloadChunkBudget.discard(slot.shared);
  }

  /**
   * Reading goes on only while there is a free buffer for the next chunk (or no chunk is to
   * come). Without one, this download takes one more from the budget if it holds fewer than its
   * share and the budget has one now, else pauses until one of its own is written.
   */
  #readWhenRoom(): void {
    if (this.#failed || this.#nextOffset >= this.#end) {
      // No chunk is to come: the buffers not in use go back.
      for (const slot of this.#free.splice(0)) this.#giveBack(slot);
      return this.#connection.resume(this);
    }
    const more = this.#free.length === 0 && this.#slotsHeld < this.#maxSlots ? downloadChunkBudget.tryAcquire(this.#slotBytes) : undefined;
    if (more) {
      this.#slotsHeld += 1;
      this.#free.push({ shared: more, buffer: Buffer.from(more) });
    }
    if (this.#free.length > 0) this.#connection.resume(this);
    else this.#connection.pause(this);
  }

  #progress(): void {
    this.#options.onProgress?.({ name: this.#get.name, done: this.#lastDone, total: this.#get.size, transferred: this.#received });
  }

  #finishIfDone(): void {
    if (this.#failed || this.#nextOffset !== this.#end || this.#writing > 0 || this.#current) return;
    this.#connection.closeStream(this.#get.stream);
    void this.#sync.settled().then(
      () => this.#settle.resolve({ bytesReceived: this.#received, wireBytes: this.#wireBytes }),
      (error: unknown) => this.fail(fromSystemError(error, `syncing ${this.#get.name}`)),
    );
  }
}

/**
 * Received bytes are synced now and then (every `backgroundSyncBytes` written), so the sync that
 * makes the finished file durable has little left to do.
 */
export class BackgroundSync {
  readonly #writer: ChunkWriter;
  #unsyncedBytes = 0;
  #syncing: Promise<void> | undefined;

  constructor(writer: ChunkWriter) {
    this.#writer = writer;
  }

  /** `bytes` more were written: a sync starts if enough are waiting for one and none is under way. */
  wrote(bytes: number): void {
    this.#unsyncedBytes += bytes;
    if (this.#syncing || this.#unsyncedBytes < backgroundSyncBytes || !this.#writer.sync) return;
    this.#unsyncedBytes = 0;
    this.#syncing = this.#writer.sync().finally(() => {
      this.#syncing = undefined;
    });
    this.#syncing.catch(() => undefined); // a failure shows again in the final sync
  }

  /** Settles when no sync is under way (rejects if the one under way fails). */
  settled(): Promise<void> {
    return this.#syncing ?? Promise.resolve();
  }
}
