/**
 * Piscina worker: the heavy, blocking part of a transfer. Thin on purpose: each task checks,
 * reads or writes one thing and returns; the work itself is chunk-io.ts's (shared with the main
 * thread's path for small chunks). Blocking fs calls are right here: a worker runs one task at a
 * time, and a blocking call spares the libuv thread-pool hop.
 */
import { type Hash, createHash } from 'node:crypto';
import { move, transferableSymbol, valueSymbol } from 'piscina';
import xxhash from 'xxhash-wasm';
import { localCodecs, packIfSmaller, unpackInPlace } from '../src/compression/codecs.js';
import { hashFileSync } from '../src/hashing/file-hashes.js';
import { blockingIo, readChunk as readChunkWith, writeChunk as writeChunkWith } from './chunk-io.js';
import {
  type PackChunkResult,
  type PackChunkTask,
  type ReadChunkResult,
  type UnpackChunkResult,
  type UnpackChunkTask,
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

export async function readChunk(task: ReadChunkTask): Promise<ReadChunkResult> {
  return withBuffer(await readChunkWith(task, blockingIo, xxh64));
}

/** A client's chunk compressed (the bytes are the client's ring slot, read in place), or nothing if that does not pay. */
export function packChunk(task: PackChunkTask): PackChunkResult {
  const codec = localCodecs().get(task.codec);
  const started = performance.now();
  const packed = codec && packIfSmaller(codec, new Uint8Array(task.buffer, 0, task.length));
  const ms = performance.now() - started;
  if (!packed) return { packed: undefined, ms };
  // A fresh copy the size of the result, moved back: the codec's output may sit in a bigger pool.
  const owned = new Uint8Array(packed);
  return move({
    get [transferableSymbol]() {
      return [owned.buffer];
    },
    get [valueSymbol]() {
      return { packed: owned, ms };
    },
  }) as unknown as PackChunkResult;
}

export function unpackChunk(task: UnpackChunkTask): UnpackChunkResult {
  return unpackInPlace(task.codec, task.buffer, task.bytes, task.rawLength);
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
