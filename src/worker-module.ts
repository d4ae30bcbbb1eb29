import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const besideThisFile = new URL('../workers/chunk-worker.js', import.meta.url);
const fromSources = !existsSync(fileURLToPath(besideThisFile));

/**
 * The piscina worker module (workers/chunk-worker). Built, it sits beside this file under dist/.
 * Run from the TypeScript sources (under tap), the compiled copy that `pretest` builds is used:
 * a worker thread that inherits tap's TypeScript loader takes seconds to start on this machine.
 */
export const workerModuleUrl = fromSources ? new URL('../dist/workers/chunk-worker.js', import.meta.url) : besideThisFile;

/** The hashing thread's module (workers/sha256-worker), found as `workerModuleUrl` is. */
export const sha256WorkerUrl = new URL('sha256-worker.js', workerModuleUrl);

/**
 * The process's Node flags less those about the main script (`node --input-type=module -e SRC`):
 * a worker thread given those refuses to start (ERR_INPUT_TYPE_NOT_ALLOWED).
 */
export function threadFlags(execArgv: readonly string[]): string[] {
  const kept: string[] = [];
  for (let index = 0; index < execArgv.length; index += 1) {
    const flag = execArgv[index]!;
    if (/^(?:-e|-p|--eval|--print|--input-type)$/u.test(flag))
      index += 1; // and the value that follows it
    else if (!/^--(?:eval|print|input-type)=/u.test(flag)) kept.push(flag);
  }
  return kept;
}

/**
 * Node flags for worker threads: the process's own when built (a profiler's --cpu-prof, a
 * coverage loader), less those about the main script; none (no TypeScript loader) from sources.
 */
export const workerExecArgv: string[] = fromSources ? [] : threadFlags(process.execArgv);
