import { WaitQueue } from '../wait-queue.js';

/**
 * The global in-flight budget, as a pool of preallocated chunk buffers. Every chunk being
 * received, written, read or sent holds one; when none is free, connections wait (and pause
 * their sockets). Server memory for chunk data is therefore at most `maxBuffers * bufferBytes`,
 * whatever the file sizes or client count.
 */
export class ChunkBuffers {
  readonly bufferBytes: number;
  readonly maxBuffers: number;
  readonly #free: ArrayBuffer[] = [];
  readonly #waiting = new WaitQueue<ArrayBuffer>();
  #created = 0;

  constructor(bufferBytes: number, maxBuffers: number) {
    this.bufferBytes = bufferBytes;
    this.maxBuffers = maxBuffers;
  }

  /** Callers waiting for a buffer now. */
  get waiting(): number {
    return this.#waiting.length;
  }

  tryAcquire(): ArrayBuffer | undefined {
    const buffer = this.#free.pop();
    if (buffer || this.#created === this.maxBuffers) return buffer;
    this.#created += 1;
    return new ArrayBuffer(this.bufferBytes);
  }

  /** Calls `take` with a buffer as soon as one is free (at once if one is). Returns a cancel function. */
  acquire(take: (buffer: ArrayBuffer) => void): () => void {
    const buffer = this.tryAcquire();
    if (!buffer) return this.#waiting.wait(take);
    take(buffer);
    return () => {};
  }

  release(buffer: ArrayBuffer): void {
    if (buffer.byteLength !== this.bufferBytes) throw new Error('released a buffer that is not from this pool');
    if (!this.#waiting.serve(buffer)) this.#free.push(buffer);
  }

  /**
   * Gives back a buffer that was lost (moved to a worker that died with it): a new one of the same
   * size takes its place, so the budget keeps its size.
   */
  replaceLost(): void {
    this.release(new ArrayBuffer(this.bufferBytes));
  }
}
