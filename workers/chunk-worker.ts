/**
 * Piscina worker: the heavy, blocking part of a transfer. Thin on purpose: each task checks,
 * reads or writes one thing and returns; the work itself is chunk-io.ts's (shared with the main
 * thread's path for small chunks). Blocking fs calls are right here: a worker runs one task at a
 * time, and a blocking call spares the libuv thread-pool hop.
 */
import { type Hash, createHash } from 'node:crypto';
import { move, transferableSymbol, valueSymbol } from 'piscina';
import xxhash from 'xxhash-wasm';
import { hashFileSync } from '../src/hashing/file-hashes.js';
import { blockingIo, readChunk as readChunkWith, writeChunk as writeChunkWith } from './chunk-io.js';
import {
  type BufferTaskResult,
  type HashDigestTask,
  type HashDropTask,
  type HashFileResult,
  type HashFileTask,
  type HashUpdateResult,
  type HashUpdateTask,
  type ReadChunkTask,
  type WriteChunkResult,
  type WriteChunkTask,
  taskFailure,
} from './tasks.js';

const xxhashApi = await xxhash();
const xxh64 = (bytes: Uint8Array): bigint => xxhashApi.h64Raw(bytes);

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

/** Answers once this thread has loaded everything it needs (its modules, xxhash's WebAssembly). */
export function ready(): true {
  return true;
}

export async function writeChunk(task: WriteChunkTask): Promise<WriteChunkResult> {
  return withBuffer(await writeChunkWith(task, blockingIo, xxh64));
}

export async function readChunk(task: ReadChunkTask): Promise<BufferTaskResult> {
  return withBuffer(await readChunkWith(task, blockingIo, xxh64));
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
