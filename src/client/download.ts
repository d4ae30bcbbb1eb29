import { type FileHandle, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, resolve, sep } from 'node:path';
import { FerryError } from '../protocol/errors.js';
import { fromSystemError } from '../system-errors.js';
import { sharedCodecThreads } from '../compression/codec-threads.js';
import { type CompressChoice, type Packing, packingFor } from '../compression/negotiation.js';
import { type ChunkHeader, type CodecName, rawLengthOf, xxh64FromHex } from '../protocol/frames.js';
import { maxHashesPageEntries } from '../protocol/limits.js';
import type { FileInfo, GetResult } from '../protocol/messages.js';
import { type RunningSha256, runningSha256 } from '../hashing/running-sha256.js';
import type { ClientConnection, StreamSink } from './connection.js';
import type { ProgressListener, StartListener } from './progress.js';
import { loadXxh64 } from '../hashing/xxh64.js';
import { copyIntoShared } from './shared-copy.js';
import { formatBytes } from '../units.js';

export interface DownloadOptions {
  /** Local destination; defaults to the remote name's last segment in the current directory. */
  out?: string;
  force?: boolean;
  onProgress?: ProgressListener;
  /** Called once it is known how much of a leftover partial download is good, before any byte is asked for. */
  onStart?: StartListener;
  /** A line for the user about the transfer (a leftover partial download discarded). */
  onNotice?: (text: string) => void;
  /** Whether the server compresses the chunks it sends (default `auto`: when that pays). */
  compress?: CompressChoice;
}

export interface DownloadResult {
  name: string;
  path: string;
  size: number;
  sha256: string;
  bytesReceived: number;
  /** Payload bytes that crossed the wire for them: fewer than `bytesReceived` when chunks came compressed. */
  wireBytes: number;
  resumed: boolean;
}

/** What sits beside a partial download so a rerun knows what it is a part of. */
interface PartialState {
  name: string;
  sha256: string;
  size: number;
  chunkSize: number;
}

const partSuffix = '.ferry-part';
const stateSuffix = '.ferry-part.json';
/** Chunk buffers being written to disk (and hashed) at once before the download stops reading the socket. */
const writesInFlight = 3;
/**
 * Received bytes are synced to disk in the background every this many bytes, so the sync that
 * makes the finished file durable has little left to do.
 */
const backgroundSyncBytes = 64 * 1024 * 1024;

export function partialPathsFor(dest: string): { part: string; state: string } {
  return { part: dest + partSuffix, state: dest + stateSuffix };
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false; // nothing (readable) there
  }
}

/**
 * Where a download of `name` goes, as cp and scp decide it: `out` naming a directory that exists
 * (or ending in `/`) means inside it, under the name's last segment; anything else is the file's
 * own path. A directory that does not exist is named in the error (never the `.ferry-part` path).
 */
export async function destinationFor(name: string, out: string | undefined): Promise<string> {
  const ownName = basename(name);
  if (out === undefined) return resolve(ownName);
  const meansDirectory = out.endsWith('/') || out.endsWith(sep);
  // Without the trailing separator: stat("file/") fails as ENOTDIR, and this wants to tell "a file" from "nothing".
  const outStat = await stat(meansDirectory ? out.slice(0, -1) || out : out).catch(() => undefined);
  if (outStat?.isDirectory()) return resolve(out, ownName);
  if (meansDirectory) {
    throw new FerryError('ENOENT', `${out}: no such local directory (${outStat ? 'it is a file' : 'create it first'})`);
  }
  const dest = resolve(out);
  const folderStat = await stat(dirname(dest)).catch(() => undefined);
  if (!folderStat) throw new FerryError('ENOENT', `${dirname(dest)}: no such local directory (create it first)`);
  if (!folderStat.isDirectory()) throw new FerryError('ENOENT', `${dirname(dest)}: not a directory`);
  return dest;
}

async function readState(path: string): Promise<PartialState | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as PartialState;
  } catch {
    return undefined;
  }
}

/** The bytes that the first `chunks` chunks of a file hold (the last chunk may be short). */
function completeBytes(chunks: number, file: { size: number; chunkSize: number }): number {
  return Math.min(file.size, chunks * file.chunkSize);
}

/**
 * Resume rule for downloads: the partial file is trusted only as far as its chunks still hash to
 * what the server lists for the same content (same sha256). Returns how many leading chunks
 * are good, having fed them to `sha256`.
 */
async function verifiedPrefix(
  connection: ClientConnection,
  handle: FileHandle,
  info: FileInfo,
  sha256: RunningSha256,
  xxh64: (bytes: Uint8Array) => bigint,
): Promise<number> {
  const { size: partSize } = await handle.stat();
  const shared = new SharedArrayBuffer(Math.max(1, Math.min(info.chunkSize, info.size)));
  const buffer = Buffer.from(shared);
  let good = 0;
  for (let from = 0; from < info.chunkCount; from += maxHashesPageEntries) {
    const page = await connection.request('hashes', {
      name: info.name,
      from,
      count: Math.min(maxHashesPageEntries, info.chunkCount - from),
    });
    for (const hex of page.hashes) {
      const offset = good * info.chunkSize;
      const length = Math.min(info.chunkSize, info.size - offset);
      if (hex === null || offset + length > partSize) return good;
      const bytes = buffer.subarray(0, length);
      await handle.read(bytes, 0, length, offset);
      if (xxh64(bytes) !== xxh64FromHex(hex)) return good;
      await sha256.update(shared, length);
      good += 1;
    }
  }
  return good;
}

/**
 * Downloads (or resumes downloading) one remote file. Bytes land in `<dest>.ferry-part`; only a
 * complete file whose SHA-256 matches is renamed to `dest`. Until then nothing exists at `dest`.
 */
export async function downloadFile(connection: ClientConnection, name: string, options: DownloadOptions = {}): Promise<DownloadResult> {
  const xxh64 = await loadXxh64();
  // Settled before anything is made: a codec the server lacks fails the download here, leaving nothing behind.
  const pack = packingFor(options.compress ?? 'auto', connection.hello.capabilities);
  const dest = await destinationFor(name, options.out);
  if (!options.force && (await exists(dest))) throw new FerryError('EEXIST', `${dest} already exists (use --force to overwrite it)`);
  const info = await connection.request('stat', { name });
  const { part, state: statePath } = partialPathsFor(dest);
  const previous = await readState(statePath);
  const sameContent = previous?.sha256 === info.sha256 && previous.chunkSize === info.chunkSize && previous.size === info.size;
  const partExists = await exists(part);
  if (previous && !sameContent && partExists)
    options.onNotice?.(`discarding the partial download of ${name} in ${part}: the server's ${name} has changed since`);
  let handle: FileHandle;
  try {
    handle = await open(part, sameContent && partExists ? 'r+' : 'w+');
  } catch (error) {
    throw fromSystemError(error, part);
  }
  if (!sameContent) {
    try {
      await writeFile(
        statePath,
        JSON.stringify({ name, sha256: info.sha256, size: info.size, chunkSize: info.chunkSize } satisfies PartialState),
      );
    } catch (error) {
      await handle.close();
      throw fromSystemError(error, statePath);
    }
  }
  let closed = false;
  const sha256 = runningSha256(info.size);
  try {
    const fromChunk = sameContent ? await verifiedPrefix(connection, handle, info, sha256, xxh64) : 0;
    const partBytes = (await handle.stat()).size;
    if (partBytes > completeBytes(fromChunk, info))
      options.onNotice?.(
        `${part}: kept the ${formatBytes(completeBytes(fromChunk, info))} that match the server's ${name}, discarded ${formatBytes(partBytes - completeBytes(fromChunk, info))}`,
      );
    // What the verified chunks hold, and not a byte more: a part already whole (its client was
    // stopped before the rename), or longer than the file (bytes past its end), is cut to it.
    await handle.truncate(completeBytes(fromChunk, info));
    options.onStart?.({ name, from: completeBytes(fromChunk, info), total: info.size });
    const wanted = { name, sha256: info.sha256, fromChunk };
    const { bytesReceived, wireBytes } = await receiveChunks(connection, { ...wanted, pack }, fileWriter(handle), sha256, xxh64, options);
    const digest = await sha256.digest();
    if (digest !== info.sha256) {
      await handle.close();
      closed = true;
      await rm(part, { force: true });
      await rm(statePath, { force: true });
      throw new FerryError('ECHECKSUM', `${name}: sha256 of the received file is ${digest}, the server lists ${info.sha256}`);
    }
    await handle.datasync();
    await handle.close();
    closed = true;
    if (!options.force && (await exists(dest))) throw new FerryError('EEXIST', `${dest} already exists (use --force to overwrite it)`);
    await rename(part, dest);
    await rm(statePath, { force: true });
    return { name, path: dest, size: info.size, sha256: digest, bytesReceived, wireBytes, resumed: fromChunk > 0 };
  } finally {
    if (!closed) {
      sha256.drop();
      await handle.close();
    }
  }
}

/**
 * Asks for the chunks of the file `wanted` names (the content with that SHA-256, from chunk
 * `fromChunk`), packed as `pack` says (see `packingFor`), and receives them into `writer`.
 */
export async function receiveChunks(
  connection: ClientConnection,
  wanted: { name: string; sha256: string; fromChunk: number; pack: Packing | undefined },
  writer: ChunkWriter,
  sha256: RunningSha256,
  xxh64: (bytes: Uint8Array) => bigint,
  options: DownloadOptions,
): Promise<Received> {
  let receiver: DownloadReceiver | undefined;
  // The receiver is made as the reply is decoded, so the stream is open before its first chunk.
  await connection.request('get', wanted, (get) => {
    receiver = new DownloadReceiver(connection, writer, sha256, xxh64, options, get, wanted.pack?.codec);
    return receiver;
  });
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

function fileWriter(handle: FileHandle): ChunkWriter {
  return { write: (bytes, offset) => handle.write(bytes, 0, bytes.length, offset), sync: () => handle.datasync() };
}

/** What a download stream brought: file bytes, and the payload bytes that carried them. */
export interface Received {
  bytesReceived: number;
  wireBytes: number;
}

/**
 * Receives one download stream: its chunks in order, each unpacked if it came compressed (on the
 * codec threads), checked against its xxh64, fed to the SHA-256 and written at its offset;
 * reading pauses while every buffer is busy. `done` settles with the bytes received once the last
 * one is written (and the background sync, if any, is over). The client's mirror of the server's
 * DownloadTransfer.
 */
export class DownloadReceiver implements StreamSink {
  readonly done: Promise<Received>;
  readonly #connection: ClientConnection;
  readonly #writer: ChunkWriter;
  readonly #sha256: RunningSha256;
  readonly #xxh64: (bytes: Uint8Array) => bigint;
  readonly #options: DownloadOptions;
  readonly #get: GetResult;
  readonly #free: ReceiveSlot[];
  #settle!: { resolve: (received: Received) => void; reject: (error: FerryError) => void };
  /** The codec the server may pack chunks with, if it was asked to. */
  readonly #codec: CodecName | undefined;
  /** Settles when the last chunk before has been handed on: packed chunks unpack in parallel, but go on in order. */
  #turn: Promise<void> = Promise.resolve();
  #nextOffset: number;
  #received = 0;
  #wireBytes = 0;
  #writing = 0;
  #unsyncedBytes = 0;
  #backgroundSync: Promise<void> | undefined;
  #current: { header: ChunkHeader; slot: ReceiveSlot; filled: number } | undefined;
  #failed = false;
  /** Where the file is complete up to: what the attempt reports as done. */
  #lastDone: number;

  constructor(
    connection: ClientConnection,
    writer: ChunkWriter,
    sha256: RunningSha256,
    xxh64: (bytes: Uint8Array) => bigint,
    options: DownloadOptions,
    get: GetResult,
    codec?: CodecName,
  ) {
    this.#codec = codec;
    this.#connection = connection;
    this.#writer = writer;
    this.#sha256 = sha256;
    this.#xxh64 = xxh64;
    this.#options = options;
    this.#get = get;
    this.#nextOffset = this.#lastDone = completeBytes(get.fromChunk, get);
    this.done = new Promise<Received>((resolve, reject) => {
      this.#settle = { resolve, reject };
    });
    this.done.catch(() => undefined); // awaited by the caller once `get` is answered; never unhandled meanwhile
    // No bigger than the file needs: a small file gets one small buffer.
    const slotBytes = Math.max(1, Math.min(get.chunkSize, get.size));
    this.#free = Array.from({ length: Math.max(1, Math.min(writesInFlight, get.chunkCount - get.fromChunk)) }, () => {
      const shared = new SharedArrayBuffer(slotBytes);
      return { shared, buffer: Buffer.from(shared) };
    });
    queueMicrotask(() => this.#finishIfDone()); // a download with nothing left to fetch ends at once
  }

  chunkStart(header: ChunkHeader): void {
    const { chunkSize, size } = this.#get;
    const slot = this.#free.pop();
    if (header.offset !== this.#nextOffset || rawLengthOf(header) !== Math.min(chunkSize, size - this.#nextOffset) || !slot) {
      return this.fail(new FerryError('EPROTO', `unexpected chunk at offset ${header.offset} (expected ${this.#nextOffset})`));
    }
    if (header.packed && header.packed.codec !== this.#codec) {
      return this.fail(
        new FerryError('EPROTO', `chunk at offset ${header.offset} came ${header.packed.codec}-compressed, which was not asked for`),
      );
    }
    this.#current = { header, slot, filled: 0 };
  }

  chunkData(piece: Uint8Array): void {
    const current = this.#current;
    if (!current) return;
    copyIntoShared(current.slot.buffer, piece, current.filled);
    current.filled += piece.byteLength;
  }

  chunkEnd(): void {
    const chunk = this.#current;
    this.#current = undefined;
    if (!chunk || this.#failed) return;
    const { slot, header } = chunk;
    const length = rawLengthOf(header);
    this.#nextOffset += length;
    this.#wireBytes += header.length;
    this.#writing += 1;
    if (this.#free.length === 0) this.#connection.pause(this);
    if (!this.#codec) return this.#accept(slot, header.offset, length, header.xxh64);
    // Unpacked on the codec threads, two at once; handed on in order (the SHA-256 needs it).
    const { packed } = header;
    const unpacked = packed ? sharedCodecThreads().unpack(packed.codec, slot.shared, header.length, length) : undefined;
    const previous = this.#turn;
    this.#turn = Promise.all([unpacked, previous]).then(
      ([failure]) => {
        if (failure === undefined) return this.#accept(slot, header.offset, length, header.xxh64);
        this.fail(new FerryError('ECHECKSUM', `${this.#get.name}: chunk at offset ${header.offset}: ${failure}`));
      },
      (error: unknown) => this.fail(new FerryError('EINTERNAL', `unpacking a chunk failed: ${String(error)}`)),
    );
  }

  /** A chunk's `length` raw bytes are in `slot`: checked, hashed and written. */
  #accept(slot: ReceiveSlot, offset: number, length: number, xxh64: bigint): void {
    if (this.#failed) return;
    const bytes = slot.buffer.subarray(0, length);
    if (this.#xxh64(bytes) !== xxh64) {
      return this.fail(new FerryError('ECHECKSUM', `${this.#get.name}: chunk at offset ${offset} failed its xxh64 check`));
    }
    this.#received += length;
    const hashed = this.#sha256.update(slot.shared, length);
    Promise.all([hashed, this.#writer.write(bytes, offset)]).then(
      () => this.#written(slot, offset, length),
      (error: unknown) => this.fail(fromSystemError(error, `writing ${this.#get.name}`)),
    );
  }

  fail(error: FerryError): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#connection.closeStream(this.#get.stream);
    this.#connection.resume(this);
    // The attempt's last word on what it received: every verified chunk counts, also one whose
    // write is still under way (it lands, and the next attempt keeps it without fetching it).
    this.#progress();
    this.#settle.reject(error);
  }

  #written(slot: ReceiveSlot, offset: number, length: number): void {
    this.#writing -= 1;
    this.#free.push(slot);
    this.#unsyncedBytes += length;
    if (this.#failed) return; // this attempt has already reported its end
    this.#syncInBackground();
    this.#connection.resume(this);
    this.#lastDone = offset + length;
    this.#progress();
    this.#finishIfDone();
  }

  #progress(): void {
    this.#options.onProgress?.({ name: this.#get.name, done: this.#lastDone, total: this.#get.size, transferred: this.#received });
  }

  #finishIfDone(): void {
    if (this.#failed || this.#nextOffset !== this.#get.size || this.#writing > 0 || this.#current) return;
    this.#connection.closeStream(this.#get.stream);
    void (this.#backgroundSync ?? Promise.resolve()).then(
      () => this.#settle.resolve({ bytesReceived: this.#received, wireBytes: this.#wireBytes }),
      (error: unknown) => this.fail(fromSystemError(error, `syncing ${this.#get.name}`)),
    );
  }

  /** Received bytes are synced now and then, so the sync that makes the finished file durable has little left to do. */
  #syncInBackground(): void {
    if (this.#backgroundSync || this.#unsyncedBytes < backgroundSyncBytes || !this.#writer.sync) return;
    this.#unsyncedBytes = 0;
    this.#backgroundSync = this.#writer.sync().finally(() => {
      this.#backgroundSync = undefined;
    });
    this.#backgroundSync.catch(() => undefined); // a failure shows again in the final sync
  }
}
