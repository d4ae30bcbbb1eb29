import { createHash } from 'node:crypto';
import { endianness } from 'node:os';
import { loadNativeAddon } from './native-addon.js';
import { type Sha256State, emptySha256State, hashWasm4SavedOf, sha256BlockBytes, sha256StateOfHashWasm4 } from './sha256-state.js';

/** A SHA-256 whose state can be taken out (`state`) and another begun from it (synchronous: the hashing thread's). */
export interface SaveableSha256 {
  update(bytes: Uint8Array): void;
  state(): Sha256State;
  /** The hex digest of everything hashed; the hash is done with. */
  digestHex(): string;
}

/** Where saveable hashes come from on this machine: the native addon if it loads and agrees with Node, else hash-wasm. */
export interface SaveableSha256Source {
  readonly implementation: 'openssl' | 'hash-wasm';
  /** Why the addon is not used (undefined when it is). */
  readonly whyNotNative: string | undefined;
  make(state?: Sha256State): Promise<SaveableSha256>;
}

/** The addon built from native/sha256-state.c: OpenSSL's SHA-256 over a context the caller holds. */
interface Sha256Addon {
  init(context: Uint8Array): void;
  update(context: Uint8Array, bytes: Uint8Array): void;
  final(context: Uint8Array, digest: Uint8Array): void;
}

export const nativeSha256FileName = 'sha256-state.node';

/** OpenSSL's SHA256_CTX: h[8], Nl, Nh (the length in bits), data[16] (the unfinished block), num, md_len; native byte order. */
const openssl = { contextBytes: 112, bitsLowAt: 32, bitsHighAt: 36, blockAt: 40, pendingAt: 104, digestSizeAt: 108 } as const;

class OpensslSha256 implements SaveableSha256 {
  readonly #addon: Sha256Addon;
  readonly #context = new Uint8Array(openssl.contextBytes);
  readonly #view = new DataView(this.#context.buffer);

  constructor(addon: Sha256Addon, state: Sha256State) {
    this.#addon = addon;
    const view = this.#view;
    state.words.forEach((word, index) => view.setUint32(4 * index, word, true));
    const bits = BigInt(state.length) * 8n;
    view.setUint32(openssl.bitsLowAt, Number(bits & 0xffffffffn), true);
    view.setUint32(openssl.bitsHighAt, Number(bits >> 32n), true);
    this.#context.set(state.pending, openssl.blockAt);
    view.setUint32(openssl.pendingAt, state.pending.byteLength, true);
    view.setUint32(openssl.digestSizeAt, 32, true);
  }

  update(bytes: Uint8Array): void {
    this.#addon.update(this.#context, bytes);
  }

  state(): Sha256State {
    const view = this.#view;
    const words = Array.from({ length: 8 }, (_, index) => view.getUint32(4 * index, true));
    const bits = (BigInt(view.getUint32(openssl.bitsHighAt, true)) << 32n) | BigInt(view.getUint32(openssl.bitsLowAt, true));
    const length = Number(bits / 8n);
    return { words, length, pending: this.#context.slice(openssl.blockAt, openssl.blockAt + (length % sha256BlockBytes)) };
  }

  digestHex(): string {
    const digest = new Uint8Array(32);
    this.#addon.final(this.#context, digest);
    return Buffer.from(digest).toString('hex');
  }
}

async function hashWasmSha256(state: Sha256State): Promise<SaveableSha256> {
  // Loaded when first needed: most machines never need it, and the CLI's bundle stays smaller.
  const { createSHA256 } = await import('hash-wasm');
  const hasher = await createSHA256();
  hasher.init();
  if (state.length > 0) hasher.load(hashWasm4SavedOf(state, hasher.save()));
  return {
    update: (bytes) => void hasher.update(bytes),
    state: () => sha256StateOfHashWasm4(hasher.save()),
    digestHex: () => hasher.digest('hex'),
  };
}

/**
 * Whether `addon` hashes as Node does, a state taken out and put back included (a different
 * OpenSSL context layout would fail here, not in a user's file).
 */
function agreesWithNode(addon: Sha256Addon): boolean {
  const message = Buffer.from(Array.from({ length: 3 * sha256BlockBytes + 17 }, (_, index) => (index * 7) & 0xff));
  const first = new OpensslSha256(addon, emptySha256State);
  first.update(message.subarray(0, 100));
  const second = new OpensslSha256(addon, first.state());
  second.update(message.subarray(100));
  return second.digestHex() === createHash('sha256').update(message).digest('hex');
}

function loadAddon(): { addon: Sha256Addon } | { whyNot: string } {
  if (endianness() !== 'LE') return { whyNot: 'this machine is big-endian' };
  const loaded = loadNativeAddon<Sha256Addon>(nativeSha256FileName);
  if ('whyNot' in loaded) return loaded;
  return agreesWithNode(loaded.addon) ? loaded : { whyNot: `${nativeSha256FileName} does not hash as Node does` };
}

let source: SaveableSha256Source | undefined;

/** This thread's source of saveable SHA-256s (the addon is loaded and checked once). */
export function saveableSha256Source(): SaveableSha256Source {
  if (source) return source;
  const loaded = loadAddon();
  if ('addon' in loaded) {
    const { addon } = loaded;
    source = {
      implementation: 'openssl',
      whyNotNative: undefined,
      make: (state = emptySha256State) => Promise.resolve(new OpensslSha256(addon, state)),
    };
  } else {
    source = { implementation: 'hash-wasm', whyNotNative: loaded.whyNot, make: (state = emptySha256State) => hashWasmSha256(state) };
  }
  return source;
}

/** hash-wasm's, whatever this machine has (tests compare the two). */
export function hashWasmSha256Source(): SaveableSha256Source {
  return { implementation: 'hash-wasm', whyNotNative: 'asked for hash-wasm', make: (state = emptySha256State) => hashWasmSha256(state) };
}
