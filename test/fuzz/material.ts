// Fixed material the fuzz draws from: file contents (samples), names, odd values.
import { createHash } from 'node:crypto';
import xxhash from 'xxhash-wasm';
import { KiB, chunkSize } from './config.js';

const xxhashApi = await xxhash();
export const xxh64 = (bytes: Uint8Array): bigint => xxhashApi.h64Raw(bytes);
export const create64 = (): ReturnType<typeof xxhashApi.create64> => xxhashApi.create64();
export const sha256Hex = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** Deterministic bytes (xorshift32), so a failing run replays byte for byte. */
export function pseudoRandomBytes(seedValue: number, length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  let x = seedValue | 0 || 0x2545f491;
  for (let i = 0; i < length; i += 1) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** A file the fuzzer uploads. Only these contents are ever sent whole, so only they can be published. */
export interface Sample {
  size: number;
  bytes: Buffer;
  sha256: string;
  /** As the reference client computes it, so a fuzzed upload and a normal one share sessions. */
  fingerprint: string;
  chunkHashes: bigint[];
}

function makeSample(size: number, contentSeed: number): Sample {
  const bytes = pseudoRandomBytes(contentSeed, size);
  const edge = Math.min(size, 64 * KiB);
  const fingerprint = `v1:${size}:${xxh64(bytes.subarray(0, edge)).toString(16)}:${xxh64(bytes.subarray(size - edge)).toString(16)}`;
  const chunkHashes: bigint[] = [];
  for (let offset = 0; offset < size; offset += chunkSize) chunkHashes.push(xxh64(bytes.subarray(offset, offset + chunkSize)));
  return { size, bytes, sha256: sha256Hex(bytes), fingerprint, chunkHashes };
}

// Sizes around the chunk boundaries; two contents per size (same size, other bytes and fingerprint).
export const sampleSizes = [0, 1, 100, chunkSize - 1, chunkSize, chunkSize + 1, 2 * chunkSize + 5];
export const samples: Sample[] = sampleSizes.flatMap((size, i) =>
  (size === 0 ? [0] : [0, 1]).map((variant) => makeSample(size, 1000 + 2 * i + variant)),
);
export const sampleBySha = new Map(samples.map((sample) => [sample.sha256, sample]));

// Valid names the fuzzer reuses, so that puts collide, resume, replace, and downloads find files.
// None is the folder of another.
export const namePool = [
  'fuzz/a.bin',
  'fuzz/b',
  'fuzz/dir/c.bin',
  'fuzz/é ü',
  'fuzz/日本語.txt',
  'fuzz/emoji-😀',
  'fuzz/sp a:c*e?"<>|',
  'fuzz/\u2028sep',
];
export const oddNames = [
  '',
  '.',
  '..',
  '../x',
  '../../escape',
  '/etc/passwd',
  'a//b',
  'a/',
  '/',
  'a\\b',
  'a\u0000b',
  'a\nb',
  'a\u007fb',
  'a\u0085b',
  'a\u009b31m',
  '\ud800',
  'x\udfff',
  'a'.repeat(256),
  'é'.repeat(600),
  'a'.repeat(4097),
  'fuzz/a.bin/under',
  'fuzz',
  'fuzz/dir',
  '\u202egnp.exe',
  ' ',
  'fuzz/./a.bin',
  'fuzz/../fuzz/a.bin',
];
export const oddBodies = [
  '[]',
  'null',
  '42',
  '"info"',
  '{',
  '{}',
  '{"id":1}',
  ' ',
  '{"id":1,"op":"info"}{"id":2,"op":"info"}',
  '\ufeff{"id":3,"op":"info"}',
  '{"id":4,"op":"info","__proto__":{"polluted":1}}',
  '{"id":5,"op":"info","constructor":{"prototype":{"polluted":1}}}',
  `{"id":6,"op":"stat","name":${'['.repeat(3000)}${']'.repeat(3000)}}`,
  `{"id":7,"op":"info","x":${'{"a":'.repeat(1200)}1${'}'.repeat(1200)}}`,
  '{"id":8,"op":"list","limit":1e400}',
  '{"id":9,"op":"info"',
];
