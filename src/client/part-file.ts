import { closeSync, fdatasync, fstatSync, ftruncate, openSync, read, write, writeSync } from 'node:fs';
import { promisify } from 'node:util';

const readAt = promisify(read);
const writeAt = promisify(write);
const datasyncOf = promisify(fdatasync);
const truncateTo = promisify(ftruncate);

/**
 * Writes of at most this many bytes block (a copy into the page cache: microseconds); larger ones
 * go through libuv's thread pool, as they may wait on writeback. One hop through the pool costs
 * tens of microseconds of CPU on these VMs, which a download of a small file paid for every call
 * it made (docs/perf-notes.md, "Local calls of the client on small files").
 */
const blockingWriteBytes = 256 * 1024;

/**
 * A download's part file, open for reading and writing. Opening, closing and small writes block
 * (they do not wait on the disk); syncs, reads and large writes go through libuv's thread pool.
 */
export class PartFile {
  readonly #fd: number;
  #closed = false;

  private constructor(fd: number) {
    this.#fd = fd;
  }

  /** Opens an existing part file (`r+`), or creates or empties it (`w+`). */
  static open(path: string, flags: 'r+' | 'w+'): PartFile {
    return new PartFile(openSync(path, flags));
  }

  /** Creates the part file exclusively; undefined if there is one already. */
  static create(path: string): PartFile | undefined {
    try {
      return new PartFile(openSync(path, 'wx+'));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return undefined;
      throw error;
    }
  }

  /** Writes all of `bytes` at `position`. */
  async write(bytes: Uint8Array, position: number): Promise<void> {
    let written = 0;
    while (written < bytes.byteLength) {
      const length = bytes.byteLength - written;
      written +=
        length <= blockingWriteBytes
          ? writeSync(this.#fd, bytes, written, length, position + written)
          : (await writeAt(this.#fd, bytes, written, length, position + written)).bytesWritten;
    }
  }

  async read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }> {
    const { bytesRead } = await readAt(this.#fd, buffer, offset, length, position);
    return { bytesRead };
  }

  size(): number {
    return fstatSync(this.#fd).size;
  }

  truncate(length: number): Promise<void> {
    return truncateTo(this.#fd, length);
  }

  datasync(): Promise<void> {
    return datasyncOf(this.#fd);
  }

  /** Closes it (once; later calls do nothing). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeSync(this.#fd);
  }
}
