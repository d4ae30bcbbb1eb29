/**
 * The per-chunk xxh64: native/xxh64.c (where native/build.js built it) must give xxhash-wasm's
 * hash for every length and alignment, on ordinary and shared memory, since a chunk hashed by one
 * side is checked by the other, whichever each uses.
 */
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { loadNativeAddon } from '../src/hashing/native-addon.js';
import { loadXxh64, loadXxhash, nativeXxh64FileName } from '../src/hashing/xxh64.js';

const native = loadNativeAddon<{ h64: (bytes: Uint8Array) => bigint }>(nativeXxh64FileName);

t.test('the addon is used where it was built', async (t) => {
  const xxh64 = await loadXxh64();
  // CI builds with FERRY_NATIVE=required: there the addon must load and agree with xxhash-wasm.
  if (process.env.FERRY_NATIVE === 'required') t.equal(xxh64.implementation, 'native', 'whyNot' in native ? native.whyNot : 'in use');
  else if (xxh64.implementation !== 'native')
    t.comment(`the addon is not in use here: ${'whyNot' in native ? native.whyNot : 'it disagrees'}`);
  t.equal(xxh64.implementation === 'native', 'addon' in native, 'used exactly when it loads (and agrees)');
});

t.test('the addon gives xxhash-wasm’s xxh64 for every length and offset, ArrayBuffer or SharedArrayBuffer', async (t) => {
  if (!('addon' in native)) {
    t.comment(`the addon is not built here: ${native.whyNot}`);
    return;
  }
  const { h64 } = native.addon;
  const wasm = await loadXxhash();
  const bytes = randomBytes(4 * 1024 * 1024 + 13);
  const shared = new Uint8Array(new SharedArrayBuffer(bytes.byteLength));
  shared.set(bytes);
  let compared = 0;
  for (const memory of [bytes, shared]) {
    // Every length through two stripes (32 bytes each) and the 8- and 4-byte tails, at each offset mod 8.
    for (let offset = 0; offset < 8; offset += 1) {
      for (let length = 0; length <= 80; length += 1) {
        const view = memory.subarray(offset, offset + length);
        if (h64(view) !== wasm.h64Raw(view)) t.fail(`offset ${offset}, length ${length}`);
        compared += 1;
      }
    }
    for (const view of [memory, memory.subarray(3), memory.subarray(1, 1 + 4 * 1024 * 1024), memory.subarray(0, 65_536)]) {
      t.equal(h64(view), wasm.h64Raw(view), `${view.byteLength} bytes at offset ${view.byteOffset}`);
    }
  }
  t.equal(compared, 2 * 8 * 81, 'all short views compared');
  t.throws(() => h64(Buffer.from('x').toString() as unknown as Uint8Array), { code: 'ERR_INVALID_ARG_TYPE' }, 'a string is refused');
});
