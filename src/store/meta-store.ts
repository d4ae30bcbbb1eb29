import { createHash } from 'node:crypto';
import { type Database, type RootDatabase, open } from 'lmdb';
import { FerryError } from '../protocol/errors.js';
import { foldName } from '../protocol/names.js';
import { codeOfSystemError, describeSystemError } from '../system-errors.js';
import {
  type FileRecord,
  type StoredFile,
  type TransferLogRecord,
  type UploadSessionRecord,
  type TokenRecord,
  type UserRecord,
  sameUpload,
} from './records.js';

export interface MetaStoreOptions {
  /** Directory of the LMDB environment. */
  path: string;
  /** Transfer log entries older than this are removed (now and then, as entries are added). */
  logRetentionMs?: number;
  /** Transfer log entries kept at most, whatever their age. */
  maxLogEntries?: number;
  /** Open for reading only (`ferry fsck`): nothing is written, records of older servers are read as they are. */
  readOnly?: boolean;
}

/**
 * lmdb-js attaches a promise (`commitError`) to the errors of a failed commit (a full disk) that
 * nothing handles, so such a failure also surfaces as an unhandled rejection, even though every
 * caller of ours was told through its own promise (lmdb-js issue 368). A process that runs a
 * server marks these, and only these, handled: `ferry serve` installs this at its entry, and so
 * may an embedder. The store itself installs nothing process-wide.
 */
export function ignoreStrayLmdbCommitFailures(): void {
  if (strayCommitFailuresIgnored) return;
  strayCommitFailuresIgnored = true;
  process.on('unhandledRejection', (reason) => {
    const commitError = (reason as { commitError?: Promise<unknown> } | undefined)?.commitError;
    if (!(commitError instanceof Promise)) throw reason; // anything else crashes, as by default
    // A failed commit the writers concerned were already told of (see MetaStore's #write).
    commitError.catch(() => undefined);
  });
}
let strayCommitFailuresIgnored = false;

/** Waits for `promise` to settle, at most `ms`; never rejects. */
async function settleWithin(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  await Promise.race([
    promise.then(
      () => {},
      () => {},
    ),
    gaveUp,
  ]);
  clearTimeout(timer);
}

type ChunkKey = [string, number];

/** LMDB keys are at most 1,978 bytes: a folded name longer than this (case folding can grow a 1 KiB name) is kept by its hash. */
const maxFoldedKeyBytes = 1500;

/** The `folded-names` key of a folded name: itself, or its SHA-256 when too long for a key. */
function foldedKey(folded: string): string {
  return Buffer.byteLength(folded) <= maxFoldedKeyBytes ? folded : `\u0000sha256:${createHash('sha256').update(folded).digest('hex')}`;
}
const day = 24 * 60 * 60 * 1000;
/** Entries added between two prunings of the transfer log. */
const logPruneEveryEntries = 100;
/** How long a transfer log entry waits for others to be written with (one commit for all). */
const logBatchMs = 20;
/** A batch is written at once when this many entries wait. */
const logBatchEntries = 256;
type LogKey = [number, number];

/**
 * Ferry's metadata in LMDB: finished files, upload sessions with their verified chunks, and the
 * transfer log. The only module that knows the key layout. Writes resolve once committed; call
 * `flushed()` where the caller must know they are durable.
 */
export class MetaStore {
  readonly #root: RootDatabase;
  /** File records without their chunk hashes: listing never decodes those (8 bytes a chunk). */
  readonly #files: Database<FileRecord, string>;
  /** Each stored file's chunk hashes, packed (records.ts `packHashes`), by name. */
  readonly #hashes: Database<Uint8Array, string>;
  /**
   * The stored names under their folded form (`foldName`; several names may fold alike where case
   * matters): what a case-insensitive file system would take for one file. Keyed by `foldedKey`.
   */
  readonly #folded: Database<string[], string>;
  /** Facts about the store itself (which one-time migrations are done). */
  readonly #meta: Database<unknown, string>;
  readonly #sessions: Database<UploadSessionRecord, string>;
  readonly #chunks: Database<Uint8Array, ChunkKey>;
  readonly #log: Database<TransferLogRecord, LogKey>;
  readonly #users: Database<UserRecord, string>;
  readonly #tokens: Database<TokenRecord, string>;
  readonly #maxLogEntries: number;
  readonly #logRetentionMs: number;
  #fileCount = 0;
  #byteCount = 0;
  #logSeq = 0;
  #logAppendsSincePrune = 0;
  /** Set by `close`: no log entry is taken after it. */
  #closing = false;
  /** Log entries waiting for their batch to be written. */
  #pendingLog: TransferLogRecord[] = [];
  /** The waiting entries' batch: whether it was committed, once it is written, and the timer that writes it. */
  #logBatch: { committed: Promise<boolean>; resolve: (committed: boolean) => void; timer: NodeJS.Timeout } | undefined;

  constructor(options: MetaStoreOptions) {
    this.#root = open({ path: options.path, compression: false, ...(options.readOnly ? { readOnly: true } : {}) });
    this.#files = this.#root.openDB<FileRecord, string>({ name: 'files' });
    this.#hashes = this.#root.openDB<Uint8Array, string>({ name: 'hashes', encoding: 'binary' });
    this.#folded = this.#root.openDB<string[], string>({ name: 'folded-names' });
    this.#meta = this.#root.openDB<unknown, string>({ name: 'meta' });
    this.#sessions = this.#root.openDB<UploadSessionRecord, string>({ name: 'sessions' });
    this.#chunks = this.#root.openDB<Uint8Array, ChunkKey>({ name: 'chunks' });
    this.#log = this.#root.openDB<TransferLogRecord, LogKey>({ name: 'log' });
    this.#users = this.#root.openDB<UserRecord, string>({ name: 'users' });
    this.#tokens = this.#root.openDB<TokenRecord, string>({ name: 'tokens' });
    this.#maxLogEntries = options.maxLogEntries ?? 1_000_000;
    this.#logRetentionMs = options.logRetentionMs ?? 30 * day;
    const withHashes: StoredFile[] = [];
    for (const { value } of this.#files.getRange()) {
      this.#fileCount += 1;
      this.#byteCount += value.size;
      if ('hashes' in value) withHashes.push(value as StoredFile);
    }
    if (!options.readOnly) {
      // Records of older servers kept the chunk hashes inline: moved to their own table, once.
      if (withHashes.length > 0) {
        this.#root.transactionSync(() => {
          for (const file of withHashes) this.#putFileSync(file);
        });
      }
      // Their data directories have no index of folded names: it is built, once.
      if (this.#meta.get('folded-names') !== true) {
        this.#root.transactionSync(() => {
          for (const { key } of this.#files.getRange()) this.#addFoldedSync(key);
          this.#meta.putSync('folded-names', true);
        });
      }
    }
  }

  // ---- files ----

  /** The record of a stored file, without its chunk hashes. */
  fileRecord(name: string): FileRecord | undefined {
    return this.#files.get(name);
  }

  /** The record of a stored file with its chunk hashes (what a download checks each chunk against). */
  file(name: string): StoredFile | undefined {
    const record = this.#files.get(name);
    if (!record) return undefined;
    if ('hashes' in record) return record as StoredFile; // an older server's record, read without moving it
    // (Read-only, a data directory of an older server has no hashes table: `openDB` gave nothing.)
    return { ...record, hashes: (this.#hashes as Database<Uint8Array, string> | undefined)?.getBinary(name) ?? new Uint8Array(0) };
  }

  /** The stored names that fold to `folded` (`foldName`), or (with `asPrefix`) that fold to something starting with it. */
  namesFolding(folded: string, asPrefix = false): string[] {
    const index = this.#folded as Database<string[], string> | undefined; // read-only on an older data directory: none
    if (!index) return [];
    if (!asPrefix) return index.get(foldedKey(folded)) ?? [];
    const names: string[] = [];
    for (const { key, value } of index.getRange({ start: folded })) {
      if (!key.startsWith(folded)) break;
      names.push(...value);
    }
    return names;
  }

  /** Whether a stored name starts with `prefix`: one key looked at, no record read. */
  holdsFilesUnder(prefix: string): boolean {
    for (const key of this.#files.getKeys({ start: prefix, limit: 1 })) return key.startsWith(prefix);
    return false;
  }

  /** Files in name order, from just after `after`, those starting with `prefix`. */
  listFiles(options: { prefix?: string; after?: string; limit: number }): FileRecord[] {
    const files: FileRecord[] = [];
    for (const file of this.filesFrom(options)) {
      if (files.length === options.limit) break;
      files.push(file);
    }
    return files;
  }

  /** Files in name order, from just after `after`, those starting with `prefix`, read as they are asked for. */
  *filesFrom(options: { prefix?: string; after?: string }): Generator<FileRecord> {
    const prefix = options.prefix ?? '';
    // Keys sort by their UTF-8 bytes: compare the same way (UTF-16 order differs above U+FFFF).
    const afterPrefix = options.after !== undefined && Buffer.compare(Buffer.from(options.after), Buffer.from(prefix)) >= 0;
    const start = afterPrefix ? options.after + '\u0000' : prefix;
    for (const { key, value } of this.#files.getRange({ start })) {
      if (!key.startsWith(prefix)) return;
      yield value;
    }
  }

  stats(): { files: number; bytes: number } {
    return { files: this.#fileCount, bytes: this.#byteCount };
  }

  /**
   * Records a finished file and, in the same transaction, forgets the upload session that built it
   * and adds its transfer log entry. Durable on return.
   */
  async commitFile(file: StoredFile, session?: UploadSessionRecord, log?: TransferLogRecord): Promise<void> {
    await this.#write(`recording ${file.name}`, async () => {
      // Read inside the transaction: the counters follow what this very commit replaced, as soon
      // as it is committed (whether or not the flush after it succeeds).
      const previous = await this.#root.transaction(() => {
        const replaced = this.#files.get(file.name);
        this.#putFileSync(file);
        if (log) this.#log.putSync(this.#nextLogKey(log), log);
        if (session) this.#removeSessionSync(session);
        return replaced;
      });
      this.#fileCount += previous ? 0 : 1;
      this.#byteCount += file.size - (previous?.size ?? 0);
      await this.#root.flushed;
    });
    if (log) await this.#pruneLogNowAndThen(1);
  }

  /** Flags a file whose bytes on disk no longer match its record: it stays listed but is not served. Durable on return. */
  async markDamaged(file: FileRecord, why: string): Promise<void> {
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

  /** Every stored file's record (without chunk hashes), in name order. */
  *allFiles(): Generator<FileRecord> {
    for (const { value } of this.#files.getRange()) yield value;
  }

  /** Forgets a file; returns the record it removed. Durable on return. */
  async deleteFile(name: string): Promise<FileRecord | undefined> {
    return this.#write(`deleting ${name}`, async () => {
      // Read and removed in one transaction: of two deletes racing for a name, only one removes it.
      const removed = await this.#root.transaction(() => {
        const record = this.#files.get(name);
        if (record) {
          this.#files.removeSync(name);
          this.#hashes.removeSync(name);
          this.#removeFoldedSync(name);
        }
        return record;
      });
      if (removed) {
        this.#fileCount -= 1;
        this.#byteCount -= removed.size;
      }
      await this.#root.flushed;
      return removed;
    });
  }

  // ---- accounts ----

  user(name: string): UserRecord | undefined {
    return this.#users.get(name);
  }

  /** Every account, in name order. */
  users(): UserRecord[] {
    return [...this.#users.getRange()].map(({ value }) => value);
  }

  async saveUser(user: UserRecord): Promise<void> {
    await this.#write(`saving the account ${user.name}`, async () => {
      await this.#users.put(user.name, user);
      await this.#root.flushed;
    });
  }

  /** Adds an account unless one of that name exists (checked in the same transaction); returns whether it did. */
  async addUser(user: UserRecord): Promise<boolean> {
    return this.#write(`adding the account ${user.name}`, async () => {
      const added = await this.#users.ifNoExists(user.name, () => {
        void this.#users.put(user.name, user);
      });
      await this.#root.flushed;
      return added;
    });
  }

  /** Removes an account and its login sessions; returns whether there was one. */
  async removeUser(name: string): Promise<boolean> {
    return this.#write(`removing the account ${name}`, async () => {
      const removed = await this.#root.transaction(() => {
        this.#removeTokensOfSync(name);
        return this.#users.get(name) !== undefined && this.#users.removeSync(name);
      });
      await this.#root.flushed;
      return removed;
    });
  }

  /** Saves an account and ends every login session it had (a new password, a new role). */
  async saveUserEndingSessions(user: UserRecord): Promise<void> {
    await this.#write(`saving the account ${user.name}`, async () => {
      await this.#root.transaction(() => {
        this.#removeTokensOfSync(user.name);
        this.#users.putSync(user.name, user);
      });
      await this.#root.flushed;
    });
  }

  // ---- login sessions (by the SHA-256 of their token) ----

  token(tokenHash: string): TokenRecord | undefined {
    return this.#tokens.get(tokenHash);
  }

  async saveToken(tokenHash: string, record: TokenRecord): Promise<void> {
    await this.#write('saving a login session', async () => {
      await this.#tokens.put(tokenHash, record);
      await this.#root.flushed;
    });
  }

  async removeToken(tokenHash: string): Promise<void> {
    await this.#write('ending a login session', async () => {
      await this.#tokens.remove(tokenHash);
      await this.#root.flushed;
    });
  }

  /** Removes login sessions last used before `cutoff`; returns how many. */
  async removeTokensUsedBefore(cutoff: number): Promise<number> {
    return this.#write('removing lapsed login sessions', () =>
      this.#root.transaction(() => {
        let removed = 0;
        for (const { key, value } of this.#tokens.getRange()) {
          if (value.used < cutoff && this.#tokens.removeSync(key)) removed += 1;
        }
        return removed;
      }),
    );
  }

  #removeTokensOfSync(user: string): void {
    for (const { key, value } of this.#tokens.getRange()) if (value.user === user) this.#tokens.removeSync(key);
  }

  // ---- upload sessions ----

  session(name: string): UploadSessionRecord | undefined {
    return this.#sessions.get(name);
  }

  sessions(): UploadSessionRecord[] {
    return [...this.#sessions.getRange()].map(({ value }) => value);
  }

  async saveSession(session: UploadSessionRecord): Promise<void> {
    await this.#write(`saving the upload session of ${session.name}`, () => this.#sessions.put(session.name, session));
  }

  /** Forgets a session and every chunk it had verified. */
  async dropSession(session: UploadSessionRecord): Promise<void> {
    await this.#write(`dropping the upload session of ${session.name}`, async () => {
      await this.#root.transaction(() => this.#removeSessionSync(session));
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
    await this.#write(`recording chunks of ${session.name}`, () =>
      this.#root.transaction(() => {
        for (const [index, xxh64] of chunks) {
          const value = Buffer.allocUnsafe(8);
          value.writeBigUInt64BE(xxh64);
          this.#chunks.putSync([session.id, index], value);
        }
        if (this.#sessions.get(session.name)?.id === session.id) this.#sessions.putSync(session.name, { ...session, touched: Date.now() });
      }),
    );
  }

  // ---- transfer log ----

  /**
   * Adds a transfer log entry. Best effort: the log must never fail a transfer, so a failed write
   * (a full disk) is reported by the `false` it resolves with, never thrown. Entries are written
   * in batches, `logBatchMs` after the first of a batch (or at once when `logBatchEntries` wait):
   * a tree's downloads end a few hundred microseconds apart, and each entry written alone was an
   * LMDB commit of its own. Resolves once its batch is committed.
   */
  appendLog(entry: TransferLogRecord): Promise<boolean> {
    // A transfer that ends as the server stops: too late for the log (its close wrote the last batch).
    if (this.#closing) return Promise.resolve(false);
    this.#pendingLog.push(entry);
    let batch = this.#logBatch;
    if (!batch) {
      let resolve!: (committed: boolean) => void;
      const committed = new Promise<boolean>((settle) => (resolve = settle));
      batch = this.#logBatch = { committed, resolve, timer: setTimeout(() => void this.#flushLog(), logBatchMs) };
    }
    if (this.#pendingLog.length >= logBatchEntries) void this.#flushLog();
    return batch.committed;
  }

  /** Writes the waiting log entries in one commit, and tells their writers whether it was committed. */
  async #flushLog(): Promise<void> {
    const batch = this.#logBatch;
    if (!batch) return;
    const entries = this.#pendingLog;
    this.#pendingLog = [];
    this.#logBatch = undefined;
    clearTimeout(batch.timer);
    let committed = true;
    try {
      // Put in one event turn: lmdb-js commits them together.
      await this.#write('appending to the transfer log', () =>
        Promise.all(entries.map((entry) => this.#log.put(this.#nextLogKey(entry), entry))),
      );
    } catch {
      committed = false; // the writers decide what a lost log entry means (the server logs it)
    }
    batch.resolve(committed);
    await this.#pruneLogNowAndThen(entries.length);
  }

  #nextLogKey(entry: TransferLogRecord): LogKey {
    this.#logSeq = (this.#logSeq + 1) % 1_000_000;
    return [entry.time, this.#logSeq];
  }

  /** Every `logPruneEveryEntries` entries, drops those past their retention. Best effort, like the log itself. */
  async #pruneLogNowAndThen(added: number): Promise<void> {
    this.#logAppendsSincePrune += added;
    if (this.#logAppendsSincePrune < logPruneEveryEntries) return;
    this.#logAppendsSincePrune = 0;
    await this.pruneLog().catch(() => {
      // The log is best effort (a full disk): the next pruning tries again.
    });
  }

  /** Removes transfer log entries older than the retention, and the oldest beyond `maxLogEntries`. */
  async pruneLog(now = Date.now()): Promise<void> {
    const cutoff: LogKey = [now - this.#logRetentionMs, 0];
    await this.#write('pruning the transfer log', () =>
      this.#root.transaction(() => {
        for (const key of this.#log.getKeys({ end: cutoff })) this.#log.removeSync(key);
        const excess = this.#log.getCount() - this.#maxLogEntries;
        if (excess > 0) for (const key of this.#log.getKeys({ limit: excess })) this.#log.removeSync(key);
      }),
    );
  }

  /**
   * Resolves once the log entries appended so far are committed, so that `recentLog` reads them: a
   * download's entry is appended as its last chunk leaves, and its client may ask for the log
   * before that commit is done. At most `waitMs`: a commit that failed (a full disk) may never settle.
   */
  async logCommitted(waitMs = 2000): Promise<void> {
    await this.#flushLog();
    await settleWithin(Promise.resolve(this.#log.committed), waitMs);
  }

  /** The newest `limit` log entries that `keep` (all, without it), newest first. */
  recentLog(limit: number, keep?: (entry: TransferLogRecord) => boolean): TransferLogRecord[] {
    if (!keep) return [...this.#log.getRange({ reverse: true, limit })].map(({ value }) => value);
    const entries: TransferLogRecord[] = [];
    for (const { value } of this.#log.getRange({ reverse: true })) {
      if (entries.length === limit) break;
      if (keep(value)) entries.push(value);
    }
    return entries;
  }

  /**
   * Flushes and closes. After a failed commit (a full disk) lmdb-js's `flushed`, and its `close()`
   * behind it, may never settle; the failure was already reported to the writers it concerned, and
   * LMDB is crash-safe, so each is waited for at most `waitMs`.
   */
  async close(waitMs = 2000): Promise<void> {
    this.#closing = true;
    await this.#flushLog();
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
      if (commitError)
        cause = await commitError.then(
          () => error,
          (rejection: unknown) => rejection,
        );
      const full = codeOfSystemError(cause) === 'ENOSPC' || /MDB_MAP_FULL|no space/iu.test(String(cause));
      throw new FerryError(full ? 'ENOSPC' : 'EIO', `${what}: ${describeSystemError(cause)}`, { cause });
    }
  }

  /** Removes the session's chunks, and its record if it still is the name's session; returns whether it was. */
  #removeSessionSync(session: UploadSessionRecord): boolean {
    const current = this.#sessions.get(session.name);
    if (current?.id === session.id) this.#sessions.removeSync(session.name);
    for (const key of this.#chunks.getKeys(this.#chunkRange(session.id))) this.#chunks.removeSync(key);
    return current?.id === session.id;
  }

  #addFoldedSync(name: string): void {
    const key = foldedKey(foldName(name));
    const names = this.#folded.get(key) ?? [];
    if (!names.includes(name)) this.#folded.putSync(key, [...names, name]);
  }

  #removeFoldedSync(name: string): void {
    const key = foldedKey(foldName(name));
    const names = (this.#folded.get(key) ?? []).filter((other) => other !== name);
    if (names.length > 0) this.#folded.putSync(key, names);
    else this.#folded.removeSync(key);
  }

  /** Writes a file's record and its chunk hashes apart (inside a transaction). */
  #putFileSync(file: StoredFile): void {
    const { hashes, ...record } = file;
    this.#files.putSync(file.name, record);
    this.#hashes.putSync(file.name, hashes);
    this.#addFoldedSync(file.name);
  }
}
