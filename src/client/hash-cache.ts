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
 * The SHA-256 of local files, remembered by (path, device, inode, size, mtime), so that a folder
 * sent or fetched again is not read again where nothing changed (as rsync's quick check). An
 * entry is used only while all five agree with the file; any difference discards it. Kept in LMDB
 * under `$XDG_CACHE_HOME/ferry/hashes` (several ferry processes may share it); losing it costs
 * only re-reading.
 */
export class HashCache {
  readonly #db: RootDatabase<CachedHash, string>;

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
    const cached = this.#db.get(key);
    if (!cached) return undefined;
    if (sameFile(cached, stats)) return cached.sha256;
    void this.#db.remove(key);
    return undefined;
  }

  /** Remembers the SHA-256 of the file as `stats` describe it (taken before it was read). */
  set(path: string, stats: Stats, sha256: string): void {
    const { dev, ino, size, mtimeMs } = stats;
    void this.#db.put(resolve(path), { dev, ino, size, mtimeMs, sha256 });
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

  async close(): Promise<void> {
    await this.#db.close();
  }
}
