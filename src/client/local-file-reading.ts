import { type RunningSha256, runningSha256 } from '../hashing/running-sha256.js';
import { FerryError } from '../protocol/errors.js';

/**
 * What the attempts of one upload have learned of the local file so far: the xxh64 of each chunk
 * read, in order from the first, and the running SHA-256 of those chunks. It outlives an attempt:
 * after a lost connection the next attempt (same process, same file) neither reads again the
 * chunks the server already holds nor hashes again the ones it re-sends, so a resume costs the
 * bytes still missing and not a pass over the whole file. A new process starts from nothing and
 * must read and hash the file from its first byte (the SHA-256 covers the whole file).
 */
export class LocalFileReading {
  /** Size, fingerprint and chunk size of the file as read: another file (or a changed one) starts over. */
  #identity: string | undefined;
  #sha256: RunningSha256 | undefined;
  /** xxh64 of chunks [0, chunksRead); grows as they are read (8 bytes a chunk). */
  #hashes = new BigUint64Array(0);
  #chunksRead = 0;
  /** How many chunks the file has. */
  #chunkCount = 0;
  /** Settles when the last SHA-256 update has settled (they are applied in order). */
  #lastUpdate: Promise<void> = Promise.resolve();
  #updateFailed = false;

  /**
   * Gets ready for an attempt on the file with this identity: keeps what earlier attempts read
   * if it was the same file and every hash update went through, else starts over.
   */
  async begin(size: number, fingerprint: string, chunkSize: number): Promise<void> {
    const identity = `${size}:${fingerprint}:${chunkSize}`;
    await this.#lastUpdate;
    if (identity === this.#identity && !this.#updateFailed && this.#sha256) return;
    this.forget();
    this.#identity = identity;
    this.#sha256 = runningSha256(size);
    this.#chunkCount = Math.ceil(size / chunkSize);
  }

  get chunksRead(): number {
    return this.#chunksRead;
  }

  /** The xxh64 chunk `index` had when it was read, if it has been. */
  hashOf(index: number): bigint | undefined {
    return index < this.#chunksRead ? this.#hashes[index] : undefined;
  }

  /**
   * Records the next chunk in order (`index` must equal `chunksRead`) and feeds its bytes to the
   * SHA-256. The buffer must not change until the returned promise settles.
   */
  add(index: number, hash: bigint, buffer: SharedArrayBuffer, length: number): Promise<void> {
    if (!this.#sha256 || index !== this.#chunksRead) throw new Error(`chunk ${index} read out of order (next is ${this.#chunksRead})`);
    if (index >= this.#hashes.length) {
      const grown = new BigUint64Array(Math.min(this.#chunkCount, Math.max(64, 2 * this.#hashes.length)));
      grown.set(this.#hashes);
      this.#hashes = grown;
    }
    this.#hashes[index] = hash;
    this.#chunksRead += 1;
    const update = this.#sha256.update(buffer, length).then(() => {});
    this.#lastUpdate = update.catch(() => {
      this.#updateFailed = true;
    });
    return update;
  }

  /** The whole file's SHA-256, once every chunk has been added; the reading is forgotten. */
  async digest(): Promise<string> {
    if (!this.#sha256 || this.#chunksRead !== this.#chunkCount)
      throw new Error(`digest after ${this.#chunksRead} of ${this.#chunkCount} chunks`);
    await this.#lastUpdate;
    if (this.#updateFailed) throw new FerryError('EINTERNAL', 'hashing the local file failed');
    const digest = await this.#sha256.digest();
    this.#reset();
    return digest;
  }

  /** Lets go of the running hash (the upload finished, failed for good, or the file changed). */
  forget(): void {
    this.#sha256?.drop();
    this.#reset();
  }

  #reset(): void {
    this.#identity = undefined;
    this.#sha256 = undefined;
    this.#hashes = new BigUint64Array(0);
    this.#chunksRead = 0;
    this.#chunkCount = 0;
    this.#lastUpdate = Promise.resolve();
    this.#updateFailed = false;
  }
}
