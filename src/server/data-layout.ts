import { mkdirSync } from 'node:fs';
import { open, rm, rmdir } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { checkName } from '../protocol/names.js';

/** Where things live under the data directory (docs/design.md, "Data directory"). */
export class DataLayout {
  readonly root: string;
  readonly filesDir: string;
  readonly partialDir: string;
  readonly dbDir: string;
  /** Files found under files/ that no record describes, moved aside by start-up recovery. */
  readonly lostFoundDir: string;

  constructor(dataDir: string) {
    this.root = resolve(dataDir);
    this.filesDir = join(this.root, 'files');
    this.partialDir = join(this.root, 'partial');
    this.dbDir = join(this.root, 'db');
    this.lostFoundDir = join(this.root, 'lost+found');
  }

  create(): void {
    for (const dir of [this.filesDir, this.partialDir, this.dbDir]) mkdirSync(dir, { recursive: true });
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
    const handle = await open(this.partialPath(sessionId), 'wx');
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
