import { Piscina } from 'piscina';
import { taskNames } from '../workers/tasks.js';
import { workerExecArgv, workerModuleUrl } from './worker-module.js';

export interface WorkerPoolOptions {
  threads: number;
  maxQueue?: number;
  idleTimeout?: number;
  /**
   * A thread's failure that no task was waiting on (it died while idle, or failed to start):
   * piscina emits it as an 'error' event, which would end the process if nobody listened.
   */
  onError: (error: Error) => void;
}

/** A piscina pool of threads running workers/chunk-worker.ts. */
export function workerPool(options: WorkerPoolOptions): Piscina {
  const pool = new Piscina({
    filename: workerModuleUrl.href,
    execArgv: workerExecArgv,
    minThreads: options.threads,
    maxThreads: options.threads,
    ...(options.maxQueue === undefined ? {} : { maxQueue: options.maxQueue }),
    ...(options.idleTimeout === undefined ? {} : { idleTimeout: options.idleTimeout }),
  });
  pool.on('error', options.onError);
  return pool;
}

/**
 * Resolves once every thread of `pool` has started and loaded its modules: one `ready` task per
 * thread, all at once, so each lands on a thread of its own. A server awaits it before it
 * accepts anyone: a thread that loads while a flood of connections holds every descriptor
 * cannot open its own modules.
 */
export async function allThreadsStarted(pool: Piscina, threads: number): Promise<void> {
  await Promise.all(Array.from({ length: threads }, () => pool.run({}, { name: taskNames.ready })));
}
