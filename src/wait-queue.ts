/**
 * Callers waiting, in order, for something to be handed to them (a place in an allowance, a chunk
 * buffer). The one waiter queue with cancellation that the server's limited resources share.
 */
export class WaitQueue<T> {
  readonly #waiters: ((value: T) => void)[] = [];

  get length(): number {
    return this.#waiters.length;
  }

  /** Queues `take`; returns a function that takes it out again (a no-op once it has been served). */
  wait(take: (value: T) => void): () => void {
    this.#waiters.push(take);
    return () => {
      const at = this.#waiters.indexOf(take);
      if (at >= 0) this.#waiters.splice(at, 1);
    };
  }

  /** Hands `value` to the longest waiter; false when nobody waits (the caller keeps it). */
  serve(value: T): boolean {
    const waiter = this.#waiters.shift();
    if (!waiter) return false;
    waiter(value);
    return true;
  }
}
