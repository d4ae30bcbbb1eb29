import { FerryError } from '../../protocol/errors.js';
import type { TransferLogRecord } from '../../store/records.js';
import { accountOf } from '../account-view.js';
import { fileInfo } from './file-info.js';
import type { Handler } from './types.js';

export const putEnd: Handler<'putEnd'> = async (request, ctx) => {
  // From here on, chunks for this stream are a protocol error: the file is being verified.
  const upload = ctx.takeUpload(request.stream);
  if (!upload) throw new FerryError('ENOENT', `no upload on stream ${request.stream}`);
  const name = upload.session.name;
  const logEntry = (result: string): Omit<TransferLogRecord, 'client' | 'user'> => {
    const time = Date.now();
    return { time, op: 'upload', name, bytes: upload.bytesReceived, durationMs: time - upload.startedAt, result };
  };
  try {
    // On success the log entry goes into the same LMDB commit as the file's record.
    let published: Omit<TransferLogRecord, 'client' | 'user'> | undefined;
    const file = await upload.finish(request.sha256, request.size, () => ({ ...(published = logEntry('ok')), ...ctx.who }));
    if (published) ctx.reportTransfer(published);
    return { result: fileInfo(file, accountOf(ctx)) };
  } catch (error) {
    await ctx.logTransfer(logEntry(error instanceof FerryError ? error.code : 'EINTERNAL'));
    throw accountOf(ctx).inOwnNames(error);
  } finally {
    // Whatever the outcome, this attachment is over; the session (if kept) can be resumed.
    await upload.release();
  }
};
