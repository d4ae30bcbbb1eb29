import { Worker } from 'node:worker_threads';
import type { HashUpdateResult, Sha256Reply, Sha256Request, Sha256TaskName } from '../../workers/tasks.js';
import { sha256WorkerUrl, workerExecArgv } from '../worker-module.js';

interface Waiting {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

/**
 * Running SHA-256s on one thread of their own, so whole-file hashing overlaps the transfer
 * instead of running on the I/O thread or in a pass after it. Each hash has a key; the tasks of
 * one key run one after another in the order they were submitted.
 *
 * The thread is a plain `Worker` (workers/sha256-worker.ts), started with this object; idle, it
 * does not keep the process alive. If it dies, the tasks waiting on it fail, and the next task
 * starts another: the hashes it held are gone (a resumable one says so; another starts over, and
 * the file's end-to-end check fails).
 *
 * A buffer given to `update` is the thread's until the returned promise settles: a
 * SharedArrayBuffer is read in place, an ArrayBuffer is moved there and back (the promise
 * resolves with it).
 */
export class Sha256Thread {
  #worker: Worker | undefined;
  readonly #waiting = new Map<number, Waiting>();
  #nextId = 1;
  #closing: Promise<void> | undefined;
  /** Per key, the last task submitted: the next one starts when it has settled. */
  readonly #tails = new Map<string, Promise<unknown>>();
  readonly #onError: (error: Error) => void;

  /** `onError`: the thread's failures no task was waiting on (it died while idle); by default a process warning. */
  constructor(onError: (error: Error) => void = (error) => process.emitWarning(error)) {
    this.#onError = onError;
    this.#thread();
  }

  /** Resolves once the thread has started and loaded its modules. */
  async started(): Promise<void> {
    await this.#call('ready', {});
  }

  /** `resumable`: the key was started with `startResumable` (the task fails if the thread lost it). */
  async update<B extends ArrayBuffer | SharedArrayBuffer>(key: string, buffer: B, length: number, resumable = false): Promise<B> {
    const transferList = buffer instanceof ArrayBuffer ? [buffer] : [];
    const result = await this.#inTurn(key, () =>
      this.#call<HashUpdateResult>('hashUpdate', { key, buffer, length, resumable }, transferList),
    );
    return result.buffer as B;
  }

  /**
   * Makes the hash under `key` one whose state can be saved (`save`): from a saved `state`, or
   * from nothing. Before any update of that key (in turn as the others); a state that is not one
   * rejects.
   */
  startResumable(key: string, state: string | undefined): Promise<void> {
    return this.#inTurn(key, () => this.#call<void>('hashStartResumable', { key, state }));
  }

  /** The state of the resumable hash under `key` after every update given so far (sha256-state.ts's text). */
  save(key: string): Promise<string> {
    return this.#inTurn(key, () => this.#call<string>('hashSave', { key }));
  }

  /** The hex digest of everything fed under `key`; the hash is forgotten. */
  digest(key: string, resumable = false): Promise<string> {
    return this.#inTurn(key, () => this.#call<string>('hashDigest', { key, resumable }));
  }

  drop(key: string): void {
    // Dropping only frees memory on the thread; if the thread is gone, so is the hash.
    void this.#inTurn(key, () => this.#call('hashDrop', { key })).catch(() => undefined);
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

  /** Sends one task to the thread; it stays referenced (keeps the process alive) while any task waits. */
  #call<R>(name: Sha256TaskName, task: object, transferList: ArrayBuffer[] = []): Promise<R> {
    if (this.#closing) return Promise.reject(new Error('the hashing thread is closed'));
    const worker = this.#thread();
    const id = this.#nextId++;
    const request: Sha256Request = { id, name, task };
    return new Promise<R>((resolve, reject) => {
      if (this.#waiting.size === 0) worker.ref();
      this.#waiting.set(id, { resolve: resolve as (value: unknown) => void, reject });
      worker.postMessage(request, transferList);
    });
  }

  /** The running thread, or a new one if there is none (the first call, or the last one died). */
  #thread(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(sha256WorkerUrl, { execArgv: workerExecArgv });
    worker.unref();
    let failure: Error | undefined;
    worker.on('message', (reply: Sha256Reply) => this.#settle(worker, reply));
    worker.on('error', (error) => {
      failure = error;
    });
    worker.on('exit', (code) => {
      if (this.#worker === worker) this.#worker = undefined;
      if (this.#closing) return;
      const error = failure ?? new Error(`the hashing thread exited (code ${code})`);
      if (this.#waiting.size === 0) return this.#onError(error);
      for (const waiting of this.#waiting.values()) waiting.reject(error);
      this.#waiting.clear();
    });
    this.#worker = worker;
    return worker;
  }

  #settle(worker: Worker, reply: Sha256Reply): void {
    const waiting = this.#waiting.get(reply.id);
    if (!waiting) return;
    this.#waiting.delete(reply.id);
    if (this.#waiting.size === 0) worker.unref();
    if (reply.ok) waiting.resolve(reply.value);
    else waiting.reject(new Error(reply.message));
  }

  /** Stops the thread once the tasks sent have been answered; later tasks are refused. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await Promise.allSettled([...this.#tails.values()]);
      await this.#worker?.terminate();
      this.#worker = undefined;
    })();
    return this.#closing;
  }
}

let shared: Sha256Thread | undefined;

/** The hashing thread clients in this process share: made on first use; idle, it does not keep the process alive. */
export function sharedSha256Thread(): Sha256Thread {
  shared ??= new Sha256Thread();
  return shared;
}

/** The hashing thread shared by this process if it has made it, without making it. */
export function sharedSha256ThreadIfMade(): Sha256Thread | undefined {
  return shared;
}
