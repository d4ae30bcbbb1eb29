import { type HashUpdateResult, taskNames } from '../../workers/tasks.js';
import { type LoadedPool, loadWorkerPool } from '../worker-pool-loader.js';

/**
 * Running SHA-256s on one thread of their own, so whole-file hashing overlaps the transfer
 * instead of running on the I/O thread or in a pass after it. Each hash has a key; the tasks of
 * one key run one after another in the order they were submitted (piscina does not promise
 * that order for tasks queued at once, so it is kept here).
 *
 * A buffer given to `update` is the thread's until the returned promise settles: a
 * SharedArrayBuffer is read in place, an ArrayBuffer is moved there and back (the promise
 * resolves with it).
 */
export class Sha256Thread {
  readonly #pool: LoadedPool;
  /** Per key, the last task submitted: the next one starts when it has settled. */
  readonly #tails = new Map<string, Promise<unknown>>();

  /** `onError`: the thread's failures no task was waiting on (see WorkerPoolOptions); by default a process warning. */
  constructor(onError: (error: Error) => void = (error) => process.emitWarning(error)) {
    this.#pool = loadWorkerPool({ threads: 1, idleTimeout: 30_000, onError });
  }

  /** Resolves once the thread has started and loaded its modules. */
  started(): Promise<void> {
    return this.#pool.allStarted();
  }

  /** `resumable`: the key was started with `startResumable` (the task fails if the thread lost it). */
  async update<B extends ArrayBuffer | SharedArrayBuffer>(key: string, buffer: B, length: number, resumable = false): Promise<B> {
    const transferList = buffer instanceof ArrayBuffer ? [buffer] : [];
    const result = await this.#inTurn<HashUpdateResult>(key, () =>
      this.#pool.run({ key, buffer, length, resumable }, { name: taskNames.hashUpdate, transferList }),
    );
    return result.buffer as B;
  }

  /**
   * Makes the hash under `key` one whose state can be saved (`save`): from a saved `state`, or
   * from nothing. Before any update of that key (in turn as the others); a state that is not one
   * rejects.
   */
  startResumable(key: string, state: string | undefined): Promise<void> {
    return this.#inTurn(key, () => this.#pool.run({ key, state }, { name: taskNames.hashStartResumable }));
  }

  /** The state of the resumable hash under `key` after every update given so far (sha256-state.ts's text). */
  save(key: string): Promise<string> {
    return this.#inTurn(key, () => this.#pool.run({ key }, { name: taskNames.hashSave }));
  }

  /** The hex digest of everything fed under `key`; the hash is forgotten. */
  digest(key: string, resumable = false): Promise<string> {
    return this.#inTurn(key, () => this.#pool.run({ key, resumable }, { name: taskNames.hashDigest }));
  }

  drop(key: string): void {
    // Dropping only frees memory on the thread; if the thread is gone, so is the hash.
    void this.#inTurn(key, () => this.#pool.run({ key }, { name: taskNames.hashDrop })).catch(() => undefined);
  }

  #inTurn<T>(key: string, run: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    const task = previous.then(run, run);
    const tail = task.catch(() => undefined); // the caller holds `task` and hears of its failure; the tail only orders the next
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return task;
  }

  async close(): Promise<void> {
    await this.#pool.close();
  }
}

let shared: Sha256Thread | undefined;

/** The hashing thread clients in this process share: made on first use; idle, it does not keep the process alive. */
export function sharedSha256Thread(): Sha256Thread {
  shared ??= new Sha256Thread();
  return shared;
}

/** The shared hashing thread if this process has made it, without making it. */
export function sharedSha256ThreadIfMade(): Sha256Thread | undefined {
  return shared;
}
