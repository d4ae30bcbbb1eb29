import xxhash, { type XXHashAPI } from 'xxhash-wasm';
import { loadNativeAddon } from './native-addon.js';

let api: Promise<XXHashAPI> | undefined;
let hasher: Promise<Xxh64> | undefined;

/** The xxhash-wasm API (one-shot and streaming hashes). The WASM module loads once. */
export function loadXxhash(): Promise<XXHashAPI> {
  api ??= xxhash();
  return api;
}

/** A one-shot xxh64 (seed 0), and where it runs. */
export interface Xxh64 {
  (bytes: Uint8Array): bigint;
  /** `native`: native/xxh64.c over the bytes where they lie; `wasm`: xxhash-wasm, which copies them into its memory first. */
  readonly implementation: 'native' | 'wasm';
}

/** The addon built from native/xxh64.c. */
interface Xxh64Addon {
  h64(bytes: Uint8Array): bigint;
}

export const nativeXxh64FileName = 'xxh64.node';

/** Whether the addon gives xxhash-wasm's hash on lengths around its block sizes, at odd offsets. */
function agreesWithWasm(addon: Xxh64Addon, wasm: XXHashAPI): boolean {
  const sample = Buffer.from(Array.from({ length: 300 }, (_, index) => (index * 131 + 7) & 0xff));
  for (const length of [0, 1, 3, 4, 7, 8, 31, 32, 33, 63, 64, 100, 299]) {
    const bytes = sample.subarray(1, 1 + length);
    if (addon.h64(bytes) !== wasm.h64Raw(bytes)) return false;
  }
  return true;
}

/**
 * xxh64 (seed 0) of `bytes`, the per-chunk hash of the protocol: native/xxh64.c where it was built
 * and agrees with xxhash-wasm (about half the CPU, and no copy of every chunk into WebAssembly
 * memory), else xxhash-wasm. Loaded once per thread.
 */
export async function loadXxh64(): Promise<Xxh64> {
  hasher ??= loadXxhash().then((wasm) => {
    const loaded = loadNativeAddon<Xxh64Addon>(nativeXxh64FileName);
    if ('addon' in loaded && agreesWithWasm(loaded.addon, wasm)) {
      return Object.assign((bytes: Uint8Array) => loaded.addon.h64(bytes), { implementation: 'native' as const });
    }
    return Object.assign((bytes: Uint8Array) => wasm.h64Raw(bytes), { implementation: 'wasm' as const });
  });
  return hasher;
}
