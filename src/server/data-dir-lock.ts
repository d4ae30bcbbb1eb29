import { randomBytes } from 'node:crypto';
import { linkSync, lstatSync, readFileSync, realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { FerryError } from '../protocol/errors.js';
import { fromSystemError } from '../system-errors.js';

/**
 * Data directories (real paths) a server of this process holds. Their lock files hold this
 * process's PID, so only this set tells "served here" from "left by an earlier process that had
 * the same PID" (a container restarted after a crash often gets the same PID).
 */
const heldHere = new Set<string>();

/** What a lock file says: who holds it, or that it says nothing usable. */
type Holder = { pid: number; host: string } | 'garbage';

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'; // alive, someone else's
  }
}

/** Lock file content: `<pid>\n<host>\n`. */
function parseHolder(text: string): Holder {
  const [pidText, host] = text.split('\n');
  const pid = Number(pidText);
  return Number.isSafeInteger(pid) && pid > 0 && host ? { pid, host } : 'garbage';
}

/** A unique path beside `path`, for writing or moving a lock file without clobbering another. */
function besidePath(path: string, what: string): string {
  return `${path}.${what}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

function removeQuietly(path: string): void {
  try {
    rmSync(path, { force: true });
  } catch {
    // best effort: a stray file beside the lock harms nothing
  }
}

/**
 * One server per data directory: `<data>/server.pid` holds the PID and host of the server using
 * it. Two servers on one directory would each take the other's uploads in progress for debris at
 * start-up, and each count the quota alone. A second server is refused with EBUSY; a lock left by
 * a process that is gone (a crash, `kill -9`) is taken over.
 *
 * The file appears whole or not at all (written aside, then hard-linked into place, which fails if
 * it exists). A stale lock is moved aside under a unique name and read again there: if what was
 * moved is not the stale lock (another server took it over meanwhile), it is put back and this
 * server gives up.
 */
export class DataDirLock {
  readonly path: string;
  readonly #key: string;
  #held = true;

  private constructor(key: string, path: string) {
    this.#key = key;
    this.path = path;
  }

  /** Takes the lock of the data directory `root` (which exists), or throws EBUSY naming its holder. */
  static acquire(root: string): DataDirLock {
    const key = realpathSync(root);
    const path = join(root, 'server.pid');
    const content = `${process.pid}\n${hostname()}\n`;
    for (let attempt = 0; attempt < 5; attempt += 1) {
      if (createWith(path, content)) {
        heldHere.add(key);
        return new DataDirLock(key, path);
      }
      const seen = readLock(path);
      if (seen === undefined) continue; // gone meanwhile: try again
      const live = liveHolder(seen.holder, key);
      if (live) {
        const server =
          live.host === hostname() ? `another ferry server (pid ${live.pid})` : `a ferry server on ${live.host} (pid ${live.pid})`;
        throw new FerryError('EBUSY', `${key} is in use by ${server}; if none is running, remove ${path}`);
      }
      takeAway(path, seen.text);
    }
    throw new FerryError('EBUSY', `${root}: could not take ${path} (other servers are starting on it)`);
  }

  /** Lets the directory go (the server has closed). */
  release(): void {
    if (!this.#held) return;
    this.#held = false;
    heldHere.delete(this.#key);
    const seen = readLock(this.path);
    if (seen && seen.holder !== 'garbage' && seen.holder.pid === process.pid && seen.holder.host === hostname()) removeQuietly(this.path);
  }
}

/**
 * Who serves the data directory `root` now, as "pid N" (or "pid N on HOST"), or undefined if no
 * live server holds its lock. For tools that read a directory without serving it (`ferry fsck`).
 */
export function servedBy(root: string): string | undefined {
  const path = join(root, 'server.pid');
  let seen: ReturnType<typeof readLock>;
  try {
    seen = readLock(path);
  } catch {
    return undefined; // not a lock anyone could hold
  }
  const live = seen && liveHolder(seen.holder, realpathSync(root));
  if (!live) return undefined;
  return live.host === hostname() ? `pid ${live.pid}` : `pid ${live.pid} on ${live.host}`;
}

/**
 * The holder of a lock that must be respected; undefined if the lock is stale: not one a server
 * wrote, or its process is gone from this host, or it holds this very PID and this process does
 * not hold the directory `key`. Another host's lock is always respected.
 */
function liveHolder(holder: Holder, key: string): { pid: number; host: string } | undefined {
  if (holder === 'garbage') return undefined; // never written by a server: the file appears whole
  if (holder.host !== hostname()) return holder;
  return isRunning(holder.pid) && (holder.pid !== process.pid || heldHere.has(key)) ? holder : undefined;
}

/** Creates the lock file with `content` if there is none; false if there is one. */
function createWith(path: string, content: string): boolean {
  const written = besidePath(path, 'new');
  try {
    writeFileSync(written, content, { flag: 'wx' });
    try {
      linkSync(written, path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      // A file system without hard links: create it in place (exclusive still, whole almost always).
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw error;
      writeFileSync(path, content, { flag: 'wx' });
    }
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw fromSystemError(error, `locking ${path}`);
  } finally {
    removeQuietly(written);
  }
}

/** The lock file's text and what it says; undefined if there is none. */
function readLock(path: string): { text: string; holder: Holder } | undefined {
  try {
    if (!lstatSync(path).isFile()) throw new FerryError('EBUSY', `${path} is not a regular file: move it away to serve this directory`);
    const text = readFileSync(path, 'utf8');
    return { text, holder: parseHolder(text) };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    if (error instanceof FerryError) throw error;
    throw new FerryError('EBUSY', `cannot read ${path} to see who serves this directory: ${(error as Error).message}`);
  }
}

/** Moves the stale lock `staleText` out of the way; puts back a fresh one moved by mistake and gives up. */
function takeAway(path: string, staleText: string): void {
  const moved = besidePath(path, 'stale');
  try {
    renameSync(path, moved);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return; // someone else moved it: try again
    throw fromSystemError(error, `taking over ${path}`);
  }
  try {
    const text = readFileSync(moved, 'utf8');
    if (text !== staleText) {
      // Another server took the stale lock over between our read and our move: its lock goes back.
      try {
        linkSync(moved, path);
      } catch {
        // a third server has created one meanwhile: it will find this one's holder running
      }
      const holder = parseHolder(text);
      throw new FerryError('EBUSY', `${path} was just taken by another ferry server${holder === 'garbage' ? '' : ` (pid ${holder.pid})`}`);
    }
  } finally {
    removeQuietly(moved);
  }
}
