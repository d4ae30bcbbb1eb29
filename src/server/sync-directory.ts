import { closeSync, fsync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { promisify } from 'node:util';

const fsyncOf = promisify(fsync);

/**
 * fsyncs a directory. Only the fsync goes through libuv's pool (it waits on the disk); the open
 * and close block, as the server's other path lookups do: a hop through the pool costs more than
 * either call (docs/perf-notes.md, "Small metadata calls").
 */
async function fsyncDirectory(path: string): Promise<void> {
  const fd = openSync(path, 'r');
  try {
    await fsyncOf(fd);
  } finally {
    closeSync(fd);
  }
}

/** Per directory: the fsync running now, and the one every later caller shares. */
const syncs = new Map<string, { running: Promise<void>; next: Promise<void> | undefined }>();

/**
 * fsyncs a directory so a rename or create inside it, done before the call, survives a power
 * cut. Concurrent callers share fsyncs (group commit): a caller who arrives while one runs waits
 * for the next one, which starts after it and covers everyone who arrived meanwhile.
 */
export function syncDirectory(path: string): Promise<void> {
  const state = syncs.get(path);
  if (!state) {
    const running = fsyncDirectory(path).finally(() => advance(path));
    syncs.set(path, { running, next: undefined });
    return running;
  }
  state.next ??= new Promise<void>((resolve, reject) => {
    // The next fsync runs after the one running now, whatever became of it: that one's callers heard of its failure.
    void state.running.catch(() => undefined).finally(() => fsyncDirectory(path).then(resolve, reject));
  });
  return state.next;
}

/** The running fsync ended: the shared next one (if any) becomes the running one. */
function advance(path: string): void {
  const state = syncs.get(path);
  if (!state?.next) {
    syncs.delete(path);
    return;
  }
  const running = state.next.finally(() => advance(path));
  // Its callers hold `state.next` and hear of a failure there; this copy only chains the next one.
  running.catch(() => undefined);
  syncs.set(path, { running, next: undefined });
}

/**
 * The folders whose entries changed when a file was renamed into `folder`, `made` being the first
 * folder that had to be created for it (if any): `folder` itself, and each folder from `made`'s
 * parent down to it.
 */
export function foldersChangedBy(made: string | undefined, folder: string): string[] {
  const changed = [folder];
  if (made === undefined) return changed;
  for (let above = dirname(folder); above.length >= dirname(made).length && above !== dirname(above); above = dirname(above))
    changed.push(above);
  return changed;
}

/** Folders a publish made whose entries are still being synced, each with that sync. */
const foldersBeingMade = new Map<string, Promise<void>>();

/**
 * Makes a rename into `folder` durable: fsyncs `folder` and, if the publish had to make folders
 * (`made`, the first it made), the parent of each. A rename into a folder that another publish
 * made and is still syncing also waits for that sync: the file survives a power cut only once
 * the folder's own entry does.
 */
export async function syncRenameInto(folder: string, made: string | undefined): Promise<void> {
  const changed = foldersChangedBy(made, folder);
  const own = Promise.all(changed.map((changedFolder) => syncDirectory(changedFolder))).then(() => {});
  if (made !== undefined) {
    // Every folder changed but the last, the parent of the first one made, is new.
    const madeFolders = changed.slice(0, -1);
    for (const madeFolder of madeFolders) foldersBeingMade.set(madeFolder, own);
    // The callers of `own` hear of its failure; here it only ends the folders' wait.
    void own
      .catch(() => undefined)
      .finally(() => {
        for (const madeFolder of madeFolders) if (foldersBeingMade.get(madeFolder) === own) foldersBeingMade.delete(madeFolder);
      });
  }
  const othersMaking: Promise<void>[] = [];
  for (let above = folder; above !== dirname(above); above = dirname(above)) {
    const making = foldersBeingMade.get(above);
    if (making && making !== own) othersMaking.push(making);
  }
  await Promise.all([own, ...othersMaking]);
}
