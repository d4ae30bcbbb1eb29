import { capability } from '../protocol/capabilities.js';
import { FerryError } from '../protocol/errors.js';
import { xxh64FromHex } from '../protocol/frames.js';
import type { GetDirectResult } from '../protocol/messages.js';
import type { XXHashAPI } from 'xxhash-wasm';
import type { RunningSha256 } from '../hashing/running-sha256.js';
import { loadXxhash } from '../hashing/xxh64.js';
import { fromSystemError } from '../system-errors.js';
import { downloadChunkBudget } from './chunk-budget.js';
import type { ClientConnection } from './connection.js';
import { type ChunkWriter, type ReceiverOptions, type Received, BackgroundSync, completeBytes } from './download-receiver.js';
import { StoreReadError, readRange } from '../object-store/ranged-get.js';

/** Ranged GETs one direct download keeps in flight unless told more (`--streams`); 4, as the bench's SDK reference does. */
const defaultReadsAtOnce = 4;
/** The most it keeps in flight whatever it is told: each holds a chunk buffer. */
const maxReadsAtOnce = 16;
/** Chunks one direct download hashes and writes at once, as the receiver of a stream through the server does. */
const writesAtOnce = 3;
/** How often a direct download pings the server (whose idle timeout is 5 minutes by default). */
const keepAliveMs = 60_000;
/** A URL this close to lapsing is renewed before the next read. */
const renewBeforeMs = 60_000;

/** How a direct download went: all of it, or as far as `nextChunk`, where reading through the server takes over. */
export interface DirectOutcome extends Received {
  /** The chunk after the last one written, in order from the first: where the download stands. */
  nextChunk: number;
  /** Why the rest is to be read through the server; absent when every chunk is in. */
  stopped?: FerryError;
}

/**
 * Whether to read `connection`'s downloads from its server's object store (capability
 * `get-direct`): not when the caller said no, and never in clear text when the connection to the
 * server is encrypted (the signed URL's scheme decides that per read, in `receiveDirect`).
 */
export function offersDirect(connection: ClientConnection, wanted: boolean | undefined): boolean {
  return wanted !== false && connection.hello.capabilities.includes(capability.getDirect) && !unreadableStores.has(connection);
}

/** Connections whose store a direct read failed to read: their next downloads go through the server without trying it. */
const unreadableStores = new WeakMap<ClientConnection, FerryError>();

/**
 * Remembers, for the rest of `connection`'s life, the failure of a direct read that brought
 * nothing, when it says this client cannot read the store: not connected to at all (refused,
 * unresolved, unreachable, or no answer in 5 s), refusing the signed URLs, or not to be read in
 * clear text over TLS. So a folder of files on such a store tries it once, not once per file (up
 * to 5 s each). A store that was reached and then failed (a cut, a stall, an error of its own,
 * one object changed or damaged) is tried again for the next file. Whether it remembered.
 */
export function rememberUnreadable(connection: ClientConnection, why: FerryError): boolean {
  const unreadable = why.code === 'ECONFIG' || why.code === 'EPROTO' || (why instanceof StoreReadError && !why.reached);
  if (unreadable) unreadableStores.set(connection, why);
  return unreadable;
}

interface DirectOptions extends ReceiverOptions {
  /** The connection to the server is encrypted: only an https:// URL is read. */
  secure: boolean;
  /** Ranged GETs in flight at once (default 4, at most 16). */
  readsAtOnce?: number | undefined;
}

interface Slot {
  shared: SharedArrayBuffer;
  buffer: Buffer;
}

/**
 * Receives chunks `wanted.fromChunk` onwards of a file straight from the server's object store:
 * `getDirect` gives a signed URL and the chunks' xxh64 (a window at a time), then up to four
 * ranged GETs run at once, each into a chunk buffer of the download budget. Chunks are checked
 * against their xxh64 as they land, and fed to `sha256` and written in order, so the part file
 * always holds a verified prefix. The first read that fails (the store unreachable from here, a
 * URL it refuses, a chunk that does not match its hash, the object replaced) stops it: the
 * outcome says where, and the caller reads the rest through the server, whose rules then decide
 * (it marks a damaged file, refuses a changed one). A failure to write or hash locally is thrown.
 */
export async function receiveDirect(
  connection: ClientConnection,
  wanted: { name: string; sha256?: string; fromChunk: number },
  writer: ChunkWriter,
  sha256: RunningSha256 | ((file: GetDirectResult) => RunningSha256),
  options: DirectOptions,
): Promise<DirectOutcome & { file: GetDirectResult }> {
  const xxhash = await loadXxhash();
  const askedAt = Date.now();
  const first = await connection.request('getDirect', {
    name: wanted.name,
    fromChunk: wanted.fromChunk,
    ...(wanted.sha256 === undefined ? {} : { sha256: wanted.sha256 }),
  });
  const hash = typeof sha256 === 'function' ? sha256(first) : sha256;
  const outcome = await new DirectReceiver(connection, first, writer, hash, xxhash, options, askedAt).run();
  return { ...outcome, file: first };
}

class DirectReceiver {
  readonly #connection: ClientConnection;
  readonly #file: GetDirectResult;
  readonly #writer: ChunkWriter;
  readonly #sha256: RunningSha256;
  /** Each chunk is hashed piece by piece as it arrives. */
  readonly #xxhash: XXHashAPI;
  readonly #options: DirectOptions;
  readonly #readsAtOnce: number;
  /** Each read under way, by chunk index: what calls it off. */
  readonly #reading = new Map<number, AbortController>();
  readonly #sync: BackgroundSync;
  /** The window of chunk hashes and the URL that reads go by now. */
  #window: GetDirectResult;
  /** When each window's URL lapses, on this machine's clock (from its lifetime, as the reply came). */
  readonly #deadlines = new WeakMap<GetDirectResult, number>();
  /** A request for the next window, while one is under way. */
  #renewing: Promise<GetDirectResult> | undefined;
  #received = 0;
  /** Where the file is complete up to (chunks are written a few at once, and may land out of order). */
  #done: number;
  /** Set by the first failed read: no read starts after it. */
  #stopped: FerryError | undefined;

  constructor(
    connection: ClientConnection,
    file: GetDirectResult,
    writer: ChunkWriter,
    sha256: RunningSha256,
    xxhash: XXHashAPI,
    options: DirectOptions,
    receivedAt: number,
  ) {
    this.#connection = connection;
    this.#file = this.#window = file;
    this.#deadlines.set(file, receivedAt + file.expiresInSeconds * 1000);
    this.#writer = writer;
    this.#sha256 = sha256;
    this.#xxhash = xxhash;
    this.#options = options;
    this.#readsAtOnce = Math.min(maxReadsAtOnce, Math.max(defaultReadsAtOnce, options.readsAtOnce ?? 1));
    this.#sync = new BackgroundSync(writer);
    this.#done = completeBytes(file.fromChunk, file);
  }

  async run(): Promise<DirectOutcome> {
    const { chunkCount } = this.#file;
    let nextChunk = this.#file.fromChunk;
    let started = nextChunk;
    const reads = new Map<number, Promise<Slot | undefined>>();
    const writes: Promise<void>[] = [];
    // The connection to the server gone (lost, or closed by a cancel): the reads are called off too.
    const onClose = (): void => this.#stop(this.#connection.lost ?? new FerryError('ECONNLOST', 'connection to the server lost'));
    const unwatch = this.#connection.watchClose(onClose);
    // Nothing else crosses the connection while the store is read: a ping now and then keeps the server from closing it as idle.
    const keepAlive = setInterval(() => void this.#connection.request('ping', {}).catch(() => undefined), keepAliveMs);
    keepAlive.unref();
    try {
      while (nextChunk < chunkCount) {
        while (!this.#stopped && started < chunkCount && started < nextChunk + this.#readsAtOnce) {
          reads.set(started, this.#read(started));
          started += 1;
        }
        const slot = await reads.get(nextChunk);
        reads.delete(nextChunk);
        if (!slot) break;
        // Hashed (the SHA-256 takes them in the order they are given) and written while the next reads go on.
        const written = this.#accept(slot, nextChunk);
        written.catch(() => undefined); // awaited below; a failure is thrown from there
        writes.push(written);
        nextChunk += 1;
        if (writes.length >= writesAtOnce) await writes.shift();
      }
      await Promise.all(writes);
      await this.#sync.settled().catch((error: unknown) => {
        throw fromSystemError(error, `syncing ${this.#file.name}`);
      });
    } finally {
      clearInterval(keepAlive);
      unwatch();
      this.#stop(new FerryError('ECANCELED', 'the download stopped'));
      // Nothing is left writing into a buffer, or into the file, once this returns.
      const [left] = await Promise.all([Promise.allSettled(reads.values()), Promise.allSettled(writes)]);
      for (const result of left) if (result.status === 'fulfilled' && result.value) this.#release(result.value);
    }
    const done = { bytesReceived: this.#received, wireBytes: this.#received, nextChunk };
    return nextChunk === chunkCount ? done : { ...done, stopped: this.#stopped! };
  }

  /** Reads chunk `index` into a budget buffer and checks it; undefined (and the receiver stopped) if that failed. */
  async #read(index: number): Promise<Slot | undefined> {
    const { chunkSize, size } = this.#file;
    const offset = index * chunkSize;
    const length = Math.min(chunkSize, size - offset);
    let slot: Slot | undefined;
    const reading = new AbortController();
    this.#reading.set(index, reading);
    try {
      const window = await this.#windowFor(index);
      const url = new URL(window.url);
      if (url.username !== '' || url.password !== '') throw new FerryError('EPROTO', 'the store URL the server gave carries credentials');
      if (url.protocol !== 'https:' && (url.protocol !== 'http:' || this.#options.secure)) {
        throw new FerryError('ECONFIG', `the store's URL is ${url.protocol}//, and this connection to the server is encrypted`);
      }
      const shared = await downloadChunkBudget.acquire(chunkSize);
      slot = { shared, buffer: Buffer.from(shared) };
      if (this.#stopped) throw this.#stopped;
      const xxh64 = this.#xxhash.create64();
      await readRange(url, window.etag, offset, length, slot.buffer, reading.signal, (piece) => xxh64.update(piece));
      if (xxh64.digest() !== xxh64FromHex(window.hashes[index - window.fromChunk]!)) {
        throw new FerryError('ECHECKSUM', `chunk ${index} read from the store does not match its xxh64`);
      }
      return slot;
    } catch (error) {
      if (slot) this.#release(slot);
      this.#stop(error instanceof FerryError ? error : new FerryError('EIO', String(error)), index);
      return undefined;
    } finally {
      this.#reading.delete(index);
    }
  }

  /**
   * No read starts from now on; those under way of chunks after `failed` (all, without it) are
   * called off: the ones before it land and are written. The first reason is the one kept.
   */
  #stop(why: FerryError, failed = -1): void {
    this.#stopped ??= why;
    for (const [index, reading] of this.#reading) if (index > failed) reading.abort();
  }

  /** The window with chunk `index`'s hash and a URL good for a while: the current one, or a fresh one from the server. */
  async #windowFor(index: number): Promise<GetDirectResult> {
    const usable = (window: GetDirectResult): boolean =>
      index >= window.fromChunk && index < window.toChunk && this.#deadlines.get(window)! - Date.now() > renewBeforeMs;
    if (usable(this.#window)) return this.#window;
    // Reads started together at a window's end share one request for the next.
    const asked = this.#renewing;
    if (asked) {
      const window = await asked;
      if (usable(window)) return window;
    }
    const askedAt = Date.now();
    const renewing = this.#connection.request('getDirect', { name: this.#file.name, sha256: this.#file.sha256, fromChunk: index });
    this.#renewing = renewing;
    try {
      const next = await renewing;
      if (next.etag !== this.#file.etag) throw new FerryError('ECHANGED', `${this.#file.name} changed on the server during the download`);
      if (new URL(next.url).origin !== new URL(this.#file.url).origin) {
        throw new FerryError('EPROTO', `the server moved ${this.#file.name} to another store during the download`);
      }
      this.#deadlines.set(next, askedAt + next.expiresInSeconds * 1000);
      this.#window = next;
      return next;
    } finally {
      if (this.#renewing === renewing) this.#renewing = undefined;
    }
  }

  async #accept(slot: Slot, index: number): Promise<void> {
    const { chunkSize, size } = this.#file;
    const offset = index * chunkSize;
    const length = Math.min(chunkSize, size - offset);
    // Both settle before the buffer goes back: the hashing thread or the write may still read it when the other fails.
    const [hashed, written] = await Promise.allSettled([
      this.#sha256.update(slot.shared, length),
      this.#writer.write(slot.buffer.subarray(0, length), offset),
    ]);
    this.#release(slot);
    for (const settled of [written, hashed])
      if (settled.status === 'rejected') throw fromSystemError(settled.reason, `writing ${this.#file.name}`);
    this.#received += length;
    this.#sync.wrote(length);
    this.#done = Math.max(this.#done, completeBytes(index + 1, this.#file));
    this.#options.onProgress?.({ name: this.#file.name, done: this.#done, total: size, transferred: this.#received });
  }

  #release(slot: Slot): void {
    downloadChunkBudget.release(slot.shared);
  }
}
