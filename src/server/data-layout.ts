import { constants, existsSync, lstatSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, open, rm, rmdir } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { FerryError } from '../protocol/errors.js';
import { checkName } from '../protocol/names.js';

/** Where things live under the data directory (docs/design.md, "Data directory"). */
export class DataLayout {
  readonly root: string;
  readonly filesDir: string;
  readonly partialDir: string;
  readonly dbDir: string;
  /** Files found under files/ that no record describes, moved aside by start-up recovery. */
  readonly lostFoundDir: string;
  /** Modes of what the server creates: 0777 and 0666 less the umask (owner only, by default). */
  readonly folderMode: number;
  readonly fileMode: number;

  constructor(dataDir: string, umask = 0o077) {
    this.root = resolve(dataDir);
    this.folderMode = 0o777 & ~umask;
    this.fileMode = 0o666 & ~umask;
    this.filesDir = join(this.root, 'files');
    this.partialDir = join(this.root, 'partial');
    this.dbDir = join(this.root, 'db');
    this.lostFoundDir = join(this.root, 'lost+found');
  }

  /** Where the first admin's random password is kept (0600) until it is changed. */
  get adminPasswordFile(): string {
    return join(this.root, 'admin-password');
  }

  /** The generated TLS certificate (`cert.pem`) and its key (`key.pem`, 0600). */
  get tlsDir(): string {
    return join(this.root, 'tls');
  }

  /** Names the shared store whose records this data directory caches (absent: the files are its own, under files/). */
  get storeFile(): string {
    return join(this.root, 'store');
  }

  /**
   * Keeps the data directory to one use: its own files, or the cache of one shared store
   * (`location`, recorded the first time). A server on a store refuses a directory that holds
   * files of its own (their records would be dropped as not in the store), and a server on the
   * directory alone refuses one that caches a store (it would drop the cached records and serve
   * none of the store's files): either way the operator is told at once, and nothing is touched.
   */
  bindStore(location: string | undefined): void {
    const bound = existsSync(this.storeFile) ? readFileSync(this.storeFile, 'utf8').trim() : undefined;
    if (bound === location) return;
    if (location === undefined) {
      throw new FerryError(
        'ECONFIG',
        `${this.root} caches the records of the shared store ${bound}: serve it with --store ${bound}, or use another --data`,
      );
    }
    if (bound !== undefined) {
      throw new FerryError('ECONFIG', `${this.root} caches the records of ${bound}, not ${location}: use another --data for ${location}`);
    }
    if (readdirSync(this.filesDir).length > 0 || readdirSync(this.partialDir).length > 0) {
      throw new FerryError(
        'ECONFIG',
        `${this.root} holds files of its own: a server on ${location} needs another --data (there it keeps only a cache of the store's records)`,
      );
    }
    writeFileSync(this.storeFile, `${location}\n`, { mode: this.fileMode });
  }

  /** Creates what is missing of the data directory (a folder made here gets `folderMode`; one that exists keeps its mode). */
  create(): void {
    for (const dir of [this.filesDir, this.partialDir, this.dbDir]) mkdirSync(dir, { recursive: true, mode: this.folderMode });
  }

  /**
   * Whether the data directory's file system takes two names that differ only by case for one
   * file (macOS and Windows by default, ext4 with casefold): found by creating one and looking
   * for the other.
   */
  ignoresCase(): boolean {
    const probe = join(this.root, `.ferry-case-probe-${process.pid}-aB`);
    writeFileSync(probe, '');
    try {
      return existsSync(join(this.root, `.ferry-case-probe-${process.pid}-Ab`));
    } finally {
      rmSync(probe, { force: true });
    }
  }

  /** Makes `folder` and what is missing above it; returns the first folder it made, if any. */
  async makeFolders(folder: string): Promise<string | undefined> {
    return mkdir(folder, { recursive: true, mode: this.folderMode });
  }

  /**
   * The path of a stored file, once every folder on the way to it under files/ is checked to be a
   * real folder: a symbolic link placed there (by hand, or by anyone with access to the data
   * directory) is never followed out of it. A folder that does not exist yet is fine (a publish
   * makes it). The checks block, on purpose: an lstat of a cached folder costs about 5 µs of CPU
   * that way and about 35 through libuv's thread pool, which every upload and download of a file
   * in a folder paid per folder (docs/perf-notes.md, "Small metadata calls").
   */
  safeFilePath(name: string): string {
    const path = this.filePath(name);
    for (let folder = this.filesDir; ;) {
      // The folders on the way, not the file itself: no separator after it ends the walk.
      const end = path.indexOf(sep, folder.length + 1);
      if (end < 0) break;
      folder = path.slice(0, end);
      let stats;
      try {
        stats = lstatSync(folder);
      } catch {
        break; // missing: nothing below it exists either
      }
      if (stats.isSymbolicLink() || !stats.isDirectory()) {
        throw new FerryError(
          'EIO',
          `${name}: the data directory holds something other than a folder at ${name.slice(0, folder.length - this.filesDir.length - 1)}; not followed`,
        );
      }
    }
    return path;
  }

  /**
   * Opens a stored file to read it (a descriptor: close it with `closeSync`); a symbolic link, at
   * its name or on the way to it, is not followed. Blocking, as the checks on the way are: opening
   * and closing an existing file for reading is a cached lookup (7 µs of CPU against 40-80 through
   * a FileHandle on the thread pool, per download).
   */
  openStoredFile(name: string): number {
    return openSync(this.safeFilePath(name), constants.O_RDONLY | constants.O_NOFOLLOW);
  }

  /** Path of a finished file. The name passes the name guard again here: nothing escapes filesDir. */
  filePath(name: string): string {
    const path = join(this.filesDir, ...checkName(name).split('/'));
    if (!path.startsWith(this.filesDir + sep)) throw new Error(`name escapes the data directory: ${name}`);
    return path;
  }

  /**
   * Removes the folders above a deleted file that it left empty, deepest first, so a later file
   * may take a folder's name. Stops at the first folder that still holds something.
   */
  async pruneEmptyFolders(name: string): Promise<void> {
    for (let folder = dirname(this.filePath(name)); folder.startsWith(this.filesDir + sep); folder = dirname(folder)) {
      try {
        await rmdir(folder);
      } catch {
        return; // not empty (or already gone): the folders above are not empty either
      }
    }
  }

  partialPath(sessionId: string): string {
    return join(this.partialDir, `${sessionId}.part`);
  }

  /** Creates the partial file of a new upload session, `size` bytes long (sparse: nothing is written yet). */
  async createPartial(sessionId: string, size: number): Promise<void> {
    const handle = await open(this.partialPath(sessionId), 'wx', this.fileMode);
    try {
      await handle.truncate(size);
    } finally {
      await handle.close();
    }
  }

  async partialExists(sessionId: string): Promise<boolean> {
    try {
      await (await open(this.partialPath(sessionId), 'r')).close();
      return true;
    } catch {
      return false; // missing or unreadable: either way there is nothing to resume from
    }
  }

  async removePartial(sessionId: string): Promise<void> {
    await rm(this.partialPath(sessionId), { force: true });
  }
}
