import { WaitQueue } from '../wait-queue.js';

/**
 * The global in-flight budget, as a pool of preallocated chunk buffers. Every chunk being
 * received, written, read or sent holds one; when none is free, connections wait (and pause
 * their sockets). Server memory for chunk data is therefore at most `maxBuffers * bufferBytes`,
 * whatever the file sizes or client count.
 *
 * The buffers are shared memory, which a worker thread reads and writes in place: a task carries
 * a reference, and the holder keeps its buffer whatever becomes of the task. (A moved ArrayBuffer
 * arrives in the other thread as a new object, which V8 counts as new external memory until a
 * collection finds the old one: moving 4 MiB chunks to a worker and back started about 25 major
 * collections per GiB uploaded, docs/perf-notes.md.)
 */
export class ChunkBuffers {
  readonly bufferBytes: number;
  readonly maxBuffers: number;
  readonly #free: SharedArrayBuffer[] = [];
  readonly #waiting = new WaitQueue<SharedArrayBuffer>();
  #created = 0;

  constructor(bufferBytes: number, maxBuffers: number) {
    this.bufferBytes = bufferBytes;
    this.maxBuffers = maxBuffers;
  }

  /** Callers waiting for a buffer now. */
  get waiting(): number {
    return this.#waiting.length;
  }

  tryAcquire(): SharedArrayBuffer | undefined {
    const buffer = this.#free.pop();
    if (buffer || this.#created === this.maxBuffers) return buffer;
    this.#created += 1;
    return new SharedArrayBuffer(this.bufferBytes);
  }

  /** Calls `take` with a buffer as soon as one is free (at once if one is). Returns a cancel function. */
  acquire(take: (buffer: SharedArrayBuffer) => void): () => void {
    const buffer = this.tryAcquire();
    if (!buffer) return this.#waiting.wait(take);
    take(buffer);
    return () => {};
  }

  release(buffer: SharedArrayBuffer): void {
    if (buffer.byteLength !== this.bufferBytes) throw new Error('released a buffer that is not from this pool');
    if (!this.#waiting.serve(buffer)) this.#free.push(buffer);
  }
}
