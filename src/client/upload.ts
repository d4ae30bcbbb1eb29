import { type FileHandle, open } from 'node:fs/promises';
import { FerryError } from '../protocol/errors.js';
import { fromSystemError } from '../system-errors.js';
import { xxh64FromHex } from '../protocol/frames.js';
import { maxHashesPageEntries } from '../protocol/limits.js';
import type { FileInfo } from '../protocol/messages.js';
import type { ClientConnection } from './connection.js';
import { LocalFileReading } from './local-file-reading.js';
import { isRetryable } from './retry.js';
import type { ProgressListener } from './progress.js';
import { loadXxh64 } from '../hashing/xxh64.js';

export interface UploadOptions {
  /** Remote name; defaults to the local file's base name. */
  name: string;
  force?: boolean;
  onProgress?: ProgressListener;
  /** Called with the file's SHA-256 just before `putEnd` is sent. */
  onFinishing?: (sha256: string) => void;
  /**
   * What earlier attempts of this upload read of the file, to go on from (the client passes one
   * per upload, across its retries); without it the attempt reads and hashes the whole file.
   */
  reading?: LocalFileReading;
}

export interface UploadResult {
  name: string;
  size: number;
  sha256: string;
  /** Payload bytes sent in this run (what a resume saved does not count). */
  bytesSent: number;
  resumed: boolean;
  file: FileInfo;
}

/**
 * Chunk buffers the upload cycles through: one being read while others are on the wire and being
 * hashed. Shared memory, so the hashing thread reads them in place while the socket sends them.
 */
const ringSize = 4;
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
  const tail = Buffer.alloc(Math.min(size, fingerprintBytes));
  await handle.read(tail, 0, tail.length, size - tail.length);
  return `v1:${size}:${xxh64(head).toString(16)}:${xxh64(tail).toString(16)}`;
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

/**
 * Uploads (or resumes uploading) one local file. One pass over the file: every chunk is read,
 * hashed with xxh64, fed to the SHA-256 (on the hashing thread, while it is sent), and sent
 * unless the server already has a chunk with that hash at that index. A chunk an earlier attempt
 * read (`options.reading`) is not hashed again, nor even read when the server has it.
 */
export async function uploadFile(connection: ClientConnection, path: string, options: UploadOptions): Promise<UploadResult> {
  const xxh64 = await loadXxh64();
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    throw fromSystemError(error, path);
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) throw new FerryError('EBADNAME', `${path}: not a regular file`);
    const size = stats.size;
    const fingerprint = await fingerprintOf(handle, size, xxh64);
    const put = await connection.request('put', { name: options.name, size, fingerprint, force: options.force ?? false });
    const onServer = await serverChunkHashes(connection, put.stream, put.verified);
    let aborted: FerryError | undefined;
    connection.openStream(put.stream, {
      chunkStart() {},
      chunkData() {},
      chunkEnd() {},
      fail(error) {
        aborted = error;
      },
    });
    // What earlier attempts of this upload read is kept (see LocalFileReading); alone, this attempt reads everything.
    const reading = options.reading ?? new LocalFileReading();
    await reading.begin(size, fingerprint, put.chunkSize);
    try {
      const { chunkSize, stream } = put;
      // No bigger than the file needs: a small file gets one small buffer.
      const slotBytes = Math.max(1, Math.min(chunkSize, size));
      const ring = Array.from({ length: Math.max(1, Math.min(ringSize, Math.ceil(size / chunkSize))) }, () => {
        const shared = new SharedArrayBuffer(slotBytes);
        return { shared, buffer: Buffer.from(shared), busy: Promise.resolve() };
      });
      let bytesSent = 0;
      let done = 0;
      let lastSentAt = Date.now();
      const keepAlive = (): void => {
        // Skipping what the server has can take a while on a big file: keep the connection from
        // looking stalled to the server.
        if (Date.now() - lastSentAt > keepaliveMs) {
          lastSentAt = Date.now();
          connection.request('ping', {}).catch(() => {});
        }
      };
      for (let index = 0, offset = 0; offset < size; index += 1, offset += chunkSize) {
        if (aborted) throw aborted;
        if (connection.lost) throw connection.lost;
        const length = Math.min(chunkSize, size - offset);
        const known = reading.hashOf(index);
        done += length;
        if (known !== undefined && onServer.get(index) === known) {
          // Read and hashed by an earlier attempt, and the server has it: nothing to do.
          keepAlive();
          options.onProgress?.({ name: options.name, done, total: size, transferred: bytesSent });
          continue;
        }
        const slot = ring[index % ring.length]!;
        await slot.busy;
        const bytes = slot.buffer.subarray(0, length);
        const { bytesRead } = await handle.read(bytes, 0, length, offset);
        if (bytesRead !== length) throw new FerryError('ECHANGED', `${path} shrank while it was being uploaded`);
        const hash = xxh64(bytes);
        if (known !== undefined && hash !== known) throw new FerryError('ECHANGED', `${path} changed while it was being uploaded`);
        const hashed = known === undefined ? reading.add(index, hash, slot.shared, length) : Promise.resolve();
        if (onServer.get(index) === hash) {
          slot.busy = hashed;
          keepAlive();
        } else {
          lastSentAt = Date.now();
          const flushed = new Promise<void>((resolve) =>
            connection.writeChunk({ stream, offset, xxh64: hash, length }, bytes, () => resolve()),
          );
          slot.busy = Promise.all([hashed, flushed]).then(() => {});
          bytesSent += length;
          await connection.drained();
        }
        // Awaited when the slot comes round again; an attempt that ends first leaves it unawaited.
        slot.busy.catch(() => {});
        options.onProgress?.({ name: options.name, done, total: size, transferred: bytesSent });
      }
      if (aborted) throw aborted;
      const digest = await reading.digest();
      options.onFinishing?.(digest);
      // The server may have aborted the stream (a full disk) while putEnd was on its way: its
      // abort comes before putEnd's reply ("no upload on stream"), and is the cause to report.
      const file = await connection.request('putEnd', { stream, sha256: digest }).catch((error: unknown) => {
        throw aborted ?? error;
      });
      return { name: file.name, size: file.size, sha256: file.sha256, bytesSent, resumed: put.resumed, file };
    } catch (error) {
      // The server still holds this upload for us: hang up so it saves the progress and frees
      // the name (a later run resumes), rather than leave it attached to a connection we reuse.
      if (!connection.lost) connection.destroy();
      // Kept for the next attempt only while the cause may pass; a file that changed starts over.
      if (!options.reading || !isRetryable(error)) reading.forget();
      throw error;
    } finally {
      connection.closeStream(put.stream);
    }
  } finally {
    await handle.close();
  }
}
