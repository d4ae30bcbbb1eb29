import { availableParallelism } from 'node:os';
import { type PackChunkResult, type UnpackChunkResult, taskNames } from '../../workers/tasks.js';
import type { CodecName } from '../protocol/frames.js';
import { type LoadedPool, loadWorkerPool } from '../worker-pool-loader.js';

/**
 * The threads a client packs its upload chunks on and unpacks its download chunks on (a server
 * does it in its chunk workers). Made on first use, so a transfer that never compresses never
 * starts them; idle, they do not keep the process alive.
 */
export class CodecThreads {
  readonly #pool: LoadedPool;

  constructor(threads = Math.min(2, availableParallelism()), onError: (error: Error) => void = (error) => process.emitWarning(error)) {
    this.#pool = loadWorkerPool({ threads, idleTimeout: 30_000, onError });
  }

  /** The first `length` bytes of `buffer` compressed with `codec` (undefined when that does not shrink them enough), and how long that took. */
  pack(codec: CodecName, buffer: SharedArrayBuffer, length: number): Promise<PackChunkResult> {
    return this.#pool.run({ codec, buffer, length }, { name: taskNames.packChunk });
  }

  /** Unpacks the first `bytes` of `buffer` into `buffer` itself; undefined when it did, else why not. */
  unpack(codec: CodecName, buffer: SharedArrayBuffer, bytes: number, rawLength: number): Promise<UnpackChunkResult> {
    return this.#pool.run({ codec, buffer, bytes, rawLength }, { name: taskNames.unpackChunk });
  }

  async close(): Promise<void> {
    await this.#pool.close();
  }
}

let shared: CodecThreads | undefined;

/** The codec threads of this process, made on first use. */
export function sharedCodecThreads(): CodecThreads {
  shared ??= new CodecThreads();
  return shared;
}
