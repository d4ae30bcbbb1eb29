import { WaitQueue } from '../wait-queue.js';

/**
 * A counting allowance: at most `limit` holders at once; the rest wait in order. Used to give
 * each connection a fair share of the global chunk budget.
 */
export class Allowance {
  #available: number;
  readonly #waiting = new WaitQueue<void>();

  constructor(limit: number) {
    this.#available = limit;
  }

  /** Calls `take` once a place is free (at once if one is). Returns a cancel function for the wait. */
  acquire(take: () => void): () => void {
    if (this.#available === 0) return this.#waiting.wait(take);
    this.#available -= 1;
    take();
    return () => {};
  }

  release(): void {
    if (!this.#waiting.serve()) this.#available += 1;
  }
}
