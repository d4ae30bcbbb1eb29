/**
 * A counting allowance: at most `limit` holders at once; the rest wait in order. Used to give
 * each connection a fair share of the global chunk budget.
 */
export class Allowance {
  #available: number;
  readonly #waiters: (() => void)[] = [];

  constructor(limit: number) {
    this.#available = limit;
  }

  /** Calls `take` once a place is free (at once if one is). Returns a cancel function for the wait. */
  acquire(take: () => void): () => void {
    if (this.#available > 0) {
      this.#available -= 1;
      take();
      return () => {};
    }
    this.#waiters.push(take);
    return () => {
      const at = this.#waiters.indexOf(take);
      if (at >= 0) this.#waiters.splice(at, 1);
    };
  }

  release(): void {
    const waiter = this.#waiters.shift();
    if (waiter) waiter();
    else this.#available += 1;
  }
}
