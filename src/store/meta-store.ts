import { type Database, type RootDatabase, open } from 'lmdb';
import type { StoredFile, TransferLogRecord, UploadSessionRecord } from './records.js';

export interface MetaStoreOptions {
  /** Directory of the LMDB environment. */
  path: string;
  /** Transfer log entries kept; older ones are pruned. */
  maxLogEntries?: number;
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
  #logSeq = 0;
  #logAppendsSincePrune = 0;

  constructor(options: MetaStoreOptions) {
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

  /** Records a finished file and, in the same transaction, forgets the upload session that built it. Durable on return. */
  async commitFile(file: StoredFile, session?: UploadSessionRecord): Promise<void> {
    const previous = this.#files.get(file.name);
    await this.#root.transaction(() => {
      this.#files.put(file.name, file);
      if (session) this.#removeSessionSync(session);
    });
    await this.#root.flushed;
    this.#fileCount += previous ? 0 : 1;
    this.#byteCount += file.size - (previous?.size ?? 0);
  }

  /** Forgets a file; returns the record it removed. Durable on return. */
  async deleteFile(name: string): Promise<StoredFile | undefined> {
    const previous = this.#files.get(name);
    if (!previous) return undefined;
    await this.#files.remove(name);
    await this.#root.flushed;
    this.#fileCount -= 1;
    this.#byteCount -= previous.size;
    return previous;
  }

  // ---- upload sessions ----

  session(name: string): UploadSessionRecord | undefined {
    return this.#sessions.get(name);
  }

  sessions(): UploadSessionRecord[] {
    return [...this.#sessions.getRange()].map(({ value }) => value);
  }

  async saveSession(session: UploadSessionRecord): Promise<void> {
    await this.#sessions.put(session.name, session);
  }

  /** Forgets a session and every chunk it had verified. */
  async dropSession(session: UploadSessionRecord): Promise<void> {
    await this.#root.transaction(() => this.#removeSessionSync(session));
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
    await this.#root.transaction(() => {
      for (const [index, xxh64] of chunks) {
        const value = Buffer.allocUnsafe(8);
        value.writeBigUInt64BE(xxh64);
        this.#chunks.put([session.id, index], value);
      }
      if (this.#sessions.get(session.name)?.id === session.id) this.#sessions.put(session.name, { ...session, touched: Date.now() });
    });
  }

  // ---- transfer log ----

  async appendLog(entry: TransferLogRecord): Promise<void> {
    this.#logSeq = (this.#logSeq + 1) % 1_000_000;
    await this.#log.put([entry.time, this.#logSeq], entry);
    this.#logAppendsSincePrune += 1;
    if (this.#logAppendsSincePrune >= 100) {
      this.#logAppendsSincePrune = 0;
      await this.#pruneLog();
    }
  }

  /** The newest `limit` entries, newest first. */
  recentLog(limit: number): TransferLogRecord[] {
    return [...this.#log.getRange({ reverse: true, limit })].map(({ value }) => value);
  }

  async flushed(): Promise<void> {
    await this.#root.flushed;
  }

  async close(): Promise<void> {
    await this.#root.flushed;
    await this.#root.close();
  }

  #chunkRange(sessionId: string): { start: ChunkKey; end: ChunkKey } {
    return { start: [sessionId, 0], end: [sessionId, Number.MAX_SAFE_INTEGER] };
  }

  #removeSessionSync(session: UploadSessionRecord): void {
    const current = this.#sessions.get(session.name);
    if (current?.id === session.id) this.#sessions.remove(session.name);
    for (const key of this.#chunks.getKeys(this.#chunkRange(session.id))) this.#chunks.remove(key);
  }

  async #pruneLog(): Promise<void> {
    const excess = this.#log.getCount() - this.#maxLogEntries;
    if (excess <= 0) return;
    await this.#root.transaction(() => {
      for (const key of this.#log.getKeys({ limit: excess })) this.#log.remove(key);
    });
  }
}
