import type { ResumableSha256 } from '../hashing/resumable-sha256.js';
import type { RunningSha256 } from '../hashing/running-sha256.js';

/** How far a session's running SHA-256 has got: chunks [0, next) were fed, in order. */
export interface SessionHashState {
  next: number;
  /** Fed out of order or lost (a restart, a gap): the file must be hashed in one pass at the end. */
  broken: boolean;
  readonly sha256: RunningSha256 | ResumableSha256;
}

/**
 * Feeds one upload's written chunks to its session's running SHA-256 in chunk order, so the
 * whole-file hash is ready when the last chunk lands. A chunk written ahead of its turn waits only
 * while every chunk before it is being written (so nothing waits on a chunk that may never come);
 * a chunk fed twice (also while its first copy is held), one with a gap before it, or a gap left
 * when the upload stops waiting marks the hash broken, and the upload falls back to hashing the
 * file in one pass.
 */
export class InOrderHasher {
  readonly state: SessionHashState;
  /** Whether chunk `index` of this upload is being written now. */
  readonly #beingWritten: (index: number) => boolean;
  readonly #release: (buffer: SharedArrayBuffer) => void;
  readonly #held = new Map<number, { buffer: SharedArrayBuffer; length: number }>();
  /** Settles when the last update submitted has been applied (they are applied in order). */
  #lastUpdate: Promise<unknown> = Promise.resolve();

  constructor(state: SessionHashState, beingWritten: (index: number) => boolean, buffers: { release(buffer: SharedArrayBuffer): void }) {
    this.state = state;
    this.#beingWritten = beingWritten;
    this.#release = (buffer) => buffers.release(buffer);
  }

  /** Takes a written chunk's buffer; hands it to `release` once it is hashed or not needed. */
  add(index: number, buffer: SharedArrayBuffer, length: number): void {
    if (this.state.broken || index < this.state.next || this.#held.has(index) || !this.#gapIsBeingWritten(index)) {
      this.#release(buffer);
      return this.#break();
    }
    this.#held.set(index, { buffer, length });
    for (let next = this.#held.get(this.state.next); next; next = this.#held.get(this.state.next)) {
      this.#held.delete(this.state.next);
      this.state.next += 1;
      this.#feed(next.buffer, next.length);
    }
  }

  #gapIsBeingWritten(index: number): boolean {
    for (let before = this.state.next; before < index; before += 1) {
      if (!this.#held.has(before) && !this.#beingWritten(before)) return false;
    }
    return true;
  }

  /**
   * Stops waiting for missing chunks: anything still held is let go, and the hash is broken;
   * but a hash whose state is saved with the upload (see `saved`) stays whole over what it had:
   * the chunks let go are sent again when the upload resumes from that state.
   */
  stopWaiting(): void {
    if (this.#held.size === 0) return;
    if (!('save' in this.state.sha256)) return this.#break();
    for (const { buffer } of this.#held.values()) this.#release(buffer);
    this.#held.clear();
  }

  /**
   * The running hash's state over chunks [0, next), where it can be saved and is whole; else
   * undefined. `next` is the hash's now; the state comes from the hashing thread once it has
   * hashed them (undefined if the thread lost it).
   */
  saved(): { next: number; state: Promise<string | undefined> } | undefined {
    const { sha256, broken, next } = this.state;
    if (broken || !('save' in sha256)) return undefined;
    // An update that failed breaks the hash (see #feed) before the save queued after it answers: that state is not kept.
    const state = sha256.save().then(
      (saved) => (this.state.broken ? undefined : saved),
      () => undefined,
    );
    return { next, state };
  }

  /** The whole file's SHA-256 if every one of its `chunkCount` chunks was fed in order, else undefined. */
  async digest(chunkCount: number): Promise<string | undefined> {
    this.stopWaiting();
    await this.#lastUpdate;
    if (this.state.broken || this.state.next !== chunkCount) return undefined;
    // A hash is forgotten once it has been digested: a second digest must take the one-pass way.
    this.state.broken = true;
    return this.state.sha256.digest();
  }

  #feed(buffer: SharedArrayBuffer, length: number): void {
    this.#lastUpdate = this.state.sha256.update(buffer, length).then(
      () => this.#release(buffer),
      () => {
        this.#release(buffer);
        this.#break();
      },
    );
  }

  #break(): void {
    for (const { buffer } of this.#held.values()) this.#release(buffer);
    this.#held.clear();
    if (this.state.broken) return;
    this.state.broken = true;
    this.state.sha256.drop();
  }
}
