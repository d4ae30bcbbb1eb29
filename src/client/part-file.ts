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
 * As a `FileHandle` does, `close` waits for the calls still under way on the descriptor: closed
 * under them, its number could be reused by the next file opened, and they would act on that one.
 */
export class PartFile {
  readonly #fd: number;
  readonly #pending = new Set<Promise<unknown>>();
  #closing: Promise<void> | undefined;

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
          ? writeSync(this.#openFd(), bytes, written, length, position + written)
          : (await this.#tracked(writeAt(this.#openFd(), bytes, written, length, position + written))).bytesWritten;
    }
  }

  async read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }> {
    const { bytesRead } = await this.#tracked(readAt(this.#openFd(), buffer, offset, length, position));
    return { bytesRead };
  }

  size(): number {
    return fstatSync(this.#openFd()).size;
  }

  truncate(length: number): Promise<void> {
    return this.#tracked(truncateTo(this.#openFd(), length));
  }

  datasync(): Promise<void> {
    return this.#tracked(datasyncOf(this.#openFd()));
  }

  /** Closes it once the calls under way have ended (once; later calls get the same promise). */
  close(): Promise<void> {
    this.#closing ??= Promise.allSettled([...this.#pending]).then(() => closeSync(this.#fd));
    return this.#closing;
  }

  #openFd(): number {
    if (this.#closing) throw Object.assign(new Error('the part file is closed'), { code: 'EBADF' });
    return this.#fd;
  }

  #tracked<T>(call: Promise<T>): Promise<T> {
    this.#pending.add(call);
    const settled = (): void => void this.#pending.delete(call);
    call.then(settled, settled);
    return call;
  }
}
