import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import type { XXHashAPI } from 'xxhash-wasm';

/** What one pass over a stored (or partial) file gives: the whole file's SHA-256 and each chunk's xxh64. */
export interface FileHashes {
  sha256: string;
  /** xxh64 of chunk i at index i. */
  chunkHashes: bigint[];
}

/** Bytes read per system call. */
const readBytes = 4 * 1024 * 1024;
let readBuffer: Buffer | undefined;

/**
 * Reads the first `size` bytes of `path` once and hashes them: SHA-256 over everything, xxh64
 * over each `chunkSize` piece. Synchronous: it runs in a chunk worker, or on the main thread where
 * nothing else is waiting (start-up recovery, `ferry fsck`). A file shorter than `size` throws
 * (code EIO); other failures are the system's errors.
 */
export function hashFileSync(path: string, size: number, chunkSize: number, xxhash: XXHashAPI): FileHashes {
  readBuffer ??= Buffer.allocUnsafe(readBytes);
  const buffer = readBuffer;
  const sha256 = createHash('sha256');
  const chunkHashes: bigint[] = [];
  const fd = openSync(path, 'r');
  try {
    let chunk = xxhash.create64();
    let chunkLeft = Math.min(chunkSize, size);
    for (let position = 0; position < size;) {
      const read = readSync(fd, buffer, 0, Math.min(buffer.length, chunkLeft), position);
      if (read === 0) throw Object.assign(new Error(`file ends at ${position} of ${size} bytes`), { code: 'EIO' });
      const bytes = buffer.subarray(0, read);
      sha256.update(bytes);
      chunk.update(bytes);
      position += read;
      chunkLeft -= read;
      if (chunkLeft === 0) {
        chunkHashes.push(chunk.digest());
        chunk = xxhash.create64();
        chunkLeft = Math.min(chunkSize, size - position);
      }
    }
  } finally {
    closeSync(fd);
  }
  return { sha256: sha256.digest('hex'), chunkHashes };
}
