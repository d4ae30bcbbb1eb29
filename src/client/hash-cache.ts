import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { type RootDatabase, open } from 'lmdb';
import { fromSystemError } from '../system-errors.js';

/** What the cache knows of one local file: the SHA-256 it had while these fields were as they are. */
interface CachedHash {
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
  sha256: string;
}

/** Whether two sets of a file's key fields agree: the same device, inode, size and mtime. */
function sameFile(a: Pick<Stats, 'dev' | 'ino' | 'size' | 'mtimeMs'>, b: Pick<Stats, 'dev' | 'ino' | 'size' | 'mtimeMs'>): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs;
}

/** `$XDG_CACHE_HOME/ferry/`, else `~/.cache/ferry/`. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env['XDG_CACHE_HOME'] || join(env['HOME'] || homedir(), '.cache'), 'ferry');
}

/**
 * Entries a cache gathers before one commit writes them all, and the longest an entry waits for
 * it: a tree of small files remembers hundreds of hashes a second, and a commit each (an LMDB
 * transaction and its fdatasync) cost the client about a quarter of its CPU in a tree upload
 * (docs/perf-notes.md, "The hash cache's commits"). An entry not yet written when the process
 * dies is only a file read again next time.
 */
const entriesPerCommit = 1024;
const commitAfterMs = 500;

/**
 * The SHA-256 of local files, remembered by (path, device, inode, size, mtime), so that a folder
 * sent or fetched again is not read again where nothing changed (as rsync's quick check). An
 * entry is used only while all five agree with the file; any difference discards it. Kept in LMDB
 * under `$XDG_CACHE_HOME/ferry/hashes` (several ferry processes may share it); losing it costs
 * only re-reading.
 */
export class HashCache {
  readonly #db: RootDatabase<CachedHash, string>;
  /** Entries remembered since the last commit, by key: read before the database. */
  #pending = new Map<string, CachedHash>();
  /** Entries being committed, read before the database until their commit is done. */
  readonly #writing = new Set<Map<string, CachedHash>>();
  #commitTimer: NodeJS.Timeout | undefined;

  private constructor(db: RootDatabase<CachedHash, string>) {
    this.#db = db;
  }

  static open(dir = cacheDir()): HashCache {
    const path = join(dir, 'hashes');
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      return new HashCache(open<CachedHash, string>({ path, compression: false }));
    } catch (error) {
      throw fromSystemError(error, `the hash cache ${path}`);
    }
  }

  /** The file's SHA-256 if the cache has it for the file as `stats` describe it. */
  get(path: string, stats: Stats): string | undefined {
    const key = resolve(path);
    const cached = this.#unwritten(key) ?? this.#db.get(key);
    if (!cached) return undefined;
    if (sameFile(cached, stats)) return cached.sha256;
    this.#pending.delete(key);
    for (const entries of this.#writing) entries.delete(key);
    void this.#db.remove(key).catch(() => false);
    return undefined;
  }

  /** The entry of `key` remembered but not yet in the database, the latest if several. */
  #unwritten(key: string): CachedHash | undefined {
    const pending = this.#pending.get(key);
    if (pending) return pending;
    let latest: CachedHash | undefined;
    for (const entries of this.#writing) latest = entries.get(key) ?? latest;
    return latest;
  }

  /** Remembers the SHA-256 of the file as `stats` describe it (taken before it was read). */
  set(path: string, stats: Stats, sha256: string): void {
    const { dev, ino, size, mtimeMs } = stats;
    this.#pending.set(resolve(path), { dev, ino, size, mtimeMs, sha256 });
    if (this.#pending.size >= entriesPerCommit) this.#commit();
    else this.#commitTimer ??= setTimeout(() => this.#commit(), commitAfterMs).unref();
  }

  /**
   * Writes the pending entries: put in one turn of the event loop, they go in one LMDB commit (or
   * a few). They stay readable from memory until it is done (a failure loses them: only a cache).
   */
  #commit(): void {
    clearTimeout(this.#commitTimer);
    this.#commitTimer = undefined;
    if (this.#pending.size === 0) return;
    const entries = this.#pending;
    this.#pending = new Map();
    this.#writing.add(entries);
    let written: Promise<unknown> = Promise.resolve();
    for (const [key, entry] of entries) written = this.#db.put(key, entry);
    void written.catch(() => undefined).finally(() => this.#writing.delete(entries));
  }

  /** The file's SHA-256: from the cache, else read (and remembered). */
  async sha256Of(path: string, stats: Stats): Promise<string> {
    const cached = this.get(path, stats);
    if (cached !== undefined) return cached;
    const hash = createHash('sha256');
    try {
      await pipeline(createReadStream(path, { highWaterMark: 1024 * 1024 }), hash);
    } catch (error) {
      throw fromSystemError(error, `local file ${path}`);
    }
    const sha256 = hash.digest('hex');
    // Remembered only if the file did not change while it was read.
    const after = await stat(path).catch(() => undefined);
    if (after && sameFile(after, stats)) this.set(path, stats, sha256);
    return sha256;
  }

  /** Writes what is pending and closes the database (after its last commit). */
  async close(): Promise<void> {
    this.#commit();
    await this.#db.close();
  }
}
