import { createHash, randomUUID } from 'node:crypto';
import { type Sha256Thread, sharedSha256Thread, sharedSha256ThreadIfMade } from './sha256-thread.js';

/** The SHA-256 of one file, fed in order, chunk by chunk: on the calling thread, or on the hashing thread. */
export interface RunningSha256 {
  /**
   * Hashes the first `length` bytes of `buffer`. A SharedArrayBuffer is read in place and must
   * not change until this settles; an ArrayBuffer may be moved to the hashing thread: it is given
   * back when this resolves (rejected: it was lost with the thread).
   */
  update<B extends ArrayBuffer | SharedArrayBuffer>(buffer: B, length: number): Promise<B>;
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

/**
 * Until a process has hashed this much of files above `inlineSha256MaxBytes` (as declared when
 * each began), it does so on the calling thread too, rather than start the hashing thread:
 * starting one (a bare Worker, workers/sha256-worker.ts) costs about 75 ms of CPU on these VMs,
 * as much as hashing 50-100 MiB, and about as much wall time as hashing this much. So a
 * `ferry upload` of a 32 MiB file starts no thread (it paid for one in every process), and a
 * process that goes on to hash more (a library client, a tree) starts it.
 */
export const threadStartPaysFromBytes = 64 * 1024 * 1024;

/** Bytes of files above `inlineSha256MaxBytes` this process chose to hash on its calling thread. */
let hashedInlineInsteadBytes = 0;

/**
 * A running SHA-256 for a file of `totalBytes`: on this thread when small, on the hashing thread
 * otherwise. The one place that makes that choice, for the client and the server alike.
 * `thread`: the caller's own running hashing thread (the server's); without one, the process's
 * shared thread, made once the process has more to hash than pays for starting it.
 */
export function runningSha256(totalBytes: number, thread?: Sha256Thread): RunningSha256 {
  if (totalBytes <= inlineSha256MaxBytes) return inlineSha256();
  const running = thread ?? sharedSha256ThreadIfMade();
  if (running) return threadSha256(running);
  if (hashedInlineInsteadBytes + totalBytes <= threadStartPaysFromBytes) {
    hashedInlineInsteadBytes += totalBytes;
    return inlineSha256();
  }
  return threadSha256(sharedSha256Thread());
}

function inlineSha256(): RunningSha256 {
  return onThisThread(createHash('sha256'));
}

/** A running SHA-256 over a hash object that works on this thread (Node's, or hash-wasm's). */
export function onThisThread(hash: { update(bytes: Uint8Array): unknown; digest(encoding: 'hex'): string }): RunningSha256 {
  return {
    update(buffer, length) {
      hash.update(new Uint8Array(buffer, 0, length));
      return Promise.resolve(buffer);
    },
    digest: () => Promise.resolve(hash.digest('hex')),
    drop() {
      // Nothing is held outside this object: the garbage collector takes the hash.
    },
  };
}

function threadSha256(thread: Sha256Thread): RunningSha256 {
  const key = randomUUID();
  return {
    update: (buffer, length) => thread.update(key, buffer, length),
    digest: () => thread.digest(key),
    drop: () => thread.drop(key),
  };
}
