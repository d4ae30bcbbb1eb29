import { createHash } from 'node:crypto';
import { FerryError } from '../../protocol/errors.js';
import { xxh64ToHex } from '../../protocol/frames.js';
import type { StoredFile, TransferLogRecord, UploadSessionRecord } from '../../store/records.js';
import { fromSystemError } from '../../system-errors.js';
import { accountOf } from '../account-view.js';
import type { StagedWhole } from '../byte-store.js';
import { publishInPlace } from '../publish.js';
import type { ServerServices } from '../services.js';
import type { WholePutData, WholePutRequest } from '../whole-put-intake.js';
import { fileInfo } from './file-info.js';
import { publishLogged } from './put-end.js';
import { putRequestOf } from './put.js';
import type { Handler } from './types.js';

/**
 * A whole small file in one request (docs/protocol.md, "putWhole"): its bytes came in the frame
 * after the request. Checked (the frame's xxh64, the request's SHA-256), then stored under the
 * same rules as a put and published as a putEnd publishes: written and synced to a file of its
 * own, renamed into place, recorded in one commit with its log entry. Nothing is kept of a
 * whole put that fails: the client sends it again.
 */
export const putWhole: Handler<'putWhole'> = async (request, ctx) => {
  const data = ctx.takeWholePutData(request.id);
  if (!data) throw new FerryError('EINTERNAL', `the data of putWhole ${request.id} is missing`);
  const startedAt = Date.now();
  const account = accountOf(ctx);
  const name = account.stored(request.name);
  try {
    const file = await publishLogged(ctx, { name, startedAt, bytes: () => request.size }, (logEntry) => {
      const chunkHash = checkedChunkHash(ctx.services, request, data);
      const file = { size: request.size, fingerprint: `whole:${request.sha256}` };
      const put = putRequestOf(account, { name, file, force: request.force ?? false });
      return ctx.services.uploads.storeWhole(
        { ...put, file },
        (upload) => ctx.ownsUpload(upload),
        (staleSession) => storeAndPublish(ctx.services, request, data, { name, chunkHash, staleSession, logEntry }),
      );
    });
    return { result: fileInfo(file, account) };
  } finally {
    data.release();
  }
};

/** The xxh64 of the data, once it and the SHA-256 are found to be what the client said (ECHECKSUM if not). */
function checkedChunkHash(services: ServerServices, request: WholePutRequest, data: WholePutData): bigint {
  const xxh64 = services.workers.xxh64(data.bytes);
  if (data.xxh64 !== undefined && xxh64 !== data.xxh64) {
    throw new FerryError(
      'ECHECKSUM',
      `the data of ${request.name} has xxh64 ${xxh64ToHex(xxh64)}, its frame said ${xxh64ToHex(data.xxh64)}`,
    );
  }
  const sha256 = createHash('sha256').update(data.bytes).digest('hex');
  if (sha256 !== request.sha256) {
    throw new FerryError('ECHECKSUM', `sha256 mismatch: the client sent ${request.sha256}, the data has ${sha256}`);
  }
  return xxh64;
}

/**
 * Hands the data to the store (on disk: written and synced to a file of its own), then publishes
 * it. Whatever the store holds of a whole put that fails goes.
 */
async function storeAndPublish(
  services: ServerServices,
  request: WholePutRequest,
  data: WholePutData,
  stored: { name: string; chunkHash: bigint; staleSession: UploadSessionRecord | undefined; logEntry: () => TransferLogRecord },
): Promise<{ file: StoredFile; replacedBytes: number }> {
  const { bytes, descriptors, config } = services;
  if (!descriptors.take()) throw new FerryError('EBUSY', 'the server has too many files open; try again later');
  let staged: StagedWhole;
  try {
    staged = await bytes.stageWhole(data.bytes, () => data.release());
  } catch (error) {
    throw fromSystemError(error, `storing ${stored.name}`);
  } finally {
    descriptors.release();
  }
  try {
    return await publishInPlace(services, {
      bytes: staged,
      name: stored.name,
      size: request.size,
      sha256: request.sha256,
      chunkSize: config.chunkSizeBytes,
      chunkHashes: request.size === 0 ? [] : [stored.chunkHash],
      force: request.force ?? false,
      attributes: { mode: request.mode, mtime: request.mtime },
      session: stored.staleSession,
      logEntry: stored.logEntry,
    });
  } catch (error) {
    await staged.discard();
    throw fromSystemError(error, `storing ${stored.name}`);
  }
}
