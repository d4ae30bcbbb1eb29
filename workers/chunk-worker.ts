/**
 * Piscina worker: the heavy, blocking part of a transfer (the running SHA-256s have a thread of
 * their own: workers/sha256-worker.ts). Thin on purpose: each task checks, reads or writes one
 * thing and returns; the work itself is chunk-io.ts's (shared with the main thread's path for
 * small chunks). Blocking fs calls are right here: a worker runs one task at a
 * time, and a blocking call spares the libuv thread-pool hop.
 */
import { move, transferableSymbol, valueSymbol } from 'piscina';
import xxhash from 'xxhash-wasm';
import { localCodec, timedPack, unpackInPlace } from '../src/compression/codecs.js';
import { hashFileSync } from '../src/hashing/file-hashes.js';
import { loadXxh64 } from '../src/hashing/xxh64.js';
import { blockingIo, readChunk as readChunkWith, writeChunk as writeChunkWith } from './chunk-io.js';
import {
  type PackChunkResult,
  type PackChunkTask,
  type ReadChunkResult,
  type UnpackChunkResult,
  type UnpackChunkTask,
  type HashFileResult,
  type HashFileTask,
  type ReadChunkTask,
  type WriteChunkResult,
  type WriteChunkTask,
  taskFailure,
} from './tasks.js';

const xxhashApi = await xxhash();
const xxh64 = await loadXxh64();

/** Returns `result` with `buffers` moved to the main thread instead of cloned. */
function moving<R extends object>(result: R, buffers: ArrayBuffer[]): R {
  return move({
    get [transferableSymbol]() {
      return buffers;
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

export function writeChunk(task: WriteChunkTask): Promise<WriteChunkResult> {
  return writeChunkWith(task, blockingIo, xxh64);
}

export function readChunk(task: ReadChunkTask): Promise<ReadChunkResult> {
  return readChunkWith(task, blockingIo, xxh64);
}

/** A client's chunk compressed (the bytes are the client's ring slot, read in place), or nothing if that does not pay. */
export function packChunk(task: PackChunkTask): PackChunkResult {
  const raw = new Uint8Array(task.buffer, 0, task.length);
  const codec = localCodec(task.codec);
  if (!codec) return { packed: undefined, measure: { rawBytes: raw.byteLength, packedBytes: undefined, ms: 0 } };
  const { packed, measure } = timedPack(codec, raw);
  if (!packed) return { packed: undefined, measure };
  // A fresh copy the size of the result, moved back: the codec's output may sit in a bigger pool.
  const owned = new Uint8Array(packed);
  return moving({ packed: owned, measure }, [owned.buffer]);
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
