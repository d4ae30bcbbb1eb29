import xxhash from 'xxhash-wasm';

let hasher: Promise<(bytes: Uint8Array) => bigint> | undefined;

/** xxh64 (seed 0) of `bytes`, the per-chunk hash of the protocol. The WASM module loads once. */
export async function loadXxh64(): Promise<(bytes: Uint8Array) => bigint> {
  hasher ??= xxhash().then(({ h64Raw }) => (bytes: Uint8Array) => h64Raw(bytes));
  return hasher;
}
