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
/** The child that measures the client library's memory under many uploads (bench/hooks/upload-memory.ts). */
export const uploadMemoryScript = fileURLToPath(new URL('../hooks/upload-memory.js', import.meta.url));
export const cpuReportHook = pathToFileURL(fileURLToPath(new URL('../hooks/cpu-report.js', import.meta.url))).href;

/**
 * Extra Node options for a child the bench starts, from the environment variable `name`
 * (space-separated), e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" to profile it: Node refuses
 * those in NODE_OPTIONS.
 */
export function nodeArgsFrom(name: string): string[] {
  return (process.env[name] ?? '').split(' ').filter(Boolean);
}
