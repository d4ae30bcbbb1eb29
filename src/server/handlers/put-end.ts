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
  const name = upload.session.name;
  const logEntry = (result: string): Omit<TransferLogRecord, 'client' | 'user'> => {
    const time = Date.now();
    return { time, op: 'upload', name, bytes: upload.bytesReceived, durationMs: time - upload.startedAt, result };
  };
  try {
    let published: Omit<TransferLogRecord, 'client' | 'user'> | undefined;
    const file = await upload.finish(sha256, size, () => ({ ...(published = logEntry('ok')), ...scope.who }), attributes);
    if (published) scope.reportTransfer(published);
    return file;
  } catch (error) {
    await scope.logTransfer(logEntry(error instanceof FerryError ? error.code : 'EINTERNAL'));
    throw accountOf(scope).inOwnNames(error);
  } finally {
    await upload.release();
  }
}
