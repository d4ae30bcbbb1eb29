/**
 * The one implementation of chunk I/O: check a received chunk's xxh64 and write it at its offset,
 * or read a stored chunk and check it against its recorded xxh64. The pool's workers run it with
 * blocking calls (a worker does one task at a time); the main thread runs it for small chunks,
 * with writes on libuv's pool and reads of up to 64 KiB blocking (`blockingReadMaxBytes`). Same
 * checks, same messages, whichever runs it.
 */
import { read, readSync, write, writeSync } from 'node:fs';
import { promisify } from 'node:util';
import { localCodec, timedPack, unpackInPlace } from '../src/compression/codecs.js';
import { type ReadChunkResult, type ReadChunkTask, type WriteChunkResult, type WriteChunkTask, taskFailure } from './tasks.js';

/** Positional reads and writes on an open file descriptor: how many bytes each call moved. */
export interface PositionalIo {
  write(fd: number, bytes: Uint8Array, offset: number, length: number, position: number): number | Promise<number>;
  read(fd: number, bytes: Uint8Array, offset: number, length: number, position: number): number | Promise<number>;
}

/** Blocking calls: for a worker thread, which has nothing else to do meanwhile. */
export const blockingIo: PositionalIo = {
  write: (fd, bytes, offset, length, position) => writeSync(fd, bytes, offset, length, position),
  read: (fd, bytes, offset, length, position) => readSync(fd, bytes, offset, length, position),
};

const writeAsync = promisify(write);
const readAsync = promisify(read);

/** Calls on libuv's thread pool: for the main thread, which must not block on the disk. */
export const libuvIo: PositionalIo = {
  write: async (fd, bytes, offset, length, position) => (await writeAsync(fd, bytes, offset, length, position)).bytesWritten,
  read: async (fd, bytes, offset, length, position) => (await readAsync(fd, bytes, offset, length, position)).bytesRead,
};

/**
 * Unpacks a packed chunk first; verifies `xxh64` over buffer[0, length) (or computes it, for a
 * chunk that came without one), then writes those bytes at `offset` of the file (without a file:
 * the caller's store writes them).
 */
export async function writeChunk(task: WriteChunkTask, io: PositionalIo, xxh64: (bytes: Uint8Array) => bigint): Promise<WriteChunkResult> {
  if (task.packed) {
    const failure = unpackInPlace(task.packed.codec, task.buffer, task.packed.bytes, task.length);
    if (failure) return { ok: false, code: 'ECHECKSUM', message: `chunk at offset ${task.offset}: ${failure}` };
  }
  const bytes = new Uint8Array(task.buffer, 0, task.length);
  const computed = xxh64(bytes);
  if (task.xxh64 !== undefined && computed !== task.xxh64) {
    return { ok: false, code: 'ECHECKSUM', message: `chunk at offset ${task.offset}: xxh64 mismatch` };
  }
  const { fd } = task;
  if (fd === undefined) return { ok: true, xxh64: computed };
  try {
    for (let done = 0; done < task.length;) done += await io.write(fd, bytes, done, task.length - done, task.offset + done);
    return { ok: true, xxh64: computed };
  } catch (error) {
    return taskFailure(error, `write at offset ${task.offset}`);
  }
}

/**
 * Reads `length` bytes at `offset` of the file into the buffer (without a file: they are there
 * already) and checks them against `xxh64`; then, if asked and if it pays, compresses them into
 * the same buffer.
 */
export async function readChunk(task: ReadChunkTask, io: PositionalIo, xxh64: (bytes: Uint8Array) => bigint): Promise<ReadChunkResult> {
  const bytes = new Uint8Array(task.buffer, 0, task.length);
  const { fd } = task;
  try {
    let done = fd === undefined ? task.length : 0;
    for (let got = -1; fd !== undefined && done < task.length && got !== 0; done += got)
      got = await io.read(fd, bytes, done, task.length - done, task.offset + done);
    if (done !== task.length || xxh64(bytes) !== task.xxh64) {
      return {
        ok: false,
        code: 'ECHECKSUM',
        message: `stored chunk at offset ${task.offset} does not match its recorded xxh64`,
      };
    }
    const codec = task.pack === undefined ? undefined : localCodec(task.pack);
    if (!codec) return { ok: true };
    const { packed, measure } = timedPack(codec, bytes);
    if (!packed) return { ok: true, measured: measure };
    bytes.set(packed);
    return { ok: true, packed: { codec: codec.name, bytes: packed.length }, measured: measure };
  } catch (error) {
    return taskFailure(error, `read at offset ${task.offset}`);
  }
}
