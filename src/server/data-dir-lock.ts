import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FerryError, fromSystemError } from '../protocol/errors.js';

/**
 * Data directories a server of this process holds. Their lock files hold this process's PID, so
 * only this set tells "served here" from "left by an earlier process that had the same PID" (a
 * container restarted after a crash often gets the same PID).
 */
const heldHere = new Set<string>();

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'; // alive, someone else's
  }
}

/** The PID in a lock file, or undefined if it holds none (torn, empty) or is gone. */
function holderOf(path: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(path, 'utf8'), 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * One server per data directory: `<data>/server.pid` holds the PID of the server using it. Two
 * servers on one directory would each take the other's uploads in progress for debris at start-up
 * and each count the quota alone. A second server is refused with EBUSY; a lock left by a process
 * that is gone (a crash, `kill -9`) is taken over.
 */
export class DataDirLock {
  readonly path: string;
  readonly #root: string;
  #held = true;

  private constructor(root: string, path: string) {
    this.#root = root;
    this.path = path;
  }

  /** Takes the lock of the data directory `root` (which exists), or throws EBUSY naming its holder. */
  static acquire(root: string): DataDirLock {
    const path = join(root, 'server.pid');
    for (let attempt = 0; attempt < 3; attempt += 1) {
      try {
        writeFileSync(path, `${process.pid}\n`, { flag: 'wx' });
        heldHere.add(root);
        return new DataDirLock(root, path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw fromSystemError(error, `locking ${root}`);
      }
      const holder = holderOf(path);
      if (holder !== undefined && isRunning(holder) && (holder !== process.pid || heldHere.has(root))) {
        throw new FerryError('EBUSY', `${root} is in use by another ferry server (pid ${holder}); if none is running, remove ${path}`);
      }
      // Stale. Moved aside rather than removed: of two servers taking it over at once, the second
      // finds nothing to move and goes round again, where it meets the first one's fresh lock.
      try {
        renameSync(path, `${path}.stale`);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw fromSystemError(error, `locking ${root}`);
      }
    }
    throw new FerryError('EBUSY', `${root}: could not take ${path}`);
  }

  /** Lets the directory go (the server has closed). */
  release(): void {
    if (!this.#held) return;
    this.#held = false;
    heldHere.delete(this.#root);
    if (holderOf(this.path) === process.pid) rmSync(this.path, { force: true });
    rmSync(`${this.path}.stale`, { force: true });
  }
}
