/**
 * Builds native/sha256-state.c into dist/native/sha256-state.node with the machine's C compiler
 * and the headers of the Node that runs this (Node-API: one build loads in Node 20 and 24 alike).
 * Optional: without a compiler or the headers, this says why and exits 0, and Ferry keeps the
 * saved states of S3 uploads with hash-wasm's SHA-256 instead (about 2 CPU-seconds per GiB more).
 * `FERRY_NATIVE=required` (CI) makes a failed build an error.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const source = join(here, 'sha256-state.c');
const outDir = join(here, '..', 'dist', 'native');
const target = join(outDir, 'sha256-state.node');
const headers = join(dirname(process.execPath), '..', 'include', 'node');
const compiler = process.env.CC || 'cc';

function skip(why) {
  rmSync(target, { force: true });
  const message = `native SHA-256 not built: ${why}; S3 uploads save their hash state with hash-wasm instead`;
  if (process.env.FERRY_NATIVE === 'required') {
    console.error(`error: ${message} (FERRY_NATIVE=required)`);
    process.exit(1);
  }
  console.warn(`note: ${message}`);
  process.exit(0);
}

if (!existsSync(join(headers, 'node_api.h'))) skip(`no Node headers at ${headers}`);
mkdirSync(outDir, { recursive: true });
const partial = `${target}.${process.pid}.tmp`;
const built = spawnSync(compiler, ['-O2', '-Wall', '-Wextra', '-Werror', '-shared', '-fPIC', '-I', headers, source, '-o', partial], {
  encoding: 'utf8',
});
if (built.error) skip(`${compiler}: ${built.error.message}`);
if (built.status !== 0) {
  rmSync(partial, { force: true });
  skip(`${compiler} failed: ${(built.stderr || built.stdout).trim().split('\n')[0]}`);
}
renameSync(partial, target);
