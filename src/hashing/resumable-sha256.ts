import { createSHA256 } from 'hash-wasm';
import { type RunningSha256, onThisThread } from './running-sha256.js';

/**
 * A running SHA-256 whose state can be saved and taken up again elsewhere (hash-wasm's save and
 * load): what an upload to a shared object store keeps with its verified chunks, so another
 * server, or this one after a restart, goes on hashing where it stopped without reading back
 * what the store holds (an unfinished S3 multipart upload cannot be read). It runs on the
 * calling thread (about 350 MiB/s here, against about 1.5 GiB/s for Node's own SHA-256, which
 * cannot save its state): fast enough for an object store's speeds.
 */
export interface ResumableSha256 extends RunningSha256 {
  /** The state after everything fed so far, as base64 (about 150 characters). */
  save(): string;
}

/** A new hash, or one taken up from a saved `state`. */
export async function resumableSha256(state?: string): Promise<ResumableSha256> {
  const hash = await createSHA256();
  if (state === undefined) hash.init();
  else hash.load(Buffer.from(state, 'base64'));
  let dropped = false;
  return {
    ...onThisThread(hash),
    drop() {
      dropped = true;
    },
    save() {
      if (dropped) throw new Error('a dropped hash has no state to save');
      return Buffer.from(hash.save()).toString('base64');
    },
  };
}
