/**
 * Piscina worker: the heavy, blocking part of a transfer. Thin on purpose: each task checks,
 * reads or writes one thing and returns. Synchronous fs calls are right here: a worker runs one
 * task at a time, and a blocking call spares the libuv thread-pool hop.
 */
import { type Hash, createHash } from 'node:crypto';
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { move, transferableSymbol, valueSymbol } from 'piscina';
import xxhash from 'xxhash-wasm';
import {
  type BufferTaskResult,
  type HashDigestTask,
  type HashDropTask,
  type HashUpdateResult,
  type HashUpdateTask,
  type ReadChunkTask,
  type HashFileResult,
  type HashFileTask,
  type WriteChunkTask,
  taskFailure,
} from './tasks.js';
import { hashFileSync } from '../src/hashing/file-hashes.js';

const xxhashApi = await xxhash();
const { h64Raw } = xxhashApi;

/** Moves `result.buffer` back to the main thread instead of cloning it. */
function withBuffer<R extends { buffer: ArrayBuffer | SharedArrayBuffer }>(result: R): R {
  if (result.buffer instanceof SharedArrayBuffer) return result;
  return move({
    get [transferableSymbol]() {
      return [result.buffer];
    },
    get [valueSymbol]() {
      return result;
    },
  }) as unknown as R;
}

function withFile<T>(path: string, flags: string, use: (fd: number) => T): T {
  const fd = openSync(path, flags);
  try {
    return use(fd);
  } finally {
    closeSync(fd);
  }
}

export function writeChunk(task: WriteChunkTask): BufferTaskResult {
  const bytes = new Uint8Array(task.buffer, 0, task.length);
  if (h64Raw(bytes) !== task.xxh64) {
    return withBuffer({ ok: false, code: 'ECHECKSUM', message: `chunk at offset ${task.offset}: xxh64 mismatch`, buffer: task.buffer });
  }
  try {
    withFile(task.path, 'r+', (fd) => {
      let done = 0;
      while (done < task.length) done += writeSync(fd, bytes, done, task.length - done, task.offset + done);
    });
    return withBuffer({ ok: true, buffer: task.buffer });
  } catch (error) {
    return withBuffer({ ...taskFailure(error, `write at offset ${task.offset}`), buffer: task.buffer });
  }
}

export function readChunk(task: ReadChunkTask): BufferTaskResult {
  const bytes = new Uint8Array(task.buffer, 0, task.length);
  try {
    const got = withFile(task.path, 'r', (fd) => {
      let done = 0;
      while (done < task.length) {
        const n = readSync(fd, bytes, done, task.length - done, task.offset + done);
        if (n === 0) break;
        done += n;
      }
      return done;
    });
    if (got !== task.length || h64Raw(bytes) !== task.xxh64) {
      return withBuffer({ ok: false, code: 'ECHECKSUM', message: `stored chunk at offset ${task.offset} does not match its recorded xxh64`, buffer: task.buffer });
    }
    return withBuffer({ ok: true, buffer: task.buffer });
  } catch (error) {
    return withBuffer({ ...taskFailure(error, `read at offset ${task.offset}`), buffer: task.buffer });
  }
}

export function hashFile(task: HashFileTask): HashFileResult {
  try {
    return { ok: true, ...hashFileSync(task.path, task.size, task.chunkSize, xxhashApi) };
  } catch (error) {
    return taskFailure(error, 'hashing the file');
  }
}

// ---- running SHA-256s (the single hashing thread only: they keep state between tasks) ----

const runningHashes = new Map<string, Hash>();

function runningHash(key: string): Hash {
  let hash = runningHashes.get(key);
  if (!hash) {
    hash = createHash('sha256');
    runningHashes.set(key, hash);
  }
  return hash;
}

export function hashUpdate(task: HashUpdateTask): HashUpdateResult {
  runningHash(task.key).update(new Uint8Array(task.buffer, 0, task.length));
  return withBuffer({ buffer: task.buffer });
}

export function hashDigest(task: HashDigestTask): string {
  const digest = runningHash(task.key).digest('hex');
  runningHashes.delete(task.key);
  return digest;
}

export function hashDrop(task: HashDropTask): void {
  runningHashes.delete(task.key);
}
