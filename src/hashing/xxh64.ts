import xxhash, { type XXHashAPI } from 'xxhash-wasm';

let api: Promise<XXHashAPI> | undefined;
let hasher: Promise<(bytes: Uint8Array) => bigint> | undefined;

/** The xxhash-wasm API (one-shot and streaming hashes). The WASM module loads once. */
export function loadXxhash(): Promise<XXHashAPI> {
  api ??= xxhash();
  return api;
}

/** xxh64 (seed 0) of `bytes`, the per-chunk hash of the protocol. */
export async function loadXxh64(): Promise<(bytes: Uint8Array) => bigint> {
  hasher ??= loadXxhash().then((api) => (bytes: Uint8Array) => api.h64Raw(bytes));
  return hasher;
}
