/**
 * The messages between the main thread and the chunk workers: one typed place for both sides.
 * A chunk's buffer is shared memory (the server's budget, the client's ring): a task carries a
 * reference, the worker reads or writes it in place, and the caller must not touch it until the
 * task settles.
 */
import type { PackMeasure } from '../src/compression/codecs.js';
import type { CodecName } from '../src/protocol/frames.js';
import { codeOfSystemError, describeSystemError } from '../src/system-errors.js';

/** ECHANGED: a file replaced or deleted in a shared store while it was being read. */
export type TaskFailureCode = 'ECHECKSUM' | 'ECHANGED' | ReturnType<typeof codeOfSystemError>;

export interface TaskFailure {
  ok: false;
  code: TaskFailureCode;
  message: string;
}

/** A failed system call as a task failure: `what` failed, and why. */
export function taskFailure(error: unknown, what: string): TaskFailure {
  return { ok: false, code: codeOfSystemError(error), message: `${what}: ${describeSystemError(error)}` };
}

/** Verify `xxh64` over buffer[0, length), then write those bytes at `offset` of the open file `fd`. */
export interface WriteChunkTask {
  /**
   * A descriptor the main thread opened (descriptors belong to the process: a worker may use it);
   * undefined for a store that writes the chunk itself (S3): it is only unpacked and checked here.
   */
  fd: number | undefined;
  offset: number;
  length: number;
  /** The sender's xxh64 of the bytes, checked before they are written; undefined: the sender gave none (a tus body), so the writer computes it. */
  xxh64: bigint | undefined;
  buffer: SharedArrayBuffer;
  /**
   * Set when the buffer holds the chunk compressed (`bytes` of it, with `codec`): it is unpacked
   * into the same buffer first, and `length` is then its raw length.
   */
  packed?: PackedBytes | undefined;
}

/** Read `length` bytes at `offset` of the open file `fd` into `buffer` and check them against `xxh64`. */
export interface ReadChunkTask {
  /** Where to read it from; undefined: it is in the buffer already (read from an object store), to be checked (and packed) here. */
  fd: number | undefined;
  offset: number;
  length: number;
  xxh64: bigint;
  buffer: SharedArrayBuffer;
  /** Compress the chunk with this codec once it is checked, if that shrinks it enough (`packIfSmaller`); `measured` says what it took. */
  pack?: CodecName | undefined;
}

/**
 * A chunk read and checked: when it was packed, the buffer holds `packed.bytes` of it compressed.
 * `measured`: what packing it took, when that was asked.
 */
export type ReadChunkResult = { ok: true; packed?: PackedBytes; measured?: PackMeasure } | TaskFailure;

/** A buffer's first `bytes` are a chunk compressed with `codec`. */
export interface PackedBytes {
  codec: CodecName;
  bytes: number;
}

/**
 * Compress the first `length` bytes of `buffer` with `codec` (the client's side of an upload).
 * The result holds the compressed bytes, or nothing when they would not save enough.
 */
export interface PackChunkTask {
  codec: CodecName;
  buffer: SharedArrayBuffer;
  length: number;
}

export interface PackChunkResult {
  packed: Uint8Array | undefined;
  /** What packing took (what `auto` weighs against the link). */
  measure: PackMeasure;
}

/** Unpack the first `bytes` of `buffer` (compressed with `codec`) into `buffer` itself: `rawLength` bytes. */
export interface UnpackChunkTask {
  codec: CodecName;
  buffer: SharedArrayBuffer;
  bytes: number;
  rawLength: number;
}

/** Undefined when it unpacked; else why not. */
export type UnpackChunkResult = string | undefined;

/** A written chunk's xxh64: the one checked, or the one computed for a chunk that came without one. */
export type WriteChunkResult = { ok: true; xxh64: bigint } | TaskFailure;

/** SHA-256 of the first `size` bytes of `path` (lowercase hex), and the xxh64 of each `chunkSize` chunk. */
export interface HashFileTask {
  path: string;
  size: number;
  chunkSize: number;
}

export type HashFileResult = { ok: true; sha256: string; chunkHashes: bigint[] } | TaskFailure;

/** Exported task function names of workers/chunk-worker (the piscina pool's). */
export const taskNames = {
  writeChunk: 'writeChunk',
  readChunk: 'readChunk',
  packChunk: 'packChunk',
  unpackChunk: 'unpackChunk',
  hashFile: 'hashFile',
  ready: 'ready',
} as const;

/** The tasks of the hashing thread (workers/sha256-worker.ts, its functions in sha256-tasks.ts). */
export type Sha256TaskName = 'hashUpdate' | 'hashDigest' | 'hashDrop' | 'hashStartResumable' | 'hashSave' | 'ready';

/** A message to the hashing thread: run task `name`; the reply carries the same `id`. */
export interface Sha256Request {
  id: number;
  name: Sha256TaskName;
  task: unknown;
}

/** The hashing thread's answer to request `id`: what the task returned, or why it failed. */
export type Sha256Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; message: string };

/**
 * Feed `length` bytes of `buffer` to the running SHA-256 named `key` (created on first use).
 * Runs on the hashing thread, whose tasks run one at a time in the order they were sent.
 * A SharedArrayBuffer is read in place; an ArrayBuffer is moved there and back.
 */
export interface HashUpdateTask {
  key: string;
  buffer: ArrayBuffer | SharedArrayBuffer;
  length: number;
  /** The hash was started with `hashStartResumable`: if the thread no longer has it (it restarted), the task fails. */
  resumable?: boolean;
}

export interface HashUpdateResult {
  buffer: ArrayBuffer | SharedArrayBuffer;
}

/** Finish the SHA-256 named `key` (of nothing, if it was never fed) and forget it. */
export interface HashDigestTask {
  key: string;
  /** As for HashUpdateTask. */
  resumable?: boolean;
}

/** Forget the SHA-256 named `key`. */
export interface HashDropTask {
  key: string;
}

/**
 * Start the SHA-256 named `key` as one whose state can be saved (`hashSave`) and taken up again
 * elsewhere (saveable-sha256.ts): from `state` (a saved one, sha256-state.ts's text), or from nothing. Without this task,
 * a key's hash is Node's, which cannot save its state.
 */
export interface HashStartResumableTask {
  key: string;
  state?: string | undefined;
}

/** The state of the resumable SHA-256 named `key` after everything fed so far, as sha256-state.ts's text (at most about 150 characters). */
export interface HashSaveTask {
  key: string;
}
