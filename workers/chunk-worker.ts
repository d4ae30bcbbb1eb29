/**
 * Piscina worker: the heavy, blocking part of a transfer. Thin on purpose: each task checks,
 * reads or writes one thing and returns; the work itself is chunk-io.ts's (shared with the main
 * thread's path for small chunks). Blocking fs calls are right here: a worker runs one task at a
 * time, and a blocking call spares the libuv thread-pool hop.
 */
import { type Hash, createHash } from 'node:crypto';
import { move, transferableSymbol, valueSymbol } from 'piscina';
import xxhash from 'xxhash-wasm';
import { localCodec, timedPack, unpackInPlace } from '../src/compression/codecs.js';
import { hashFileSync } from '../src/hashing/file-hashes.js';
import { loadXxh64 } from '../src/hashing/xxh64.js';
import { type SaveableSha256, saveableSha256Source } from '../src/hashing/saveable-sha256.js';
import { decodeSha256State, encodeSha256State } from '../src/hashing/sha256-state.js';
import { blockingIo, readChunk as readChunkWith, writeChunk as writeChunkWith } from './chunk-io.js';
import {
  type PackChunkResult,
  type PackChunkTask,
  type ReadChunkResult,
  type UnpackChunkResult,
  type UnpackChunkTask,
  type HashDigestTask,
  type HashDropTask,
  type HashSaveTask,
  type HashStartResumableTask,
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

/** Moves `result.buffer` back to the main thread instead of cloning it. */
function withBuffer<R extends { buffer: ArrayBuffer | SharedArrayBuffer }>(result: R): R {
  return result.buffer instanceof SharedArrayBuffer ? result : moving(result, [result.buffer]);
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

// ---- running SHA-256s (the single hashing thread only: they keep state between tasks) ----

/** Running hashes by key: Node's (the fastest here), or one whose state can be saved (see saveable-sha256.ts). */
const runningHashes = new Map<string, Hash | SaveableSha256>();

function runningHash(key: string, resumable = false): Hash | SaveableSha256 {
  let hash = runningHashes.get(key);
  // A resumable hash is never made here: one this thread does not have was lost with the thread before it.
  if (!hash && resumable) throw new Error(`the resumable SHA-256 under ${key} is gone (the hashing thread restarted)`);
  if (!hash) {
    hash = createHash('sha256');
    runningHashes.set(key, hash);
  }
  return hash;
}

export async function hashStartResumable(task: HashStartResumableTask): Promise<void> {
  const state = task.state === undefined ? undefined : decodeSha256State(task.state);
  runningHashes.set(task.key, await saveableSha256Source().make(state));
}

export function hashSave(task: HashSaveTask): string {
  const hash = runningHashes.get(task.key);
  if (!hash || !('state' in hash)) throw new Error(`no resumable SHA-256 under ${task.key}`);
  return encodeSha256State(hash.state());
}

export function hashUpdate(task: HashUpdateTask): HashUpdateResult {
  runningHash(task.key, task.resumable).update(new Uint8Array(task.buffer, 0, task.length));
  return withBuffer({ buffer: task.buffer });
}

export function hashDigest(task: HashDigestTask): string {
  const hash = runningHash(task.key, task.resumable);
  const digest = 'state' in hash ? hash.digestHex() : hash.digest('hex');
  runningHashes.delete(task.key);
  return digest;
}

export function hashDrop(task: HashDropTask): void {
  runningHashes.delete(task.key);
}
