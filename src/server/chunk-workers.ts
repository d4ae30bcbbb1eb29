import type { Piscina } from 'piscina';
import { blockingIo, libuvIo, readChunk, writeChunk } from '../../workers/chunk-io.js';
import {
  type HashFileResult,
  type HashFileTask,
  type ReadChunkResult,
  type ReadChunkTask,
  type WriteChunkResult,
  type WriteChunkTask,
  taskNames,
} from '../../workers/tasks.js';
import { loadXxh64 } from '../hashing/xxh64.js';
import { allThreadsStarted, workerPool } from '../worker-pool.js';

/**
 * Chunks up to this size are checked and written (or read and checked) from the main thread, the
 * I/O itself on libuv's pool (but for reads of up to `blockingReadMaxBytes`, which block): a
 * piscina round trip costs more main-thread time than their xxh64 (under 50 µs).
 * docs/perf-notes.md has the profile behind this.
 */
export const inlineChunkMaxBytes = 256 * 1024;

/**
 * Stored chunks of at most this many bytes are read with a blocking call on the main thread: a
 * read from the page cache costs a few microseconds, where a hop through libuv's pool costs tens
 * in wake-ups on these VMs (docs/perf-notes.md, "Small reads block"). A read that misses the cache
 * waits on the disk for one small read, as the open before it may for the file's inode.
 */
export const blockingReadMaxBytes = 64 * 1024;

/** The piscina pool that hashes, writes and reads chunks off the main thread. */
export class ChunkWorkers {
  readonly #pool: Piscina;
  /** xxh64 for the chunks checked on this thread; loaded by `ready()`. */
  #xxh64: ((bytes: Uint8Array) => bigint) | undefined;

  readonly #threads: number;

  constructor(options: { threads: number; maxQueue: number; onError: (error: Error) => void }) {
    this.#threads = options.threads;
    this.#pool = workerPool(options);
  }

  /** Starts every thread and loads what the main thread's own chunk checks need; await it before the first chunk. */
  async ready(): Promise<void> {
    this.#xxh64 = await loadXxh64();
    await allThreadsStarted(this.#pool, this.#threads);
  }

  /** The xxh64 of a few bytes, on this thread (for a whole small file). */
  xxh64(bytes: Uint8Array): bigint {
    return this.#hash()(bytes);
  }

  #hash(): (bytes: Uint8Array) => bigint {
    if (!this.#xxh64) throw new Error('ChunkWorkers.ready() was not awaited');
    return this.#xxh64;
  }

  get threads(): number {
    return this.#pool.threads.length;
  }

  /**
   * Unpacks a packed chunk, checks its xxh64 (or computes it, if it came without one) and writes
   * it: in the pool, or here if it is small and not packed (see `inlineChunkMaxBytes`).
   */
  writeChunk(task: WriteChunkTask): Promise<WriteChunkResult> {
    if (task.length <= inlineChunkMaxBytes && !task.packed) return writeChunk(task, libuvIo, this.#hash());
    return this.#pool.run(task, { name: taskNames.writeChunk });
  }

  /** Reads a chunk and checks its xxh64, and packs it if asked: in the pool, or here if it is small and not to be packed. */
  readChunk(task: ReadChunkTask): Promise<ReadChunkResult> {
    if (task.length <= inlineChunkMaxBytes && !task.pack)
      return readChunk(task, task.length <= blockingReadMaxBytes ? blockingIo : libuvIo, this.#hash());
    return this.#pool.run(task, { name: taskNames.readChunk });
  }

  /** One pass over a file: its SHA-256 and the xxh64 of each chunk. */
  hashFile(task: HashFileTask): Promise<HashFileResult> {
    return this.#pool.run(task, { name: taskNames.hashFile });
  }

  async close(): Promise<void> {
    await this.#pool.close();
  }
}
