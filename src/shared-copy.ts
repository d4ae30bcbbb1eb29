/** Bounce buffer for `copyIntoShared`; grows to the largest piece seen. */
let bounce = Buffer.alloc(0);

/**
 * Copies `source` into `target` (a view of a SharedArrayBuffer) at `at`. V8 copies into shared
 * memory word by word only when source and target are aligned alike (mod 8), and byte by byte
 * otherwise: a piece of a frame starts wherever its header ended, so a plain `set` is about four
 * times slower for most pieces (docs/perf-notes.md). Going through an ordinary buffer at the
 * target's alignment makes both copies fast.
 */
export function copyIntoShared(target: Buffer, source: Uint8Array, at: number): void {
  const misalignment = (source.byteOffset - at) & 7;
  // Into ordinary memory (the server's chunk buffers) a plain copy is fast at any alignment.
  if (misalignment === 0 || !(target.buffer instanceof SharedArrayBuffer)) {
    target.set(source, at);
    return;
  }
  const shift = at & 7;
  if (bounce.length < source.byteLength + 8) bounce = Buffer.allocUnsafeSlow(source.byteLength + 8);
  bounce.set(source, shift);
  target.set(bounce.subarray(shift, shift + source.byteLength), at);
}
