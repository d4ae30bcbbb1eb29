import { type Dir, type Dirent, type Stats, statSync } from 'node:fs';
import { opendir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError } from '../protocol/errors.js';
import { fromSystemError } from '../system-errors.js';

/** What a walk of a local folder finds, in the order it finds it. */
export type LocalTreeEntry =
  /** A regular file (or, with `followSymlinks`, a link to one); `relative` uses `/` whatever the platform. */
  | { kind: 'file'; path: string; relative: string; stats: Stats }
  /** A folder with nothing in it. */
  | { kind: 'empty-folder'; path: string; relative: string }
  /** Something not sent, and why: a symbolic link, a device, a socket, a FIFO, a folder that cannot be read, a loop. */
  | { kind: 'skipped'; path: string; relative: string; why: string };

export interface WalkOptions {
  /** Follow symbolic links to files and folders (a link back into a folder being walked is refused as a loop). */
  followSymlinks?: boolean;
}

/** A folder being read: its handle, where it is, and whether anything was found in it. */
interface OpenFolder {
  dir: Dir;
  path: string;
  relative: string;
  /** The folder's identity, for loop checks when links are followed. */
  identity: string;
  /** Whether a file or a folder was found in it (what is skipped does not count: a folder of links only is kept as empty). */
  found: boolean;
}

/** A failed call's error code, for a line about what was skipped. */
function codeOf(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? 'error';
}

/**
 * Walks a local folder depth first, lazily: one open directory handle per level, entries read as
 * they are needed, so a tree of a million files is never held in memory (entries come in the file
 * system's order, not sorted). Only the root's failures throw; a sub-folder that cannot be read is
 * reported as skipped, and the walk goes on.
 */
export async function* walkLocalTree(root: string, options: WalkOptions = {}): AsyncGenerator<LocalTreeEntry> {
  let rootStats: Stats;
  try {
    rootStats = await stat(root);
  } catch (error) {
    throw fromSystemError(error, `local folder ${root}`);
  }
  if (!rootStats.isDirectory()) throw new FerryError('EUSAGE', `${root} is not a folder (-r sends a folder; without it, a file)`);
  const stack: OpenFolder[] = [];
  const open = async (path: string, relative: string, stats: Stats): Promise<OpenFolder | LocalTreeEntry> => {
    try {
      return { dir: await opendir(path, { bufferSize: 64 }), path, relative, identity: identityOf(stats), found: false };
    } catch (error) {
      if (relative === '') throw fromSystemError(error, `local folder ${path}`);
      return { kind: 'skipped', path, relative, why: `cannot be read (${codeOf(error)})` };
    }
  };
  const first = await open(root, '', rootStats);
  if ('kind' in first) {
    yield first;
    return;
  }
  stack.push(first);
  try {
    while (stack.length > 0) {
      const folder = stack.at(-1)!;
      let entry: Dirent | null;
      try {
        entry = await folder.dir.read();
      } catch (error) {
        entry = null;
        yield {
          kind: 'skipped',
          path: folder.path,
          relative: folder.relative,
          why: `stopped reading it (${codeOf(error)})`,
        };
      }
      if (entry === null) {
        stack.pop();
        await folder.dir.close().catch(() => undefined);
        if (!folder.found && folder.relative !== '') yield { kind: 'empty-folder', path: folder.path, relative: folder.relative };
        continue;
      }
      const path = join(folder.path, entry.name);
      const relative = folder.relative === '' ? entry.name : `${folder.relative}/${entry.name}`;
      const found = classify(entry, path, relative, options);
      if (found.kind !== 'skipped') folder.found = true;
      if (found.kind !== 'folder') {
        yield found;
        continue;
      }
      const identity = identityOf(found.stats);
      if (stack.some((open) => open.identity === identity)) {
        yield { kind: 'skipped', path, relative, why: 'a link back into a folder above it (a loop)' };
        continue;
      }
      const next = await open(path, relative, found.stats);
      if ('kind' in next) yield next;
      else stack.push(next);
    }
  } finally {
    // A walk abandoned part-way (an error, a `break`) closes what it still holds open.
    for (const folder of stack) await folder.dir.close().catch(() => undefined);
  }
}

/**
 * What one directory entry is: a file to send, a folder to enter, or something skipped. Its stat
 * blocks, on purpose: about 5 µs of CPU that way against 60 or more through libuv's thread pool,
 * once per file of the tree (docs/perf-notes.md, "Local calls of the client on small files").
 */
function classify(entry: Dirent, path: string, relative: string, options: WalkOptions): LocalTreeEntry | { kind: 'folder'; stats: Stats } {
  if (entry.isSymbolicLink()) {
    if (!options.followSymlinks) return { kind: 'skipped', path, relative, why: 'a symbolic link (--follow-symlinks follows it)' };
    let target: Stats;
    try {
      target = statSync(path);
    } catch (error) {
      return {
        kind: 'skipped',
        path,
        relative,
        why: `a symbolic link that leads nowhere (${codeOf(error)})`,
      };
    }
    if (target.isDirectory()) return { kind: 'folder', stats: target };
    if (target.isFile()) return { kind: 'file', path, relative, stats: target };
    return { kind: 'skipped', path, relative, why: `a symbolic link to ${kindOf(target)}` };
  }
  if (!entry.isFile() && !entry.isDirectory()) return { kind: 'skipped', path, relative, why: kindOf(entry) };
  let stats: Stats;
  try {
    stats = statSync(path);
  } catch (error) {
    return { kind: 'skipped', path, relative, why: `vanished or cannot be read (${codeOf(error)})` };
  }
  if (stats.isDirectory()) return { kind: 'folder', stats };
  if (stats.isFile()) return { kind: 'file', path, relative, stats };
  return { kind: 'skipped', path, relative, why: kindOf(stats) };
}

function identityOf(stats: Stats): string {
  return `${stats.dev}:${stats.ino}`;
}

function kindOf(entry: Pick<Dirent, 'isBlockDevice' | 'isCharacterDevice' | 'isFIFO' | 'isSocket'>): string {
  if (entry.isBlockDevice() || entry.isCharacterDevice()) return 'a device';
  if (entry.isFIFO()) return 'a FIFO';
  if (entry.isSocket()) return 'a socket';
  return 'not a regular file or folder';
}
