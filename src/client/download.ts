import { type FileHandle, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { FerryError } from '../protocol/errors.js';
import { fromSystemError } from '../system-errors.js';
import type { ChunkHeader } from '../protocol/frames.js';
import { xxh64FromHex } from '../protocol/frames.js';
import { maxHashesPageEntries } from '../protocol/limits.js';
import type { FileInfo, GetResult } from '../protocol/messages.js';
import { type RunningSha256, runningSha256 } from '../hashing/running-sha256.js';
import type { ClientConnection, StreamSink } from './connection.js';
import type { ProgressListener } from './progress.js';
import { loadXxh64 } from '../hashing/xxh64.js';

export interface DownloadOptions {
  /** Local destination; defaults to the remote name's last segment in the current directory. */
  out?: string;
  force?: boolean;
  onProgress?: ProgressListener;
}

export interface DownloadResult {
  name: string;
  path: string;
  size: number;
  sha256: string;
  bytesReceived: number;
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
    return false;
  }
}

async function readState(path: string): Promise<PartialState | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as PartialState;
  } catch {
    return undefined;
  }
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
  const dest = resolve(options.out ?? basename(name));
  if (!options.force && (await exists(dest))) throw new FerryError('EEXIST', `${dest} already exists (use --force to overwrite it)`);
  const info = await connection.request('stat', { name });
  const { part, state: statePath } = partialPathsFor(dest);
  const previous = await readState(statePath);
  const sameContent = previous?.sha256 === info.sha256 && previous.chunkSize === info.chunkSize && previous.size === info.size;
  let handle: FileHandle;
  try {
    handle = await open(part, sameContent && (await exists(part)) ? 'r+' : 'w+');
    if (!sameContent)
      await writeFile(
        statePath,
        JSON.stringify({ name, sha256: info.sha256, size: info.size, chunkSize: info.chunkSize } satisfies PartialState),
      );
  } catch (error) {
    throw fromSystemError(error, part);
  }
  let closed = false;
  const sha256 = runningSha256(info.size);
  try {
    const fromChunk = sameContent ? await verifiedPrefix(connection, handle, info, sha256, xxh64) : 0;
    await handle.truncate(fromChunk * info.chunkSize);
    const receiver = chunkReceiver(connection, handle, sha256, xxh64, options, fromChunk * info.chunkSize);
    await connection.request('get', { name, sha256: info.sha256, fromChunk }, receiver.sinkFor);
    const bytesReceived = await receiver.done;
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
    return { name, path: dest, size: info.size, sha256: digest, bytesReceived, resumed: fromChunk > 0 };
  } finally {
    if (!closed) {
      sha256.drop();
      await handle.close();
    }
  }
}

/** Bounce buffer for `copyIntoShared`; grows to the largest piece seen. */
let bounce = Buffer.alloc(0);

/**
 * Copies `source` into `target` (a view of a SharedArrayBuffer) at `at`. V8 copies into shared
 * memory word by word only when source and target are aligned alike (mod 8), and byte by byte
 * otherwise: a piece of a frame starts wherever its header ended, so a plain `set` ran at about
 * 2.8 GB/s here against 11 aligned (and took a third of the client's main thread in a 1 GiB
 * download). Going through an ordinary buffer at the target's alignment makes both copies fast.
 */
function copyIntoShared(target: Buffer, source: Uint8Array, at: number): void {
  const misalignment = (source.byteOffset - at) & 7;
  if (misalignment === 0) {
    target.set(source, at);
    return;
  }
  const shift = at & 7;
  if (bounce.length < source.byteLength + 8) bounce = Buffer.allocUnsafeSlow(source.byteLength + 8);
  bounce.set(source, shift);
  target.set(bounce.subarray(shift, shift + source.byteLength), at);
}

/**
 * Receives a download stream's chunks in order, checks each one's xxh64, feeds the SHA-256 and
 * writes it at its offset. `sinkFor` is handed to the `get` request so the stream is open before
 * its first chunk is decoded; `done` settles with the bytes received once the last one is written.
 */
function chunkReceiver(
  connection: ClientConnection,
  handle: FileHandle,
  sha256: RunningSha256,
  xxh64: (bytes: Uint8Array) => bigint,
  options: DownloadOptions,
  startOffset: number,
): { sinkFor: (get: GetResult) => StreamSink; done: Promise<number> } {
  let settle!: { resolve: (received: number) => void; reject: (error: FerryError) => void };
  const done = new Promise<number>((resolve, reject) => {
    settle = { resolve, reject };
  });
  done.catch(() => {}); // awaited by the caller once `get` is answered; never unhandled meanwhile
  const sinkFor = (get: GetResult): StreamSink => {
    // Shared memory: the hashing thread reads a chunk in place while it is written to disk.
    // No bigger than the file needs: a small file gets one small buffer.
    const slotBytes = Math.max(1, Math.min(get.chunkSize, get.size));
    const free = Array.from({ length: Math.max(1, Math.min(writesInFlight, get.chunkCount - get.fromChunk)) }, () => {
      const shared = new SharedArrayBuffer(slotBytes);
      return { shared, buffer: Buffer.from(shared) };
    });
    let nextOffset = startOffset;
    let received = 0;
    let writing = 0;
    let unsyncedBytes = 0;
    let backgroundSync: Promise<void> | undefined;
    let current: { header: ChunkHeader; slot: (typeof free)[number]; filled: number } | undefined;
    let failed = false;
    let lastDone = startOffset;
    const fail = (error: FerryError): void => {
      if (failed) return;
      failed = true;
      connection.closeStream(get.stream);
      connection.resume();
      // The attempt's last word on what it received: every verified chunk counts, also one whose
      // write is still under way (it lands, and the next attempt keeps it without fetching it).
      options.onProgress?.({ name: get.name, done: lastDone, total: get.size, transferred: received });
      settle.reject(error);
    };
    const finishIfDone = (): void => {
      if (!failed && nextOffset === get.size && writing === 0 && !current) {
        connection.closeStream(get.stream);
        void (backgroundSync ?? Promise.resolve()).then(
          () => settle.resolve(received),
          (error: unknown) => fail(fromSystemError(error, `syncing ${get.name}`)),
        );
      }
    };
    const syncInBackground = (): void => {
      if (backgroundSync || unsyncedBytes < backgroundSyncBytes) return;
      unsyncedBytes = 0;
      backgroundSync = handle.datasync().finally(() => {
        backgroundSync = undefined;
      });
      backgroundSync.catch(() => {}); // a failure shows again in the final sync
    };
    queueMicrotask(finishIfDone); // a download with nothing left to fetch ends at once
    return {
      chunkStart(header) {
        const slot = free.pop();
        if (header.offset !== nextOffset || header.length !== Math.min(get.chunkSize, get.size - nextOffset) || !slot) {
          return fail(new FerryError('EPROTO', `unexpected chunk at offset ${header.offset} (expected ${nextOffset})`));
        }
        current = { header, slot, filled: 0 };
      },
      chunkData(piece) {
        if (!current) return;
        copyIntoShared(current.slot.buffer, piece, current.filled);
        current.filled += piece.byteLength;
      },
      chunkEnd() {
        const chunk = current;
        current = undefined;
        if (!chunk || failed) return;
        const { slot, header } = chunk;
        const bytes = slot.buffer.subarray(0, header.length);
        if (xxh64(bytes) !== header.xxh64)
          return fail(new FerryError('ECHECKSUM', `${get.name}: chunk at offset ${header.offset} failed its xxh64 check`));
        nextOffset += header.length;
        received += header.length;
        writing += 1;
        if (free.length === 0) connection.pause();
        const hashed = sha256.update(slot.shared, header.length);
        Promise.all([hashed, handle.write(bytes, 0, bytes.length, header.offset)]).then(
          () => {
            writing -= 1;
            free.push(slot);
            unsyncedBytes += header.length;
            if (failed) return; // this attempt has already reported its end
            syncInBackground();
            connection.resume();
            lastDone = header.offset + header.length;
            options.onProgress?.({ name: get.name, done: lastDone, total: get.size, transferred: received });
            finishIfDone();
          },
          (error: unknown) => fail(fromSystemError(error, `writing ${get.name}`)),
        );
      },
      fail,
    };
  };
  return { sinkFor, done };
}
