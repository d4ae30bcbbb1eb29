import { createHash } from 'node:crypto';
import { type Dirent } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { loadXxh64 } from '../hashing/xxh64.js';
import type { MetaStore } from '../store/meta-store.js';
import { type StoredFile, type UploadSessionRecord, chunkCountOf, packHashes } from '../store/records.js';
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
 * 3. A file under files/ no record describes is moved to lost+found/ (never deleted: it may be
 *    someone's data).
 * 4. A record whose file is gone is removed; one whose file has another size (or, with
 *    `verifyContent`, another SHA-256) is flagged damaged: listed, never served.
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
    return undefined;
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
        findings.push({ problem: 'unpublished-upload', name: session.name, detail: 'the verified file was published but not recorded', action: repair ? 'recorded it' : 'would record it' });
        outcome.published.add(session.name);
        if (repair) await store.commitFile(published, session);
      } else {
        findings.push({ problem: 'upload-without-data', name: session.name, detail: 'its partial file is missing', action: repair ? 'dropped the upload' : 'would drop the upload' });
        if (repair) await store.dropSession(session);
      }
      continue;
    }
    outcome.ownedPartials.add(session.id);
    if (session.touched < cutoff) {
      const idle = new Date(session.touched).toISOString();
      findings.push({ problem: 'expired-upload', name: session.name, detail: `untouched since ${idle}`, action: repair ? 'removed it' : 'would remove it' });
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
  const chunkCount = chunkCountOf(session.size, session.chunkSize);
  if (chunks.size !== chunkCount) return undefined;
  const xxh64 = await loadXxh64();
  let matches = true;
  const sha256 = await hashFile(path, session.chunkSize, (index, bytes) => {
    matches &&= chunks.get(index) === xxh64(bytes);
  });
  if (!matches) return undefined;
  const now = Date.now();
  const hashes = packHashes(Array.from({ length: chunkCount }, (_, index) => chunks.get(index)!));
  const created = store.file(session.name)?.created ?? now;
  return { name: session.name, size: session.size, sha256, chunkSize: session.chunkSize, hashes, created, modified: now };
}

/** SHA-256 of a file, read `chunkSize` bytes at a time; `eachChunk` sees every chunk in order. */
async function hashFile(path: string, chunkSize: number, eachChunk?: (index: number, bytes: Uint8Array) => void): Promise<string> {
  const sha256 = createHash('sha256');
  const buffer = Buffer.allocUnsafe(chunkSize);
  const handle = await open(path, 'r');
  try {
    for (let index = 0; ; index += 1) {
      let filled = 0;
      while (filled < chunkSize) {
        const { bytesRead } = await handle.read(buffer, filled, chunkSize - filled, index * chunkSize + filled);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
      if (filled === 0) break;
      const bytes = buffer.subarray(0, filled);
      sha256.update(bytes);
      eachChunk?.(index, bytes);
      if (filled < chunkSize) break;
    }
  } finally {
    await handle.close();
  }
  return sha256.digest('hex');
}

/** Rule 2. */
async function reconcilePartials(options: ReconcileOptions, ownedPartials: Set<string>, findings: Finding[]): Promise<void> {
  const { layout, repair } = options;
  for (const entry of await readdir(layout.partialDir)) {
    const id = entry.endsWith('.part') ? entry.slice(0, -'.part'.length) : undefined;
    if (id !== undefined && ownedPartials.has(id)) continue;
    findings.push({ problem: 'orphan-partial', name: entry, detail: 'no upload owns this partial file', action: repair ? 'removed it' : 'would remove it' });
    if (repair) await rm(join(layout.partialDir, entry), { recursive: true, force: true });
  }
}

/** Every regular file under `dir`, as a path relative to it with `/` separators. */
async function* filesUnder(dir: string, root = dir): AsyncGenerator<string> {
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* filesUnder(path, root);
    else yield relative(root, path).split(sep).join('/');
  }
}

/** Rule 3. */
async function reconcileOrphanFiles(options: ReconcileOptions, published: Set<string>, findings: Finding[]): Promise<void> {
  const { layout, store, repair } = options;
  for await (const name of filesUnder(layout.filesDir)) {
    if (store.file(name) || published.has(name)) continue;
    const target = join(layout.lostFoundDir, ...name.split('/'));
    const shown = relative(layout.root, target);
    findings.push({ problem: 'orphan-file', name, detail: 'no record describes this file', action: repair ? `moved it to ${shown}` : `would move it to ${shown}` });
    if (repair) await moveAside(join(layout.filesDir, ...name.split('/')), target);
  }
}

/** Renames `from` to `to`, or to `to.<time>` when something is there already. */
async function moveAside(from: string, to: string): Promise<void> {
  await mkdir(dirname(to), { recursive: true });
  const free = (await sizeOf(to)) === undefined ? to : `${to}.${Date.now()}`;
  await rename(from, free);
}

/** Rule 4. Returns how many records it checked. */
async function reconcileRecords(options: ReconcileOptions, published: Set<string>, findings: Finding[]): Promise<number> {
  const { layout, store, repair } = options;
  let checked = 0;
  for (const file of [...store.allFiles()]) {
    checked += 1;
    if (published.has(file.name) && !repair) continue; // rule 1 would replace this record
    if (file.damaged !== undefined) {
      findings.push({ problem: 'damaged', name: file.name, detail: file.damaged, action: 'left flagged: delete it or upload it again with --force' });
      continue;
    }
    const path = layout.filePath(file.name);
    const size = await sizeOf(path);
    if (size === undefined) {
      findings.push({ problem: 'missing-file', name: file.name, detail: 'its bytes are missing from the data directory', action: repair ? 'removed the record' : 'would remove the record' });
      if (repair) await store.deleteFile(file.name);
      continue;
    }
    let why: string | undefined;
    let problem: Finding['problem'] = 'size-mismatch';
    if (size !== file.size) why = `${size} bytes on disk, ${file.size} recorded`;
    else if (options.verifyContent && (await hashFile(path, file.chunkSize)) !== file.sha256) {
      problem = 'content-mismatch';
      why = 'its SHA-256 on disk is not the recorded one';
    }
    if (why === undefined) continue;
    findings.push({ problem, name: file.name, detail: why, action: repair ? 'flagged it damaged (not served)' : 'would flag it damaged (not served)' });
    if (repair) await store.markDamaged(file, why);
  }
  return checked;
}
