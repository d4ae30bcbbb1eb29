import { randomUUID } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import { FerryError, fromSystemError } from '../../protocol/errors.js';
import { checkName } from '../../protocol/names.js';
import type { UploadSessionRecord } from '../../store/records.js';
import type { Connection } from '../connection.js';
import { UploadTransfer } from '../upload-transfer.js';
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

export const put: Handler<'put'> = async (connection, request) => {
  const name = checkName(request.name);
  const { services } = connection;
  if (services.store.file(name) && !request.force) throw new FerryError('EEXIST', `${name} already exists (use --force to replace it)`);
  const active = services.activeUploads.get(name);
  if (active?.detached) await active.detached;
  else if (active) throw new FerryError('EBUSY', `${name} is being uploaded by another client`);
  if (services.activeUploads.has(name)) throw new FerryError('EBUSY', `${name} is being uploaded by another client`);
  // Claim the name before the first await below, so two clients cannot both start a session.
  const placeholder = Symbol('claim');
  services.activeUploads.set(name, placeholder as unknown as UploadTransfer);
  try {
    const session = await findOrStartSession(connection, name, request.size, request.fingerprint);
    const verified = services.store.verifiedChunks(session.id);
    const stream = connection.allocateStream();
    const upload = new UploadTransfer(services, stream, session, verified, (error) => connection.abortStream(stream, error));
    connection.uploads.set(stream, upload);
    services.activeUploads.set(name, upload);
    connection.log.info({ name, size: request.size, stream, resumedChunks: verified.size }, 'upload started');
    return {
      result: { stream, chunkSize: session.chunkSize, verified: verifiedRanges(verified.keys()), resumed: verified.size > 0 },
    };
  } catch (error) {
    if (services.activeUploads.get(name) === (placeholder as unknown)) services.activeUploads.delete(name);
    throw error;
  }
};
