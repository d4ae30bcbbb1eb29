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

/** Node flags for worker threads: inherited when built; none (no TypeScript loader) from sources. */
export const workerExecArgv: string[] | undefined = fromSources ? [] : undefined;
