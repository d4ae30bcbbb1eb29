import { type Database, type RootDatabase, open } from 'lmdb';
import { FerryError } from '../protocol/errors.js';
import { type StoredFile, type TransferLogRecord, type UploadSessionRecord, sameUpload } from './records.js';

export interface MetaStoreOptions {
  /** Directory of the LMDB environment. */
  path: string;
  /** Transfer log entries kept; older ones are pruned. */
  maxLogEntries?: number;
}

/**
 * lmdb-js shares one commit promise among the writes of a batch, and creates it even for a batch
 * whose writes no caller holds; when such a commit fails (a full disk), that promise rejects with
 * nobody to catch it, and Node would end the process. Every caller of ours that awaits a write
 * has already been told through its own promise (see `#write`), so these rejections, and only
 * these, are marked handled. Installed once per process, by the first MetaStore.
 */
let strayCommitFailuresIgnored = false;
function ignoreStrayCommitFailures(): void {
  if (strayCommitFailuresIgnored) return;
  strayCommitFailuresIgnored = true;
  process.on('unhandledRejection', (reason) => {
    const commitError = (reason as { commitError?: Promise<unknown> } | undefined)?.commitError;
    if (!(commitError instanceof Promise)) throw reason; // anything else crashes, as by default
    commitError.catch(() => {});
  });
}

/** Waits for `promise` to settle, at most `ms`; never rejects. */
async function settleWithin(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  await Promise.race([promise.then(() => {}, () => {}), gaveUp]);
  clearTimeout(timer);
}

type ChunkKey = [string, number];
type LogKey = [number, number];

/**
 * Ferry's metadata in LMDB: finished files, upload sessions with their verified chunks, and the
 * transfer log. The only module that knows the key layout. Writes resolve once committed; call
 * `flushed()` where the caller must know they are durable.
 */
export class MetaStore {
  readonly #root: RootDatabase;
  readonly #files: Database<StoredFile, string>;
  readonly #sessions: Database<UploadSessionRecord, string>;
  readonly #chunks: Database<Uint8Array, ChunkKey>;
  readonly #log: Database<TransferLogRecord, LogKey>;
  readonly #maxLogEntries: number;
  #fileCount = 0;
  #byteCount = 0;
  /** Declared size of each saved upload session, by name: the quota check reads it on every put. */
  readonly #sessionSizes = new Map<string, number>();
  #logSeq = 0;
  #logAppendsSincePrune = 0;

  constructor(options: MetaStoreOptions) {
    ignoreStrayCommitFailures();
    this.#root = open({ path: options.path, compression: false });
    this.#files = this.#root.openDB<StoredFile, string>({ name: 'files' });
    this.#sessions = this.#root.openDB<UploadSessionRecord, string>({ name: 'sessions' });
    this.#chunks = this.#root.openDB<Uint8Array, ChunkKey>({ name: 'chunks' });
    this.#log = this.#root.openDB<TransferLogRecord, LogKey>({ name: 'log' });
    this.#maxLogEntries = options.maxLogEntries ?? 10_000;
    for (const { value } of this.#files.getRange()) {
      this.#fileCount += 1;
      this.#byteCount += value.size;
    }
    for (const { key, value } of this.#sessions.getRange()) this.#sessionSizes.set(key, value.size);
  }

  // ---- files ----

  file(name: string): StoredFile | undefined {
    return this.#files.get(name);
  }

  /** Files in name order, from just after `after`, those starting with `prefix`. */
  listFiles(options: { prefix?: string; after?: string; limit: number }): StoredFile[] {
    const prefix = options.prefix ?? '';
    const start = options.after !== undefined && options.after >= prefix ? options.after + '\u0000' : prefix;
    const files: StoredFile[] = [];
    for (const { key, value } of this.#files.getRange({ start })) {
      if (!key.startsWith(prefix) || files.length === options.limit) break;
      files.push(value);
    }
    return files;
  }

  stats(): { files: number; bytes: number } {
    return { files: this.#fileCount, bytes: this.#byteCount };
  }

  /**
   * Records a finished file and, in the same transaction, forgets the upload session that built it
   * and adds its transfer log entry. Durable on return.
   */
  async commitFile(file: StoredFile, session?: UploadSessionRecord, log?: TransferLogRecord): Promise<void> {
    // Read inside the transaction: the counters must follow what this very commit replaced.
    let previous: StoredFile | undefined;
    await this.#write(`recording ${file.name}`, async () => {
      const sessionRemoved = await this.#root.transaction(() => {
        previous = this.#files.get(file.name);
        this.#files.putSync(file.name, file);
        if (log) this.#log.putSync(this.#nextLogKey(log), log);
        return session ? this.#removeSessionSync(session) : false;
      });
      // Committed, whether or not the flush below succeeds: the map follows the commit.
      if (session && sessionRemoved) this.#sessionSizes.delete(session.name);
      await this.#root.flushed;
    });
    if (log) await this.#pruneLogNowAndThen();
    this.#fileCount += previous ? 0 : 1;
    this.#byteCount += file.size - (previous?.size ?? 0);
  }

  /** Flags a file whose bytes on disk no longer match its record: it stays listed but is not served. Durable on return. */
  async markDamaged(file: StoredFile, why: string): Promise<void> {
    await this.#write(`flagging ${file.name} as damaged`, async () => {
      // Only the very record that was found damaged: never a newer upload that replaced it since.
      await this.#root.transaction(() => {
        const current = this.#files.get(file.name);
        if (current && sameUpload(current, file) && current.damaged === undefined) {
          this.#files.putSync(file.name, { ...current, damaged: why });
        }
      });
      await this.#root.flushed;
    });
  }

  /** Every stored file, in name order. */
  *allFiles(): Generator<StoredFile> {
    for (const { value } of this.#files.getRange()) yield value;
  }

  /** Forgets a file; returns the record it removed. Durable on return. */
  async deleteFile(name: string): Promise<StoredFile | undefined> {
    // Read and removed in one transaction: of two deletes racing for a name, only one removes it.
    let removed: StoredFile | undefined;
    await this.#write(`deleting ${name}`, async () => {
      await this.#root.transaction(() => {
        removed = this.#files.get(name);
        if (removed) this.#files.removeSync(name);
      });
      await this.#root.flushed;
    });
    if (!removed) return undefined;
    this.#fileCount -= 1;
    this.#byteCount -= removed.size;
    return removed;
  }

  // ---- upload sessions ----

  session(name: string): UploadSessionRecord | undefined {
    return this.#sessions.get(name);
  }

  sessions(): UploadSessionRecord[] {
    return [...this.#sessions.getRange()].map(({ value }) => value);
  }

  /** The declared size of every saved upload session, by name (kept in memory: no records are read). */
  sessionSizes(): ReadonlyMap<string, number> {
    return this.#sessionSizes;
  }

  async saveSession(session: UploadSessionRecord): Promise<void> {
    await this.#write(`saving the upload session of ${session.name}`, () => this.#sessions.put(session.name, session));
    this.#sessionSizes.set(session.name, session.size);
  }

  /** Forgets a session and every chunk it had verified. */
  async dropSession(session: UploadSessionRecord): Promise<void> {
    await this.#write(`dropping the upload session of ${session.name}`, async () => {
      if (await this.#root.transaction(() => this.#removeSessionSync(session))) this.#sessionSizes.delete(session.name);
    });
  }

  /** Chunk index -> xxh64 of every chunk the session has recorded as written and synced. */
  verifiedChunks(sessionId: string): Map<number, bigint> {
    const verified = new Map<number, bigint>();
    for (const { key, value } of this.#chunks.getRange(this.#chunkRange(sessionId))) {
      verified.set(key[1], Buffer.from(value.buffer, value.byteOffset, 8).readBigUInt64BE(0));
    }
    return verified;
  }

  /**
   * Records chunks as verified. Call only once their bytes are written and synced: a record that
   * runs ahead of the data would be trusted on resume.
   */
  async recordChunks(session: UploadSessionRecord, chunks: Iterable<readonly [number, bigint]>): Promise<void> {
    await this.#write(`recording chunks of ${session.name}`, () => this.#root.transaction(() => {
      for (const [index, xxh64] of chunks) {
        const value = Buffer.allocUnsafe(8);
        value.writeBigUInt64BE(xxh64);
        this.#chunks.putSync([session.id, index], value);
      }
      if (this.#sessions.get(session.name)?.id === session.id) this.#sessions.putSync(session.name, { ...session, touched: Date.now() });
    }));
  }

  // ---- transfer log ----

  /**
   * Adds a transfer log entry. Best effort: the log must never fail a transfer, so a failed write
   * (a full disk) is reported by the `false` it resolves with, never thrown.
   */
  async appendLog(entry: TransferLogRecord): Promise<boolean> {
    try {
      await this.#write('appending to the transfer log', () => this.#log.put(this.#nextLogKey(entry), entry));
      await this.#pruneLogNowAndThen();
      return true;
    } catch {
      return false;
    }
  }

  #nextLogKey(entry: TransferLogRecord): LogKey {
    this.#logSeq = (this.#logSeq + 1) % 1_000_000;
    return [entry.time, this.#logSeq];
  }

  /** Every 100 entries, drops the oldest beyond the limit. Best effort, like the log itself. */
  async #pruneLogNowAndThen(): Promise<void> {
    this.#logAppendsSincePrune += 1;
    if (this.#logAppendsSincePrune < 100) return;
    this.#logAppendsSincePrune = 0;
    await this.#write('pruning the transfer log', () => this.#pruneLog()).catch(() => {});
  }

  /** The newest `limit` entries, newest first. */
  recentLog(limit: number): TransferLogRecord[] {
    return [...this.#log.getRange({ reverse: true, limit })].map(({ value }) => value);
  }

  async flushed(): Promise<void> {
    await this.#root.flushed;
  }

  /**
   * Flushes and closes. After a failed commit (a full disk) lmdb-js's `flushed`, and its `close()`
   * behind it, may never settle; the failure was already reported to the writers it concerned, and
   * LMDB is crash-safe, so each is waited for at most `waitMs`.
   */
  async close(waitMs = 2000): Promise<void> {
    await settleWithin(Promise.resolve(this.#root.flushed), waitMs);
    await settleWithin(Promise.resolve(this.#root.close()), waitMs);
  }

  #chunkRange(sessionId: string): { start: ChunkKey; end: ChunkKey } {
    return { start: [sessionId, 0], end: [sessionId, Number.MAX_SAFE_INTEGER] };
  }

  /**
   * Runs a write and turns a failed commit (a full disk, an I/O error) into a FerryError. lmdb-js
   * hangs a rejected `commitError` promise on the error it throws; it is marked handled here, or
   * it would crash the process as an unhandled rejection.
   */
  async #write<T>(what: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      const commitError = (error as { commitError?: Promise<unknown> }).commitError;
      let cause: unknown = error;
      if (commitError) cause = await commitError.then(() => error, (rejection: unknown) => rejection);
      const code = (cause as { code?: unknown }).code;
      const full = code === 28 || code === 'ENOSPC' || /MDB_MAP_FULL|no space/iu.test(String(cause));
      throw new FerryError(full ? 'ENOSPC' : 'EIO', `${what}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    }
  }

  /** Removes the session's chunks, and its record if it still is the name's session; returns whether it was. */
  #removeSessionSync(session: UploadSessionRecord): boolean {
    const current = this.#sessions.get(session.name);
    if (current?.id === session.id) this.#sessions.removeSync(session.name);
    for (const key of this.#chunks.getKeys(this.#chunkRange(session.id))) this.#chunks.removeSync(key);
    return current?.id === session.id;
  }

  async #pruneLog(): Promise<void> {
    const excess = this.#log.getCount() - this.#maxLogEntries;
    if (excess <= 0) return;
    await this.#root.transaction(() => {
      for (const key of this.#log.getKeys({ limit: excess })) this.#log.removeSync(key);
    });
  }
}
