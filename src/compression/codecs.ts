/**
 * The codecs a PACKED chunk may use, as far as this process has them: brotli always (Node's
 * zlib), zstd where Node's zlib has it (22.15 and later), lz4 where the optional `lz4-napi`
 * package installed. A codec this process lacks is simply not offered.
 */
import { createRequire } from 'node:module';
import * as zlib from 'node:zlib';
import { type CodecName, codecNames } from '../protocol/frames.js';

export interface Codec {
  readonly name: CodecName;
  compress(raw: Uint8Array): Buffer;
  /** The `rawLength` bytes `packed` stands for; throws if it holds anything else (or more). */
  decompress(packed: Uint8Array, rawLength: number): Buffer;
}

/** The part of lz4-napi used here: lz4 blocks with their size in front (4 bytes, little-endian). */
interface Lz4Napi {
  compressSync(data: Buffer): Buffer;
  uncompressSync(data: Uint8Array): Buffer;
}

/** zstd arrived in Node's zlib in 22.15; @types/node for 20 does not know it. */
interface ZstdZlib {
  zstdCompressSync: (data: Uint8Array, options: { params: Record<number, number> }) => Buffer;
  zstdDecompressSync: (data: Uint8Array, options: { maxOutputLength: number; params: Record<number, number> }) => Buffer;
  constants: { ZSTD_c_compressionLevel: number; ZSTD_d_windowLogMax: number };
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function exactly(raw: Buffer, rawLength: number, codec: CodecName): Buffer {
  if (raw.length !== rawLength) throw new Error(`${codec} data holds ${raw.length} bytes, not ${rawLength}`);
  return raw;
}

const brotli: Codec = {
  name: 'brotli',
  compress: (raw) =>
    zlib.brotliCompressSync(raw, {
      params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 1, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: raw.byteLength },
    }),
  decompress: (packed, rawLength) => exactly(zlib.brotliDecompressSync(packed, { maxOutputLength: rawLength }), rawLength, 'brotli'),
};

function zstdCodec(): Codec | undefined {
  const z = zlib as unknown as Partial<ZstdZlib>;
  if (typeof z.zstdCompressSync !== 'function' || typeof z.zstdDecompressSync !== 'function' || !z.constants) return undefined;
  const { zstdCompressSync, zstdDecompressSync } = z as ZstdZlib;
  const level = { [z.constants.ZSTD_c_compressionLevel]: 1 };
  // The output is bounded by maxOutputLength; the decoder's own window (up to 128 MiB by default,
  // as a frame declares it) by this: 16 MiB, more than level 1 ever uses.
  const window = { [z.constants.ZSTD_d_windowLogMax]: 24 };
  return {
    name: 'zstd',
    compress: (raw) => zstdCompressSync(raw, { params: level }),
    decompress: (packed, rawLength) =>
      exactly(zstdDecompressSync(packed, { maxOutputLength: rawLength, params: window }), rawLength, 'zstd'),
  };
}

function lz4Codec(): Codec | undefined {
  let lz4: Lz4Napi;
  try {
    lz4 = createRequire(import.meta.url)('lz4-napi') as Lz4Napi;
  } catch {
    return undefined; // not installed (an optional dependency), or no binary for this platform
  }
  return {
    name: 'lz4',
    compress: (raw) => lz4.compressSync(asBuffer(raw)),
    decompress: (packed, rawLength) => {
      // The size in front is checked before anything is allocated for it: no decompression bomb.
      if (packed.byteLength < 4) throw new Error('lz4 data is shorter than its size field');
      const declared = asBuffer(packed).readUInt32LE(0);
      if (declared !== rawLength) throw new Error(`lz4 data says ${declared} bytes, not ${rawLength}`);
      return exactly(lz4.uncompressSync(packed), rawLength, 'lz4');
    },
  };
}

const codecLoaders: Record<CodecName, () => Codec | undefined> = { lz4: lz4Codec, zstd: zstdCodec, brotli: () => brotli };
const loadedCodecs = new Map<CodecName, Codec | undefined>();

/**
 * This process's `name` codec, or undefined if it lacks it; loaded on first use (lz4-napi is a
 * native module: loading it took about 13 ms of a `ferry upload`'s start, which `auto` seldom
 * needs, as it prefers zstd and brotli).
 */
export function localCodec(name: CodecName): Codec | undefined {
  if (!loadedCodecs.has(name)) loadedCodecs.set(name, codecLoaders[name]());
  return loadedCodecs.get(name);
}

/** All of this process's codecs, in the protocol's order (lz4, zstd, brotli). */
export function localCodecs(): ReadonlyMap<CodecName, Codec> {
  const codecs = codecNames.map(localCodec).filter((codec) => codec !== undefined);
  return new Map(codecs.map((codec) => [codec.name, codec]));
}

/**
 * A chunk compressed with `codec`, or undefined when that does not pay: it did not shrink by at
 * least 1/16 (sent raw, it costs the receiver nothing to unpack).
 */
export function packIfSmaller(codec: Codec, raw: Uint8Array): Buffer | undefined {
  const packed = codec.compress(raw);
  return packed.length <= raw.byteLength - Math.ceil(raw.byteLength / 16) ? packed : undefined;
}

/** What packing took and gave: `rawBytes` packed to `packedBytes` (undefined: not worth sending packed) in `ms`. */
export interface PackMeasure {
  rawBytes: number;
  packedBytes: number | undefined;
  ms: number;
}

/** `raw` packed with `codec` as `packIfSmaller` does, and what that took (what `auto` weighs against the link). */
export function timedPack(codec: Codec, raw: Uint8Array): { packed: Buffer | undefined; measure: PackMeasure } {
  const started = performance.now();
  const packed = packIfSmaller(codec, raw);
  return { packed, measure: { rawBytes: raw.byteLength, packedBytes: packed?.length, ms: performance.now() - started } };
}

/**
 * A chunk at least this big (or as big as the largest yet) tells how fast a codec packs and how
 * much the data shrinks: `auto` probes only such chunks, and learns from no smaller one.
 */
export const probeBytes = 256 * 1024;

/**
 * Unpacks the first `bytes` of `buffer` (compressed with `codec`) into `buffer` itself, as the
 * `rawLength` bytes they stand for. Returns undefined when it did; else why not, in words.
 */
export function unpackInPlace(
  codec: CodecName,
  buffer: ArrayBuffer | SharedArrayBuffer,
  bytes: number,
  rawLength: number,
): string | undefined {
  const unpacker = localCodec(codec);
  if (!unpacker) return `no ${codec} codec here`;
  if (rawLength > buffer.byteLength) return `${rawLength} bytes do not fit a ${buffer.byteLength}-byte chunk buffer`;
  try {
    new Uint8Array(buffer, 0, rawLength).set(unpacker.decompress(new Uint8Array(buffer, 0, bytes), rawLength));
    return undefined;
  } catch (error) {
    return `${codec} data does not unpack: ${(error as Error).message}`;
  }
}
