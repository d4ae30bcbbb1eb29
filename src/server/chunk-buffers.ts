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
  readonly #waiters: ((buffer: ArrayBuffer) => void)[] = [];
  #created = 0;
  #inUse = 0;

  constructor(bufferBytes: number, maxBuffers: number) {
    this.bufferBytes = bufferBytes;
    this.maxBuffers = maxBuffers;
  }

  get inUse(): number {
    return this.#inUse;
  }

  tryAcquire(): ArrayBuffer | undefined {
    let buffer = this.#free.pop();
    if (!buffer && this.#created < this.maxBuffers) {
      buffer = new ArrayBuffer(this.bufferBytes);
      this.#created += 1;
    }
    if (buffer) this.#inUse += 1;
    return buffer;
  }

  /** Calls `take` with a buffer as soon as one is free (at once if one is). Returns a cancel function. */
  acquire(take: (buffer: ArrayBuffer) => void): () => void {
    const buffer = this.tryAcquire();
    if (buffer) {
      take(buffer);
      return () => {};
    }
    this.#waiters.push(take);
    return () => {
      const at = this.#waiters.indexOf(take);
      if (at >= 0) this.#waiters.splice(at, 1);
    };
  }

  release(buffer: ArrayBuffer): void {
    if (buffer.byteLength !== this.bufferBytes) throw new Error('released a buffer that is not from this pool');
    const waiter = this.#waiters.shift();
    if (waiter) {
      waiter(buffer);
      return;
    }
    this.#inUse -= 1;
    this.#free.push(buffer);
  }
}
