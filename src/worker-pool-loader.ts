import type { Piscina } from 'piscina';
import type { WorkerPoolOptions } from './worker-pool.js';

/** A worker pool made once its modules have loaded: what the client's threads ask of it. */
export interface LoadedPool {
  /** Runs a task; `R` is what the task named in `options` returns (workers/tasks.ts). */
  run<R>(task: unknown, options: Parameters<Piscina['run']>[1]): Promise<R>;
  /** Resolves once every thread has started and loaded its modules. */
  allStarted(): Promise<void>;
  close(): Promise<void>;
}

/**
 * A pool of `workerPool`'s threads whose module, and piscina with it, is imported only now:
 * importing piscina costs about 45 ms of CPU on these VMs, which a `ferry` command that starts no
 * thread (a file of up to 64 MiB, no compression) need not pay. The server's chunk workers, on
 * every request's path from the start, use `workerPool` directly.
 */
export function loadWorkerPool(options: WorkerPoolOptions): LoadedPool {
  const loading = import('./worker-pool.js').then((module) => ({ module, pool: module.workerPool(options) }));
  loading.catch(() => undefined); // a failed import is reported to every caller of the methods below, not as unhandled
  return {
    run: <R>(task: unknown, runOptions: Parameters<Piscina['run']>[1]) =>
      loading.then(({ pool }) => pool.run(task, runOptions) as Promise<R>),
    allStarted: async () => {
      const { module, pool } = await loading;
      await module.allThreadsStarted(pool, options.threads);
    },
    close: async () => (await loading).pool.close(),
  };
}
