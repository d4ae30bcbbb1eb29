import { type Dirent, existsSync } from 'node:fs';
import { readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { hashFileSync } from '../hashing/file-hashes.js';
import { loadXxhash } from '../hashing/xxh64.js';
import type { MetaStore } from '../store/meta-store.js';
import { type StoredFile, type UploadSessionRecord, chunkCountOf, hashAt, packHashes } from '../store/records.js';
import type { DataLayout } from './data-layout.js';

/** One disagreement between LMDB and the data directory, and what was (or would be) done about it. */
export interface Finding {
  problem:
    | 'expired-upload'
    | 'upload-without-data'
    | 'unpublished-upload'
    | 'orphan-partial'
    | 'orphan-file'
    | 'missing-file'
    | 'size-mismatch'
    | 'content-mismatch'
    | 'damaged';
  name: string;
  detail: string;
  /** What repair did, or (in a check) would do. */
  action: string;
}

export interface ReconcileOptions {
  layout: DataLayout;
  store: MetaStore;
  sessionTtlMs: number;
  /** Apply the repairs (server start-up); false only reports (`ferry fsck`). */
  repair: boolean;
  /** Also read every stored file and compare its SHA-256 with the record (slow: reads everything). */
  verifyContent?: boolean;
  now?: number;
}

export interface ReconcileReport {
  findings: Finding[];
  filesChecked: number;
  uploadsChecked: number;
}

/**
 * Makes LMDB and the data directory agree (docs/design.md, "Start-up recovery"). Runs before the
 * server listens, and read-only for `ferry fsck`. The rules, in order:
 *
 * 1. An upload session whose partial file is gone, while a file of its exact size and chunk
 *    hashes sits at its name, crashed between publishing the verified file and recording it:
 *    the record is completed. Any other session without its partial file is dropped; a session
 *    idle past the TTL is dropped with its partial file.
 * 2. A partial file no session owns is removed.
 * 3. A file under files/ no record describes is moved to lost+found/<time>-<n>/, under its name
 *    (never deleted: it may be someone's data).
 * 4. A record whose file is gone is removed; one whose file has another size (or, with
 *    `verifyContent`, another SHA-256, or a chunk that fails its recorded xxh64) is flagged
 *    damaged: listed, never served.
 */
export async function reconcile(options: ReconcileOptions): Promise<ReconcileReport> {
  const findings: Finding[] = [];
  const uploadsChecked = options.store.sessions().length;
  const sessions = await reconcileSessions(options, findings);
  await reconcilePartials(options, sessions.ownedPartials, findings);
  await reconcileOrphanFiles(options, sessions.published, findings);
  const filesChecked = await reconcileRecords(options, sessions.published, findings);
  return { findings, filesChecked, uploadsChecked };
}

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    const stats = await stat(path);
    return stats.isFile() ? stats.size : undefined;
  } catch {
    return undefined; // missing or unreadable: no file there, as far as recovery is concerned
  }
}

/**
 * What rule 1 settled, so the later rules leave it alone (a check changes nothing, so they would
 * otherwise see it again): the session ids whose partial files it accounts for, and the names of
 * the files it records (or would record).
 */
interface SessionOutcome {
  ownedPartials: Set<string>;
  published: Set<string>;
}

/** Rule 1. */
async function reconcileSessions(options: ReconcileOptions, findings: Finding[]): Promise<SessionOutcome> {
  const { layout, store, repair } = options;
  const cutoff = (options.now ?? Date.now()) - options.sessionTtlMs;
  const outcome: SessionOutcome = { ownedPartials: new Set(), published: new Set() };
  for (const session of store.sessions()) {
    const partialSize = await sizeOf(layout.partialPath(session.id));
    if (partialSize === undefined) {
      const published = await publishedFile(layout, store, session);
      if (published) {
        findings.push({
          problem: 'unpublished-upload',
          name: session.name,
          detail: 'the verified file was published but not recorded',
          action: repair ? 'recorded it' : 'would record it',
        });
        outcome.published.add(session.name);
        if (repair) await store.commitFile(published, session);
      } else {
        findings.push({
          problem: 'upload-without-data',
          name: session.name,
          detail: 'its partial file is missing',
          action: repair ? 'dropped the upload' : 'would drop the upload',
        });
        if (repair) await store.dropSession(session);
      }
      continue;
    }
    outcome.ownedPartials.add(session.id);
    if (session.touched < cutoff) {
      const idle = new Date(session.touched).toISOString();
      findings.push({
        problem: 'expired-upload',
        name: session.name,
        detail: `untouched since ${idle}`,
        action: repair ? 'removed it' : 'would remove it',
      });
      if (repair) {
        await store.dropSession(session);
        await rm(layout.partialPath(session.id), { force: true });
      }
    }
  }
  return outcome;
}

/**
 * The record a session would have produced, when the file at its name is exactly what it
 * verified: the right size, and every chunk matching the xxh64 recorded for it. Such a file was
 * checked against the client's SHA-256 before it was renamed into place, so it can be trusted.
 */
async function publishedFile(layout: DataLayout, store: MetaStore, session: UploadSessionRecord): Promise<StoredFile | undefined> {
  const path = layout.filePath(session.name);
  if ((await sizeOf(path)) !== session.size) return undefined;
  const chunks = store.verifiedChunks(session.id);
  if (chunks.size !== chunkCountOf(session.size, session.chunkSize)) return undefined;
  const { sha256, chunkHashes } = hashFileSync(path, session.size, session.chunkSize, await loadXxhash());
  if (chunkHashes.some((xxh64, index) => chunks.get(index) !== xxh64)) return undefined;
  const now = Date.now();
  const created = store.file(session.name)?.created ?? now;
  return {
    name: session.name,
    size: session.size,
    sha256,
    chunkSize: session.chunkSize,
    hashes: packHashes(chunkHashes),
    created,
    modified: now,
  };
}

/**
 * Why the bytes at `path` are not what `file` records (SHA-256, or the xxh64 of a chunk), or
 * undefined when they are.
 */
async function contentMismatch(path: string, file: StoredFile): Promise<string | undefined> {
  const { sha256, chunkHashes } = hashFileSync(path, file.size, file.chunkSize, await loadXxhash());
  if (sha256 !== file.sha256) return 'its SHA-256 on disk is not the recorded one';
  const bad = chunkHashes.findIndex((xxh64, index) => hashAt(file.hashes, index) !== xxh64);
  if (bad >= 0) return `chunk ${bad} on disk does not match its recorded xxh64 (it would be refused on download)`;
  return undefined;
}

/** Rule 2. */
async function reconcilePartials(options: ReconcileOptions, ownedPartials: Set<string>, findings: Finding[]): Promise<void> {
  const { layout, repair } = options;
  for (const entry of await readdir(layout.partialDir)) {
    const id = entry.endsWith('.part') ? entry.slice(0, -'.part'.length) : undefined;
    if (id !== undefined && ownedPartials.has(id)) continue;
    findings.push({
      problem: 'orphan-partial',
      name: entry,
      detail: 'no upload owns this partial file',
      action: repair ? 'removed it' : 'would remove it',
    });
    if (repair) await rm(join(layout.partialDir, entry), { recursive: true, force: true });
  }
}

/** Every regular file under `dir`, as a path relative to it with `/` separators. */
async function* filesUnder(dir: string, root = dir): AsyncGenerator<string> {
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return; // gone meanwhile, or not a folder: nothing under it to check
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* filesUnder(path, root);
    else yield relative(root, path).split(sep).join('/');
  }
}

/**
 * The folder this run moves strays into: `lost+found/<UTC time>-<n>`, the first `n` not taken.
 * A folder of its own per run, so what it moves keeps its name and can never clash with what an
 * earlier run left there (a file `a` beside a stray `a/b`), and no suffix can make a name too long.
 * A check (`ferry fsck`) names the same folder a start-up at that moment would use.
 */
function lostFoundRun(layout: DataLayout, now: number): string {
  const stamp = new Date(now)
    .toISOString()
    .replace(/[-:]/gu, '')
    .replace(/\.\d+Z$/u, 'Z');
  for (let n = 1; ; n += 1) {
    const run = join(layout.lostFoundDir, `${stamp}-${n}`);
    if (!existsSync(run)) return run;
  }
}

/** Rule 3. A stray that cannot be moved is reported and left in place: it never stops start-up. */
async function reconcileOrphanFiles(options: ReconcileOptions, published: Set<string>, findings: Finding[]): Promise<void> {
  const { layout, store, repair } = options;
  let run: string | undefined;
  for await (const name of filesUnder(layout.filesDir)) {
    if (store.file(name) || published.has(name)) continue;
    run ??= lostFoundRun(layout, options.now ?? Date.now());
    const target = join(run, ...name.split('/'));
    const shown = relative(layout.root, target);
    const finding: Finding = {
      problem: 'orphan-file',
      name,
      detail: 'no record describes this file',
      action: repair ? `moved it to ${shown}` : `would move it to ${shown}`,
    };
    findings.push(finding);
    if (!repair) continue;
    try {
      await layout.makeFolders(dirname(target));
      await rename(join(layout.filesDir, ...name.split('/')), target);
    } catch (error) {
      finding.action = `could not move it to ${shown} (${(error as Error).message}): left in place`;
    }
  }
}

/** Rule 4. Returns how many records it checked. */
async function reconcileRecords(options: ReconcileOptions, published: Set<string>, findings: Finding[]): Promise<number> {
  const { layout, store, repair } = options;
  let checked = 0;
  for (const file of [...store.allFiles()]) {
    checked += 1;
    if (published.has(file.name) && !repair) continue; // rule 1 would replace this record
    if (file.damaged !== undefined) {
      findings.push({
        problem: 'damaged',
        name: file.name,
        detail: file.damaged,
        action: 'left flagged: delete it or upload it again with --force',
      });
      continue;
    }
    const path = layout.filePath(file.name);
    const size = await sizeOf(path);
    if (size === undefined) {
      findings.push({
        problem: 'missing-file',
        name: file.name,
        detail: 'its bytes are missing from the data directory',
        action: repair ? 'removed the record' : 'would remove the record',
      });
      if (repair) await store.deleteFile(file.name);
      continue;
    }
    let why: string | undefined;
    let problem: Finding['problem'] = 'size-mismatch';
    if (size !== file.size) why = `${size} bytes on disk, ${file.size} recorded`;
    else if (options.verifyContent) {
      why = await contentMismatch(path, store.file(file.name)!);
      problem = 'content-mismatch';
    }
    if (why === undefined) continue;
    findings.push({
      problem,
      name: file.name,
      detail: why,
      action: repair ? 'flagged it damaged (not served)' : 'would flag it damaged (not served)',
    });
    if (repair) await store.markDamaged(file, why);
  }
  return checked;
}
