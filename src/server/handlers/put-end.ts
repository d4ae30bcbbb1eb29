import { FerryError } from '../../protocol/errors.js';
import type { FileAttributes, StoredFile, TransferLogRecord } from '../../store/records.js';
import { accountOf } from '../account-view.js';
import type { RequestScope } from '../request-context.js';
import type { UploadTransfer } from '../upload-transfer.js';
import { fileInfo } from './file-info.js';
import type { Handler } from './types.js';

export const putEnd: Handler<'putEnd'> = async (request, ctx) => {
  // From here on, chunks for this stream are a protocol error: the file is being verified.
  const upload = ctx.takeUpload(request.stream);
  if (!upload) throw new FerryError('ENOENT', `no upload on stream ${request.stream}`);
  const file = await finishUpload(ctx, upload, request.sha256, request.size, { mode: request.mode, mtime: request.mtime });
  return { result: fileInfo(file, accountOf(ctx)) };
};

/**
 * Verifies and publishes an upload whose bytes are all in (a Ferry putEnd, a tus upload's last
 * PATCH): on success its transfer log entry goes into the same LMDB commit as the file's record;
 * a failure is logged and thrown in the account's names. Either way the upload lets go of its
 * name (a session that was kept can be resumed).
 */
export async function finishUpload(
  scope: RequestScope,
  upload: UploadTransfer,
  sha256: string | undefined,
  size: number | undefined,
  attributes: FileAttributes = {},
): Promise<StoredFile> {
  const logged = { name: upload.session.name, startedAt: upload.startedAt, bytes: () => upload.bytesReceived };
  try {
    return await publishLogged(scope, logged, (logEntry) => upload.finish(sha256, size, logEntry, attributes));
  } finally {
    await upload.release();
  }
}

/**
 * Runs the publish of an upload (a putEnd, a tus upload's last PATCH, a whole put) with its
 * transfer log entry: `publish` puts the entry it is given into the file's LMDB commit, and it is
 * reported on the console once that is done; a failure is logged on its own and thrown in the
 * account's names.
 */
export async function publishLogged(
  scope: RequestScope,
  upload: { name: string; startedAt: number; bytes: () => number },
  publish: (logEntry: () => TransferLogRecord) => Promise<StoredFile>,
): Promise<StoredFile> {
  const logEntry = (result: string): Omit<TransferLogRecord, 'client' | 'user'> => {
    const time = Date.now();
    return { time, op: 'upload', name: upload.name, bytes: upload.bytes(), durationMs: time - upload.startedAt, result };
  };
  try {
    let published: Omit<TransferLogRecord, 'client' | 'user'> | undefined;
    const file = await publish(() => ({ ...(published = logEntry('ok')), ...scope.who }));
    if (published) scope.reportTransfer(published);
    return file;
  } catch (error) {
    // Written with the next batch of log entries (MetaStore.appendLog): a `log` request waits for it, the reply does not.
    void scope.logTransfer(logEntry(error instanceof FerryError ? error.code : 'EINTERNAL'));
    throw accountOf(scope).inOwnNames(error);
  }
}
