/**
 * Builds the native addons into dist/native/ with the machine's C compiler and the headers of the
 * Node that runs this (Node-API: one build loads in Node 20 and 24 alike):
 * - native/sha256-state.c → sha256-state.node: without it, Ferry keeps the saved states of S3
 *   uploads with hash-wasm's SHA-256 instead (about 2 CPU-seconds per GiB more);
 * - native/xxh64.c → xxh64.node: without it, chunks are hashed with xxhash-wasm, which copies
 *   each one into its WebAssembly memory first;
 * - native/durable-file.c → durable-file.node: without it, the server creates, writes and syncs a
 *   small file sent whole with Node's fs calls, one hop through libuv's pool each.
 * Optional: without a compiler or the headers, this says why and exits 0, and Ferry uses the
 * fallbacks. `FERRY_NATIVE=required` (CI) makes a failed build an error.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const outDir = join(here, '..', 'dist', 'native');
const headers = join(dirname(process.execPath), '..', 'include', 'node');
const compiler = process.env.CC || 'cc';

const addons = [
  { source: 'sha256-state.c', target: 'sha256-state.node', fallback: 'S3 uploads save their hash state with hash-wasm instead' },
  { source: 'xxh64.c', target: 'xxh64.node', fallback: 'chunks are hashed with xxhash-wasm instead' },
  {
    source: 'durable-file.c',
    target: 'durable-file.node',
    fallback: "the server stores a small file sent whole with Node's fs calls instead (two hops through libuv's pool, not one)",
  },
];

/** Builds one addon; why not, if it could not. */
function build({ source, target }) {
  const built = join(outDir, target);
  rmSync(built, { force: true });
  if (!existsSync(join(headers, 'node_api.h'))) return `no Node headers at ${headers}`;
  mkdirSync(outDir, { recursive: true });
  const partial = `${built}.${process.pid}.tmp`;
  const run = spawnSync(
    compiler,
    ['-O2', '-Wall', '-Wextra', '-Werror', '-shared', '-fPIC', '-I', headers, join(here, source), '-o', partial],
    {
      encoding: 'utf8',
    },
  );
  if (run.error) return `${compiler}: ${run.error.message}`;
  if (run.status !== 0) {
    rmSync(partial, { force: true });
    return `${compiler} failed: ${(run.stderr || run.stdout).trim().split('\n')[0]}`;
  }
  renameSync(partial, built);
  return undefined;
}

let failed = false;
for (const addon of addons) {
  const why = build(addon);
  if (why === undefined) continue;
  const message = `native ${addon.target} not built: ${why}; ${addon.fallback}`;
  if (process.env.FERRY_NATIVE === 'required') {
    console.error(`error: ${message} (FERRY_NATIVE=required)`);
    failed = true;
  } else {
    console.warn(`note: ${message}`);
  }
}
if (failed) process.exit(1);
