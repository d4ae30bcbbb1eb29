import { createHash, randomUUID } from 'node:crypto';
import { type Sha256Thread, sharedSha256Thread } from './sha256-thread.js';

/** The SHA-256 of one file, fed in order, chunk by chunk. */
export interface RunningSha256 {
  /** Hashes the first `length` bytes of `buffer`; the buffer must not change until this settles. */
  update(buffer: SharedArrayBuffer, length: number): Promise<void>;
  /** The hex digest of everything fed; the hash is forgotten. */
  digest(): Promise<string>;
  /** Forgets the hash without a digest. */
  drop(): void;
}

/**
 * Files up to this size are hashed on the calling thread: a 1 MiB SHA-256 takes under a
 * millisecond, less than handing its chunks to the hashing thread and back (a profile of 64
 * clients uploading 64 KiB files showed the hand-offs as the largest cost of the main thread).
 */
export const inlineSha256MaxBytes = 1024 * 1024;

/** A running SHA-256 for a file of `totalBytes`: on this thread when small, on the hashing thread otherwise. */
export function runningSha256(totalBytes: number, thread: Sha256Thread = sharedSha256Thread()): RunningSha256 {
  return totalBytes <= inlineSha256MaxBytes ? inlineSha256() : threadSha256(thread);
}

function inlineSha256(): RunningSha256 {
  const hash = createHash('sha256');
  return {
    update(buffer, length) {
      hash.update(new Uint8Array(buffer, 0, length));
      return Promise.resolve();
    },
    digest: () => Promise.resolve(hash.digest('hex')),
    drop() {},
  };
}

function threadSha256(thread: Sha256Thread): RunningSha256 {
  const key = randomUUID();
  return {
    async update(buffer, length) {
      await thread.update(key, buffer, length);
    },
    digest: () => thread.digest(key),
    drop: () => thread.drop(key),
  };
}
