/**
 * The running SHA-256s of the hashing thread (workers/sha256-worker.ts), by key: they keep their
 * state between tasks, so they live on that one thread. Plain functions, so a test can run them
 * on its own thread.
 */
import { type Hash, createHash } from 'node:crypto';
import type { SaveableSha256 } from '../src/hashing/saveable-sha256.js';
import { decodeSha256State, encodeSha256State } from '../src/hashing/sha256-state.js';
import type { HashDigestTask, HashDropTask, HashSaveTask, HashStartResumableTask, HashUpdateResult, HashUpdateTask } from './tasks.js';

/** Running hashes by key: Node's (the fastest here), or one whose state can be saved (see saveable-sha256.ts). */
const runningHashes = new Map<string, Hash | SaveableSha256>();

function runningHash(key: string, resumable = false): Hash | SaveableSha256 {
  let hash = runningHashes.get(key);
  // A resumable hash is never made here: one this thread does not have was lost with the thread before it.
  if (!hash && resumable) throw new Error(`the resumable SHA-256 under ${key} is gone (the hashing thread restarted)`);
  if (!hash) {
    hash = createHash('sha256');
    runningHashes.set(key, hash);
  }
  return hash;
}

/** Answers once the thread has loaded its modules. */
export function ready(): true {
  return true;
}

export async function hashStartResumable(task: HashStartResumableTask): Promise<void> {
  const state = task.state === undefined ? undefined : decodeSha256State(task.state);
  // Imported when first needed: only S3 uploads save their hash's state.
  const { saveableSha256Source } = await import('../src/hashing/saveable-sha256.js');
  runningHashes.set(task.key, await saveableSha256Source().make(state));
}

export function hashSave(task: HashSaveTask): string {
  const hash = runningHashes.get(task.key);
  if (!hash || !('state' in hash)) throw new Error(`no resumable SHA-256 under ${task.key}`);
  return encodeSha256State(hash.state());
}

/** Hashes the bytes and gives the buffer back (an ArrayBuffer is moved back by the caller). */
export function hashUpdate(task: HashUpdateTask): HashUpdateResult {
  runningHash(task.key, task.resumable).update(new Uint8Array(task.buffer, 0, task.length));
  return { buffer: task.buffer };
}

export function hashDigest(task: HashDigestTask): string {
  const hash = runningHash(task.key, task.resumable);
  const digest = 'state' in hash ? hash.digestHex() : hash.digest('hex');
  runningHashes.delete(task.key);
  return digest;
}

export function hashDrop(task: HashDropTask): void {
  runningHashes.delete(task.key);
}
