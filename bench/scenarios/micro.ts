import { createHash, randomFillSync } from 'node:crypto';
import { closeSync, lstatSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { lstat, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadXxh64 } from '../../src/hashing/xxh64.js';
import { FrameDecoder, type FrameSink } from '../../src/protocol/decoder.js';
import { encodeChunkHead, encodeControl } from '../../src/protocol/encoder.js';
import { maxChunkBytesCeiling } from '../../src/protocol/frames.js';
import { type BenchContext, log } from '../lib/context.js';
import type { ScenarioReport } from '../lib/report.js';
import { median } from '../lib/stats.js';
import { MiB, formatNumber } from '../lib/units.js';

const chunkBytes = 4 * MiB;
const socketReadBytes = 64 * 1024;
const samples = 3;

export interface MicroResult {
  name: string;
  /** Operations per second: frames for the codec, calls for the hashes. Median of the samples. */
  opsPerSecond: number;
  /** Payload bytes per second, median. */
  bytesPerSecond: number;
  samples: { ops: number; bytes: number; seconds: number }[];
}

/**
 * Calls `batch` (which returns the operations and bytes it did) until `seconds` have passed,
 * `samples` times after one warm-up; reports the median rates.
 */
function measure(name: string, seconds: number, batch: () => { ops: number; bytes: number }): MicroResult {
  const runFor = (limit: number): { ops: number; bytes: number; seconds: number } => {
    let ops = 0;
    let bytes = 0;
    const started = performance.now();
    let elapsed: number;
    do {
      const done = batch();
      ops += done.ops;
      bytes += done.bytes;
      elapsed = (performance.now() - started) / 1000;
    } while (elapsed < limit);
    return { ops, bytes, seconds: elapsed };
  };
  runFor(Math.min(0.2, seconds / 2));
  const taken = Array.from({ length: samples }, () => runFor(seconds));
  const result = {
    name,
    opsPerSecond: median(taken.map((s) => s.ops / s.seconds)),
    bytesPerSecond: median(taken.map((s) => s.bytes / s.seconds)),
    samples: taken,
  };
  log(`micro ${name}: ${formatNumber(result.opsPerSecond)} ops/s, ${formatNumber(result.bytesPerSecond / MiB)} MiB/s`);
  return result;
}

/** A byte stream cut into the 64 KiB pieces a socket delivers. */
function socketPieces(stream: Buffer): Buffer[] {
  const pieces: Buffer[] = [];
  for (let offset = 0; offset < stream.length; offset += socketReadBytes) pieces.push(stream.subarray(offset, offset + socketReadBytes));
  return pieces;
}

/** A sink that counts frames, optionally copying chunk payload into a chunk buffer as the server does. */
function countingSink(copyInto?: Buffer): FrameSink & { frames: number } {
  let filled = 0;
  const sink = {
    frames: 0,
    control() {
      sink.frames += 1;
    },
    chunkStart() {
      filled = 0;
    },
    chunkData(piece: Uint8Array) {
      if (copyInto) copyInto.set(piece, filled);
      filled += piece.byteLength;
    },
    chunkEnd() {
      sink.frames += 1;
    },
    protocolError(error: Error) {
      throw error;
    },
  };
  return sink;
}

function decoderBench(
  name: string,
  seconds: number,
  stream: Buffer,
  framesInStream: number,
  payloadBytes: number,
  copy: boolean,
): MicroResult {
  const pieces = socketPieces(stream);
  const sink = countingSink(copy ? Buffer.allocUnsafe(chunkBytes) : undefined);
  const decoder = new FrameDecoder({ maxControlBytes: 256 * 1024, maxChunkBytes: maxChunkBytesCeiling }, sink);
  return measure(name, seconds, () => {
    const before = sink.frames;
    for (const piece of pieces) decoder.push(piece);
    if (sink.frames - before !== framesInStream)
      throw new Error(`${name}: decoded ${sink.frames - before} frames, expected ${framesInStream}`);
    return { ops: framesInStream, bytes: payloadBytes };
  });
}

function chunkStream(frames: number): Buffer {
  const payload = randomFillSync(Buffer.allocUnsafe(chunkBytes));
  const parts: Buffer[] = [];
  for (let index = 0; index < frames; index += 1) {
    parts.push(encodeChunkHead({ stream: 1, offset: index * chunkBytes, xxh64: 0x0123456789abcdefn, length: chunkBytes }), payload);
  }
  return Buffer.concat(parts);
}

/** Typical small control traffic: requests and replies of a few dozen bytes. */
function controlMessages(count: number): object[] {
  return Array.from({ length: count }, (_, id) =>
    id % 2 === 0
      ? { id, op: 'hashes', stream: 7, from: id * 256, count: 256 }
      : {
          id,
          ok: true,
          result: { name: `dir/file-${id}.bin`, size: 65536, sha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' },
        },
  );
}

/** CPU per call of a small file-system call: microseconds of this process (all its threads), median of the samples. */
export interface MetadataCallResult {
  name: string;
  cpuMicrosecondsPerCall: number;
  wallMicrosecondsPerCall: number;
}

/**
 * Runs `call` `calls` times, 16 at once (as concurrent transfers do), `samples` times after a
 * warm-up: the CPU it took per call, the thread pool's threads included (process.cpuUsage).
 */
async function metadataCall(name: string, calls: number, call: () => unknown): Promise<MetadataCallResult> {
  const runOnce = async (): Promise<{ cpu: number; wall: number }> => {
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next++ < calls) await call();
      }),
    );
    const cpu = process.cpuUsage(cpuBefore);
    return { cpu: (cpu.user + cpu.system) / calls, wall: ((performance.now() - started) * 1000) / calls };
  };
  await runOnce();
  const taken: { cpu: number; wall: number }[] = [];
  for (let sample = 0; sample < samples; sample += 1) taken.push(await runOnce());
  const result = {
    name,
    cpuMicrosecondsPerCall: median(taken.map((each) => each.cpu)),
    wallMicrosecondsPerCall: median(taken.map((each) => each.wall)),
  };
  log(`micro ${name}: ${result.cpuMicrosecondsPerCall.toFixed(1)} µs of CPU per call`);
  return result;
}

/** The metadata calls a small upload or download makes, blocking and through libuv's thread pool (docs/perf-notes.md, "Small metadata calls"). */
async function metadataCalls(): Promise<MetadataCallResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-micro-'));
  try {
    const file = join(dir, 'file');
    writeFileSync(file, 'x');
    const calls = 4000;
    return [
      await metadataCall('lstat of a folder, blocking (lstatSync)', calls, () => lstatSync(dir)),
      await metadataCall('lstat of a folder, on the thread pool (fs/promises)', calls, () => lstat(dir)),
      await metadataCall('open + close of a file for reading, blocking', calls, () => closeSync(openSync(file, 'r'))),
      await metadataCall('open + close of a file for reading, FileHandle on the thread pool', calls, async () =>
        (await open(file, 'r')).close(),
      ),
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function runMicro(ctx: BenchContext): Promise<ScenarioReport> {
  const seconds = ctx.options.microSeconds;
  const results: MicroResult[] = [];

  const chunkFrames = 8;
  const chunks = chunkStream(chunkFrames);
  results.push(
    decoderBench('FrameDecoder: 4 MiB chunk frames in 64 KiB pieces', seconds, chunks, chunkFrames, chunkFrames * chunkBytes, false),
  );
  results.push(
    decoderBench('FrameDecoder + copy into a 4 MiB buffer (server path)', seconds, chunks, chunkFrames, chunkFrames * chunkBytes, true),
  );

  const messages = controlMessages(10_000);
  const controls = Buffer.concat(messages.map((message) => encodeControl(message)));
  results.push(decoderBench('FrameDecoder: small control frames (JSON)', seconds, controls, messages.length, controls.length, false));
  results.push(
    measure('encodeControl: small control frames', seconds, () => {
      let bytes = 0;
      for (const message of messages) bytes += encodeControl(message).length;
      return { ops: messages.length, bytes };
    }),
  );

  const buffer = randomFillSync(Buffer.allocUnsafe(chunkBytes));
  const xxh64 = await loadXxh64();
  results.push(
    measure('xxh64 (xxhash-wasm) of a 4 MiB buffer', seconds, () => {
      xxh64(buffer);
      return { ops: 1, bytes: buffer.length };
    }),
  );
  results.push(
    measure('SHA-256 (node:crypto) of 4 MiB buffers', seconds, () => {
      const hash = createHash('sha256');
      for (let index = 0; index < 4; index += 1) hash.update(buffer);
      hash.digest();
      return { ops: 4, bytes: 4 * buffer.length };
    }),
  );

  const metadata = await metadataCalls();

  return {
    id: 'micro',
    title: 'Micro-benchmarks: codec and hashes, one thread of the bench process; small file-system calls',
    notes: [
      `Medians of ${samples} samples of ${seconds} s each after a warm-up. MiB/s counts payload bytes (for control frames: whole frames); MB/s is the same rate in 10^6 bytes.`,
      'The decoder gets the byte stream in 64 KiB pieces, as a socket delivers it; "ops/s" is frames/s for the codec rows and calls/s for the hash rows.',
      "Small file-system calls: 4,000 calls, 16 at once, on a folder and a file in the OS temp directory (cached); CPU is the whole process's per call, libuv's threads included. A call through the thread pool pays a hand-off and a wake-up each way, which on these VMs costs several times the call itself: the server makes the checks of a stored file's folders and the opening of a file to read it blocking for that reason.",
    ],
    tables: [
      {
        headers: ['benchmark', 'ops/s', 'MiB/s', 'MB/s'],
        numeric: [1, 2, 3],
        rows: results.map((r) => [
          r.name,
          formatNumber(r.opsPerSecond),
          formatNumber(r.bytesPerSecond / MiB),
          formatNumber(r.bytesPerSecond / 1e6),
        ]),
      },
      {
        headers: ['small file-system call', 'CPU µs per call', 'wall µs per call'],
        numeric: [1, 2],
        rows: metadata.map((m) => [m.name, m.cpuMicrosecondsPerCall.toFixed(1), m.wallMicrosecondsPerCall.toFixed(1)]),
      },
    ],
    data: { results, metadata },
  };
}
