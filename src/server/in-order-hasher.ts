import type { ResumableSha256 } from '../hashing/resumable-sha256.js';
import type { RunningSha256 } from '../hashing/running-sha256.js';

/** How far a session's running SHA-256 has got: chunks [0, next) were fed, in order. */
export interface SessionHashState {
  next: number;
  /** Fed out of order or lost (a restart, a gap): the file must be hashed in one pass at the end. */
  broken: boolean;
  readonly sha256: RunningSha256 | ResumableSha256;
}

/** Where the chunks of an upload can be read back from once written (the store's partial file). */
export interface ReadBack {
  /** The upload's chunk size: chunk `index` starts at `index * chunkBytes`. */
  chunkBytes: number;
  /** Reads `into.length` bytes at `position` of the upload, as written (all of them, or rejects). */
  read(position: number, into: Uint8Array): Promise<void>;
}

/** The most read back at once: a chunk is read back in pieces of this, into one buffer of the hasher's own. */
const readBackPieceBytes = 1024 * 1024;

/**
 * Feeds one upload's written chunks to its session's running SHA-256 in chunk order, so the
 * whole-file hash is ready when the last chunk lands. A chunk written ahead of its turn is held
 * while every chunk before it is being written (so nothing waits on a chunk that may never come).
 * With `readBack` (a store that can read an unfinished upload back), a chunk written further
 * ahead, past a gap nobody is writing yet (parallel streams land chunks out of order), is let go
 * and read back from the store once the chunks before it are fed: the hashing goes on beside the
 * transfer, not in one pass after it. Without it, such a chunk, a chunk fed twice (also while its
 * first copy is held), or a gap left when the upload stops waiting marks the hash broken, and the
 * upload falls back to hashing the file in one pass.
 */
export class InOrderHasher {
  readonly state: SessionHashState;
  /** Whether chunk `index` of this upload is being written now. */
  readonly #beingWritten: (index: number) => boolean;
  readonly #release: (buffer: SharedArrayBuffer) => void;
  readonly #held = new Map<number, { buffer: SharedArrayBuffer; length: number }>();
  readonly #readBack: ReadBack | undefined;
  /** Chunks written past a gap and let go: each is read back when its turn comes. Their lengths. */
  readonly #writtenAhead = new Map<number, number>();
  /** The buffer chunks are read back into (made at the first). */
  #readBuffer: SharedArrayBuffer | undefined;
  /** Updates waiting in the chain behind `#lastUpdate` (see `#chain`), not yet applied. */
  #chained = 0;
  /** Settles when the last update submitted has been applied (they are applied in order); never rejects. */
  #lastUpdate: Promise<unknown> = Promise.resolve();

  constructor(
    state: SessionHashState,
    beingWritten: (index: number) => boolean,
    buffers: { release(buffer: SharedArrayBuffer): void },
    readBack?: ReadBack,
  ) {
    this.state = state;
    this.#beingWritten = beingWritten;
    this.#release = (buffer) => buffers.release(buffer);
    this.#readBack = readBack;
  }

  /** Takes a written chunk's buffer; hands it to `release` once it is hashed or not needed. */
  add(index: number, buffer: SharedArrayBuffer, length: number): void {
    if (this.state.broken || index < this.state.next || this.#held.has(index)) {
      this.#release(buffer);
      return this.#break();
    }
    // Its turn (also a copy of one written ahead): fed now, from this buffer.
    if (index === this.state.next) this.#writtenAhead.delete(index);
    else if (this.#writtenAhead.has(index) || !this.#gapIsBeingWritten(index)) {
      // Past a gap nobody is writing (or written ahead once already): read back at its turn, or the hash breaks.
      this.#release(buffer);
      if (!this.#readBack) return this.#break();
      this.#writtenAhead.set(index, length);
      return;
    }
    this.#held.set(index, { buffer, length });
    this.#feedWhatFollows();
  }

  /**
   * A write of the upload has ended (after its `add`, if it succeeded): a chunk written ahead
   * whose turn came while that write was under way is fed now.
   */
  writeEnded(): void {
    if (!this.state.broken && this.#writtenAhead.size > 0) this.#feedWhatFollows();
  }

  /** Feeds, in order, every chunk from `next` on that is held or written ahead (and not being written again). */
  #feedWhatFollows(): void {
    for (;;) {
      const index = this.state.next;
      const held = this.#held.get(index);
      if (held) {
        this.#held.delete(index);
        this.state.next += 1;
        this.#feed(held.buffer, held.length);
        continue;
      }
      const length = this.#writtenAhead.get(index);
      // A copy of it being written now comes to `add` once written, and is fed then.
      if (length === undefined || this.#beingWritten(index)) return;
      this.#writtenAhead.delete(index);
      this.state.next += 1;
      this.#feedReadBack(index, length);
    }
  }

  #gapIsBeingWritten(index: number): boolean {
    for (let before = this.state.next; before < index; before += 1) {
      if (!this.#held.has(before) && !this.#beingWritten(before) && !this.#writtenAhead.has(before)) return false;
    }
    return true;
  }

  /**
   * Stops waiting for missing chunks: anything still held is let go, and the hash is broken;
   * but a hash whose state is saved with the upload (see `saved`) stays whole over what it had:
   * the chunks let go are sent again when the upload resumes from that state.
   */
  stopWaiting(): void {
    // Chunks written ahead stay unfed: the next digest finds the hash short and hashes the file in one pass.
    this.#writtenAhead.clear();
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
    const update = (): Promise<void> =>
      this.state.sha256.update(buffer, length).then(
        () => this.#release(buffer),
        () => {
          this.#release(buffer);
          this.#break();
        },
      );
    // Submitted at once (the hashing thread applies updates in the order submitted), unless an
    // update before it waits in the chain (a read-back, or one queued behind it): then after it.
    if (this.#chained === 0) {
      this.#lastUpdate = update();
      return;
    }
    this.#chain(update);
  }

  /** Feeds chunk `index` read back from the store, once every update before it has been applied (its buffer is reused). */
  #feedReadBack(index: number, length: number): void {
    const readBack = this.#readBack!;
    this.#chain(async () => {
      this.#readBuffer ??= new SharedArrayBuffer(Math.min(readBack.chunkBytes, readBackPieceBytes));
      const buffer = this.#readBuffer;
      for (let done = 0; done < length && !this.state.broken;) {
        const piece = Math.min(buffer.byteLength, length - done);
        await readBack.read(index * readBack.chunkBytes + done, new Uint8Array(buffer, 0, piece));
        await this.state.sha256.update(buffer, piece);
        done += piece;
      }
    });
  }

  /**
   * Runs `update` once every update before it has been applied. Until every update so chained
   * has been applied, later ones are chained too: one submitted at once could pass them.
   */
  #chain(update: () => Promise<void>): void {
    this.#chained += 1;
    this.#lastUpdate = this.#lastUpdate
      .then(update)
      .catch(() => this.#break())
      .finally(() => {
        this.#chained -= 1;
      });
  }

  #break(): void {
    for (const { buffer } of this.#held.values()) this.#release(buffer);
    this.#held.clear();
    this.#writtenAhead.clear();
    if (this.state.broken) return;
    this.state.broken = true;
    this.state.sha256.drop();
  }
}
