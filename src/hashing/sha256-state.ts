/**
 * The state of a SHA-256 part way through a message, in a form of Ferry's own: what an upload to
 * a shared object store keeps with its verified chunks, so that another server (or this one after
 * a restart, or after an upgrade that changed the hash's implementation) hashes on from there.
 *
 * Text form: `sha256.v1.` + base64 of the eight chaining words (big-endian, as FIPS 180-4 writes
 * them), the message length so far in bytes (64-bit big-endian) and the bytes of the unfinished
 * 64-byte block (length mod 64 of them). States saved before this form (hash-wasm 4's own `save()`
 * in base64, 116 bytes) are still read.
 */
export interface Sha256State {
  /** The chaining value H0..H7 after every whole block so far. */
  readonly words: readonly number[];
  /** Bytes hashed so far. */
  readonly length: number;
  /** The last `length % 64` bytes, not yet a whole block. */
  readonly pending: Uint8Array;
}

export const sha256BlockBytes = 64;
const textPrefix = 'sha256.v1.';
const wordsBytes = 32;
const headerBytes = wordsBytes + 8;

/** The initial state (no bytes hashed). */
export const emptySha256State: Sha256State = {
  words: [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19],
  length: 0,
  pending: new Uint8Array(0),
};

/** Throws unless `state` is one a SHA-256 can be at. */
export function checkSha256State(state: Sha256State): Sha256State {
  const wordsOk = state.words.length === 8 && state.words.every((word) => Number.isInteger(word) && word >= 0 && word <= 0xffffffff);
  if (!wordsOk || !Number.isSafeInteger(state.length) || state.length < 0 || state.pending.byteLength !== state.length % sha256BlockBytes) {
    throw new Error('not a SHA-256 state');
  }
  return state;
}

export function encodeSha256State(state: Sha256State): string {
  checkSha256State(state);
  const bytes = new Uint8Array(headerBytes + state.pending.byteLength);
  const view = new DataView(bytes.buffer);
  state.words.forEach((word, index) => view.setUint32(4 * index, word));
  view.setBigUint64(wordsBytes, BigInt(state.length));
  bytes.set(state.pending, headerBytes);
  return textPrefix + Buffer.from(bytes).toString('base64');
}

/** The state in `text` (this form, or hash-wasm 4's); throws if it is neither. */
export function decodeSha256State(text: string): Sha256State {
  if (!text.startsWith(textPrefix)) return fromHashWasm4(Buffer.from(text, 'base64'));
  const bytes = Buffer.from(text.slice(textPrefix.length), 'base64');
  if (bytes.byteLength < headerBytes) throw new Error('not a SHA-256 state');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const words = Array.from({ length: 8 }, (_, index) => view.getUint32(4 * index));
  const length = Number(view.getBigUint64(wordsBytes));
  return checkSha256State({ words, length, pending: new Uint8Array(bytes.subarray(headerBytes)) });
}

/** Whether `text` is a state `decodeSha256State` takes. */
export function isSha256State(text: string): boolean {
  try {
    decodeSha256State(text);
    return true;
  } catch {
    return false;
  }
}

/**
 * hash-wasm 4's saved SHA-256 (`save()`): 4 bytes naming its WebAssembly, then its context: the
 * unfinished block (64 bytes), the length in bytes (64-bit little-endian), the chaining words
 * (little-endian), the digest size (32).
 */
const hashWasm4 = { prefixBytes: 4, lengthAt: 64, wordsAt: 72, digestSizeAt: 104, contextBytes: 112 } as const;

function fromHashWasm4(saved: Uint8Array): Sha256State {
  const { prefixBytes, lengthAt, wordsAt, digestSizeAt, contextBytes } = hashWasm4;
  if (saved.byteLength !== prefixBytes + contextBytes) throw new Error('not a SHA-256 state');
  const context = saved.subarray(prefixBytes);
  const view = new DataView(context.buffer, context.byteOffset, context.byteLength);
  if (view.getUint32(digestSizeAt, true) !== 32) throw new Error('not a SHA-256 state');
  const length = Number(view.getBigUint64(lengthAt, true));
  const words = Array.from({ length: 8 }, (_, index) => view.getUint32(wordsAt + 4 * index, true));
  return checkSha256State({ words, length, pending: context.slice(0, length % sha256BlockBytes) });
}

/** The state a hash-wasm 4 SHA-256 saved (`save()`). */
export const sha256StateOfHashWasm4 = fromHashWasm4;

/** `state` for a hash-wasm 4 SHA-256's `load()`, given what its `save()` gave right after `init()` (for the prefix). */
export function hashWasm4SavedOf(state: Sha256State, savedAfterInit: Uint8Array): Uint8Array {
  const { prefixBytes, lengthAt, wordsAt, digestSizeAt, contextBytes } = hashWasm4;
  checkSha256State(state);
  const saved = new Uint8Array(prefixBytes + contextBytes);
  saved.set(savedAfterInit.subarray(0, prefixBytes));
  const context = saved.subarray(prefixBytes);
  const view = new DataView(context.buffer, context.byteOffset, context.byteLength);
  context.set(state.pending, 0);
  view.setBigUint64(lengthAt, BigInt(state.length), true);
  state.words.forEach((word, index) => view.setUint32(wordsAt + 4 * index, word, true));
  view.setUint32(digestSizeAt, 32, true);
  return saved;
}
