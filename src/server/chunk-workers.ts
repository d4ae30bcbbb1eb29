import { Piscina } from 'piscina';
import {
  type BufferTaskResult,
  type ReadChunkTask,
  type HashFileResult,
  type HashFileTask,
  type WriteChunkTask,
  taskNames,
} from '../../workers/tasks.js';
import { workerExecArgv, workerModuleUrl } from '../worker-module.js';
import { inlineChunkMaxBytes, readChunkInline, writeChunkInline } from './inline-chunk-io.js';

/** The piscina pool that hashes, writes and reads chunks off the main thread. */
export class ChunkWorkers {
  readonly #pool: Piscina;

  constructor(options: { threads: number; maxQueue: number }) {
    this.#pool = new Piscina({
      filename: workerModuleUrl.href,
      ...(workerExecArgv ? { execArgv: workerExecArgv } : {}),
      minThreads: options.threads,
      maxThreads: options.threads,
      maxQueue: options.maxQueue,
      idleTimeout: 60_000,
    });
  }

  get threads(): number {
    return this.#pool.threads.length;
  }

  /** Checks a chunk's xxh64 and writes it: in the pool, or here if it is small (see `inlineChunkMaxBytes`). */
  writeChunk(task: WriteChunkTask): Promise<BufferTaskResult> {
    if (task.length <= inlineChunkMaxBytes) return writeChunkInline(task);
    return this.#pool.run(task, { name: taskNames.writeChunk, transferList: [task.buffer] });
  }

  /** Reads a chunk and checks its xxh64: in the pool, or here if it is small. */
  readChunk(task: ReadChunkTask): Promise<BufferTaskResult> {
    if (task.length <= inlineChunkMaxBytes) return readChunkInline(task);
    return this.#pool.run(task, { name: taskNames.readChunk, transferList: [task.buffer] });
  }

  /** One pass over a file: its SHA-256 and the xxh64 of each chunk. */
  hashFile(task: HashFileTask): Promise<HashFileResult> {
    return this.#pool.run(task, { name: taskNames.hashFile });
  }

  async close(): Promise<void> {
    await this.#pool.close();
  }
}
