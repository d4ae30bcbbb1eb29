import { mkdirSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { checkName } from '../protocol/names.js';

/** Where things live under the data directory (docs/design.md, "Data directory"). */
export class DataLayout {
  readonly root: string;
  readonly filesDir: string;
  readonly partialDir: string;
  readonly dbDir: string;

  constructor(dataDir: string) {
    this.root = resolve(dataDir);
    this.filesDir = join(this.root, 'files');
    this.partialDir = join(this.root, 'partial');
    this.dbDir = join(this.root, 'db');
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

  partialPath(sessionId: string): string {
    return join(this.partialDir, `${sessionId}.part`);
  }
}
