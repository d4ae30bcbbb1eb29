import { randomUUID } from 'node:crypto';
import type { RunningSha256 } from './running-sha256.js';
import type { Sha256Thread } from './sha256-thread.js';

/**
 * A running SHA-256 whose state can be saved and taken up again elsewhere (saveable-sha256.ts:
 * OpenSSL's through a small addon, or hash-wasm's where the addon is not built): what an upload
 * to a shared object store keeps with its verified chunks, so another server, or this one after a
 * restart, goes on hashing where it stopped without reading back what the store holds (an
 * unfinished S3 multipart upload cannot be read). It runs on the hashing thread, as every running
 * SHA-256 of a transfer does.
 */
export interface ResumableSha256 extends RunningSha256 {
  /** The state after every update given so far, in sha256-state.ts's text form (at most about 150 characters). */
  save(): Promise<string>;
}

/** A new hash on `thread`, or one taken up from a saved `state` (rejected if it is not one). */
export async function resumableSha256(thread: Sha256Thread, state?: string): Promise<ResumableSha256> {
  const key = randomUUID();
  await thread.startResumable(key, state);
  return {
    update: (buffer, length) => thread.update(key, buffer, length, true),
    digest: () => thread.digest(key, true),
    drop: () => thread.drop(key),
    save: () => thread.save(key),
  };
}
