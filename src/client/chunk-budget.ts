import { WaitQueue } from '../wait-queue.js';

/** Runs `callback` after `ms`, without keeping the process alive for it. */
export type IdleTimer = (callback: () => void, ms: number) => void;

const unrefTimer: IdleTimer = (callback, ms) => void setTimeout(callback, ms).unref();

/** How long a budget with no buffer in use keeps its free ones for reuse. */
export const idleDropMs = 5_000;

/**
 * Chunk buffers all uploads of this process share, within one byte budget: however many uploads
 * run at once (256 clients in one process), their chunk buffers take at most `budgetBytes`. Each
 * upload takes a buffer per chunk it reads and gives it back once the chunk is hashed and on the
 * wire; buffers are kept for reuse (shared memory is zeroed on allocation, and costly to make),
 * by size, since servers may have different chunk sizes, until the budget has had none in use
 * for `idleDropMs`: then they are dropped, so a long-lived process does not hold a burst's memory
 * (up to 128 MiB for each of the two budgets) while it does nothing. Their memory returns once no
 * heap refers to them: the main thread's at its next collection, but the hashing thread's only at
 * its own, which an idle thread may not run for a long time (8 uploads and downloads of 16 MiB:
 * 182 MiB of buffers after the burst, 158 after the drop, 2 once that thread was closed).
 */
export class ChunkBudget {
  readonly budgetBytes: number;
  /** Bytes of all buffers made and not dropped: in use or free. */
  #madeBytes = 0;
  readonly #free = new Map<number, SharedArrayBuffer[]>();
  readonly #waiting = new WaitQueue<undefined>();
  readonly #idleTimer: IdleTimer;
  /** Bumped by every acquire: an idle check armed before one finds the budget was used since. */
  #acquisitions = 0;
  #idleCheckArmed = false;

  constructor(budgetBytes: number, idleTimer: IdleTimer = unrefTimer) {
    this.budgetBytes = budgetBytes;
    this.#idleTimer = idleTimer;
  }

  /** Bytes of the buffers made and not dropped, in use or free for reuse. */
  get heldBytes(): number {
    return this.#madeBytes;
  }

  /** Bytes of the buffers handed out and not given back yet. */
  get inUseBytes(): number {
    let free = 0;
    for (const [size, buffers] of this.#free) free += size * buffers.length;
    return this.#madeBytes - free;
  }

  /** A buffer of `bytes` (`bytes` above the whole budget is given anyway, alone: no upload is refused). */
  async acquire(bytes: number): Promise<SharedArrayBuffer> {
    for (;;) {
      const buffer = this.tryAcquire(bytes);
      if (buffer) return buffer;
      await new Promise<undefined>((resolve) => this.#waiting.wait(resolve));
    }
  }

  release(buffer: SharedArrayBuffer): void {
    const free = this.#free.get(buffer.byteLength) ?? [];
    free.push(buffer);
    this.#free.set(buffer.byteLength, free);
    // Everyone waiting tries again: a buffer of another size may make room by being dropped.
    while (this.#waiting.serve(undefined));
    if (this.inUseBytes === 0) this.#armIdleCheck();
  }

  /**
   * Gives back a buffer that must not be reused (a socket may still read into it once): its room
   * returns to the budget, its memory to the garbage collector.
   */
  discard(buffer: SharedArrayBuffer): void {
    this.#madeBytes -= buffer.byteLength;
    while (this.#waiting.serve(undefined));
    if (this.inUseBytes === 0) this.#armIdleCheck();
  }

  /** Once nothing is in use: drops the free buffers if nothing is acquired for `idleDropMs`. */
  #armIdleCheck(): void {
    if (this.#idleCheckArmed) return;
    this.#idleCheckArmed = true;
    const acquisitions = this.#acquisitions;
    this.#idleTimer(() => {
      this.#idleCheckArmed = false;
      if (this.#acquisitions !== acquisitions) {
        // Used meanwhile: look again once it is idle again.
        if (this.inUseBytes === 0) this.#armIdleCheck();
        return;
      }
      this.#free.clear();
      this.#madeBytes = 0;
    }, idleDropMs);
  }

  /** A buffer of `bytes` if the budget has room now, else undefined (nothing is waited for). */
  tryAcquire(bytes: number): SharedArrayBuffer | undefined {
    this.#acquisitions += 1;
    const reused = this.#free.get(bytes)?.pop();
    if (reused) return reused;
    // Room is made by dropping free buffers of other sizes, if that is what it takes.
    for (const [size, free] of this.#free) {
      while (this.#madeBytes + bytes > this.budgetBytes && free.length > 0 && size !== bytes) {
        free.pop();
        this.#madeBytes -= size;
      }
    }
    if (this.#madeBytes + bytes > this.budgetBytes && this.#madeBytes > 0) return undefined;
    this.#madeBytes += bytes;
    return new SharedArrayBuffer(bytes);
  }
}

/** The budget of this process's uploads: 128 MiB, 32 chunks of the default 4 MiB (one upload uses at most 4). */
export const uploadChunkBudget = new ChunkBudget(128 * 1024 * 1024);

/** The budget of this process's downloads, apart from the uploads' (neither waits for the other's buffers). */
export const downloadChunkBudget = new ChunkBudget(128 * 1024 * 1024);
