import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The repository root: the nearest folder above this module holding bin/ferry.js (works from bench/ and dist/bench/). */
function findRepoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'bin', 'ferry.js'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find bin/ferry.js above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
  return dir;
}

export const repoRoot = findRepoRoot();
export const ferryBin = join(repoRoot, 'bin', 'ferry.js');
export const resultsDir = join(repoRoot, 'bench', 'results');
/** The compiled CPU-report hook, next to this module's compiled tree (dist/bench/hooks/). */
export const cpuReportHook = pathToFileURL(fileURLToPath(new URL('../hooks/cpu-report.js', import.meta.url))).href;
