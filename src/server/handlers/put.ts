import { randomUUID } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import { FerryError, fromSystemError } from '../../protocol/errors.js';
import { checkName } from '../../protocol/names.js';
import type { UploadSessionRecord } from '../../store/records.js';
import type { Connection } from '../connection.js';
import { NameClaim } from '../services.js';
import { UploadTransfer, forgetSessionHash } from '../upload-transfer.js';
import type { Handler } from './types.js';

/** [start, end) runs of the chunk indexes in `verified`, in order. */
export function verifiedRanges(verified: Iterable<number>): [number, number][] {
  const ranges: [number, number][] = [];
  for (const index of [...verified].sort((a, b) => a - b)) {
    const last = ranges.at(-1);
    if (last && last[1] === index) last[1] = index + 1;
    else ranges.push([index, index + 1]);
  }
  return ranges;
}

/**
 * Resume rule (docs/design.md, "Resume"): an upload finds its session again by name and matches
 * it on size, fingerprint and chunk size. A session that does not match, or that expired, is
 * dropped with its partial data and the upload starts over.
 */
async function findOrStartSession(connection: Connection, name: string, size: number, fingerprint: string): Promise<UploadSessionRecord> {
  const { store, layout, config } = connection.services;
  const now = Date.now();
  const existing = store.session(name);
  if (existing) {
    const matches = existing.size === size && existing.fingerprint === fingerprint && existing.chunkSize === config.chunkSizeBytes;
    const fresh = now - existing.touched < config.sessionTtlMs;
    if (matches && fresh && (await partialExists(layout.partialPath(existing.id)))) return existing;
    forgetSessionHash(connection.services, existing.id);
    await store.dropSession(existing);
    await rm(layout.partialPath(existing.id), { force: true });
  }
  const session: UploadSessionRecord = { id: randomUUID(), name, size, fingerprint, chunkSize: config.chunkSizeBytes, created: now, touched: now };
  try {
    const handle = await open(layout.partialPath(session.id), 'wx');
    try {
      await handle.truncate(size);
    } finally {
      await handle.close();
    }
  } catch (error) {
    await rm(layout.partialPath(session.id), { force: true });
    throw fromSystemError(error, `creating partial file for ${name}`);
  }
  await store.saveSession(session);
  return session;
}

async function partialExists(path: string): Promise<boolean> {
  try {
    await (await open(path, 'r')).close();
    return true;
  } catch {
    return false;
  }
}

/**
 * `name` may be created: it is not a stored file (unless replacing it is asked for), and it
 * neither is nor lies under one (a name cannot be both a file and a folder: `a` and `a/b`
 * exclude each other).
 */
function checkCanCreate(connection: Connection, name: string, force: boolean): void {
  const { store } = connection.services;
  if (store.file(name) && !force) throw new FerryError('EEXIST', `${name} already exists (use --force to replace it)`);
  const segments = name.split('/');
  for (let depth = 1; depth < segments.length; depth += 1) {
    const folder = segments.slice(0, depth).join('/');
    if (store.file(folder)) throw new FerryError('EEXIST', `${name}: ${folder} is a file, not a folder`);
  }
  if (store.listFiles({ prefix: name + '/', limit: 1 }).length > 0) throw new FerryError('EEXIST', `${name} is a folder of stored files`);
}

/**
 * One writer per name: claims `name` for this upload, waiting first if the same file (same size
 * and fingerprint) is still attached to another connection and not being finished. That is almost always the same client
 * back after a dropped link its old connection has not noticed yet: the old connection gets
 * `takeoverGraceMs` to read what is still in its socket buffer and notice the end by itself (so
 * those bytes are not sent twice); then it is aborted. Anything else is refused with EBUSY.
 *
 * The claim is taken in the same tick as the check that found the name free, so of several puts
 * racing for a name exactly one gets it.
 */
async function claimName(connection: Connection, name: string, size: number, fingerprint: string): Promise<NameClaim> {
  const { activeUploads, config } = connection.services;
  for (let active = activeUploads.get(name); active; active = activeUploads.get(name)) {
    if (active instanceof NameClaim) {
      // Another put of the name is being set up (often this client's own previous attempt, still
      // waiting for a takeover): see what it became.
      await active.settled;
      continue;
    }
    // Only the same file on a stale connection is taken over: not one on this connection, nor one being finished.
    if (
      active.session.size !== size ||
      active.session.fingerprint !== fingerprint ||
      active.finishing ||
      connection.uploads.get(active.stream) === active
    ) {
      throw new FerryError('EBUSY', `${name} is being uploaded by another client`);
    }
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'grace over'>((resolve) => {
      timer = setTimeout(() => resolve('grace over'), config.takeoverGraceMs);
    });
    const outcome = await Promise.race([active.released, graceOver]);
    clearTimeout(timer);
    if (outcome === 'grace over') {
      active.abort(new FerryError('EBUSY', `${name}: this upload was taken over by a newer connection`));
      await active.released;
    }
  }
  const claim = new NameClaim();
  activeUploads.set(name, claim);
  return claim;
}

/**
 * Limits, checked from the declared size before anything is written: the file size limit, and the
 * storage quota counting stored files and the declared sizes of every other unfinished upload,
 * saved or still being set up (a file this upload replaces, or this name's own earlier session,
 * do not count twice). On success the size is reserved in the same tick as the check; the caller
 * releases the reservation once the session is saved (or the put failed).
 */
function reserveQuota(connection: Connection, name: string, size: number): void {
  const { config, store, quotaReservations } = connection.services;
  if (size > config.maxFileSizeBytes) {
    throw new FerryError('EQUOTA', `${name}: ${size} bytes is over this server's file size limit of ${config.maxFileSizeBytes} bytes`);
  }
  const unfinished = new Map(store.sessionSizes());
  for (const [reservedName, reservedSize] of quotaReservations) unfinished.set(reservedName, reservedSize);
  unfinished.delete(name);
  const reserved = [...unfinished.values()].reduce((total, bytes) => total + bytes, 0);
  const used = store.stats().bytes - (store.file(name)?.size ?? 0) + reserved;
  if (used + size > config.maxStorageBytes) {
    throw new FerryError('EQUOTA', `${name}: ${size} more bytes would exceed this server's storage quota (${used} of ${config.maxStorageBytes} bytes in use)`);
  }
  quotaReservations.set(name, size);
}

export const put: Handler<'put'> = async (connection, request) => {
  const name = checkName(request.name);
  const { services } = connection;
  checkCanCreate(connection, name, request.force ?? false);
  const claim = await claimName(connection, name, request.size, request.fingerprint);
  try {
    // While this put waited, the upload it waited for may have finished the file.
    checkCanCreate(connection, name, request.force ?? false);
    reserveQuota(connection, name, request.size);
    const session = await findOrStartSession(connection, name, request.size, request.fingerprint);
    services.quotaReservations.delete(name); // the saved session counts from here on
    const verified = services.store.verifiedChunks(session.id);
    if (connection.ending) throw new FerryError('ECONNLOST', 'client went away');
    const stream = connection.allocateStream();
    const upload = new UploadTransfer(services, stream, session, verified, request.force ?? false, (error) => {
      connection.abortStream(stream, error);
      void connection.detachUpload(upload);
    });
    connection.uploads.set(stream, upload);
    services.activeUploads.set(name, upload);
    claim.settle();
    connection.log.info({ name, size: request.size, stream, resumedChunks: verified.size }, 'upload started');
    return {
      result: { stream, chunkSize: session.chunkSize, verified: verifiedRanges(verified.keys()), resumed: verified.size > 0 },
    };
  } catch (error) {
    services.quotaReservations.delete(name);
    if (services.activeUploads.get(name) === claim) services.activeUploads.delete(name);
    claim.settle();
    throw error;
  }
};
