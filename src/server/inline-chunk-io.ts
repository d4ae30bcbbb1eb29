import { close, open, read, write } from 'node:fs';
import { promisify } from 'node:util';
import { loadXxh64 } from '../hashing/xxh64.js';
import { type BufferTaskResult, type ReadChunkTask, type WriteChunkTask, taskFailure } from '../../workers/tasks.js';

/**
 * Chunks up to this size are checked and written (or read and checked) from the main thread, the
 * I/O itself on libuv's pool: a piscina round trip costs more main-thread time than their xxh64
 * (under 50 µs). A profile of 64 clients uploading 64 KiB files put piscina's dispatch and
 * replies at about a sixth of the server's main thread.
 */
export const inlineChunkMaxBytes = 256 * 1024;

const openFile = promisify(open);
const closeFile = promisify(close);
const writeFile = promisify(write);
const readFile = promisify(read);

async function withFile<T>(path: string, flags: string, use: (fd: number) => Promise<T>): Promise<T> {
  const fd = await openFile(path, flags);
  try {
    return await use(fd);
  } finally {
    await closeFile(fd);
  }
}

/** The worker's `writeChunk` (workers/chunk-worker.ts), for a small chunk, on this thread. */
export async function writeChunkInline(task: WriteChunkTask): Promise<BufferTaskResult> {
  const bytes = new Uint8Array(task.buffer, 0, task.length);
  if ((await loadXxh64())(bytes) !== task.xxh64) {
    return { ok: false, code: 'ECHECKSUM', message: `chunk at offset ${task.offset}: xxh64 mismatch`, buffer: task.buffer };
  }
  try {
    await withFile(task.path, 'r+', async (fd) => {
      for (let done = 0; done < task.length; ) done += (await writeFile(fd, bytes, done, task.length - done, task.offset + done)).bytesWritten;
    });
    return { ok: true, buffer: task.buffer };
  } catch (error) {
    return { ...taskFailure(error, `write at offset ${task.offset}`), buffer: task.buffer };
  }
}

/** The worker's `readChunk`, for a small chunk, on this thread. */
export async function readChunkInline(task: ReadChunkTask): Promise<BufferTaskResult> {
  const bytes = new Uint8Array(task.buffer, 0, task.length);
  try {
    const got = await withFile(task.path, 'r', async (fd) => {
      let done = 0;
      while (done < task.length) {
        const { bytesRead } = await readFile(fd, bytes, done, task.length - done, task.offset + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return done;
    });
    if (got !== task.length || (await loadXxh64())(bytes) !== task.xxh64) {
      return { ok: false, code: 'ECHECKSUM', message: `stored chunk at offset ${task.offset} does not match its recorded xxh64`, buffer: task.buffer };
    }
    return { ok: true, buffer: task.buffer };
  } catch (error) {
    return { ...taskFailure(error, `read at offset ${task.offset}`), buffer: task.buffer };
  }
}
