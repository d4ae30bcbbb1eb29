import { localCodec } from '../../compression/codecs.js';
import { codecAvailability } from '../../compression/negotiation.js';
import { FerryError } from '../../protocol/errors.js';
import { type StoredFile, chunkCountOf } from '../../store/records.js';
import { accountOf } from '../account-view.js';
import { storedFile } from './stat.js';
import { withFreshRecords } from './fresh-records.js';
import type { Handled, Handler } from './types.js';
import type { RequestOf } from '../../protocol/messages.js';
import type { RequestContext } from '../request-context.js';

export const get: Handler<'get'> = (request, ctx) =>
  withFreshRecords(
    ctx,
    (catalog) => catalog.refreshOne(accountOf(ctx).stored(request.name)),
    () => getNow(request, ctx),
  );

/** The stored file `name` as a download may have it: not damaged, and the content `sha256` says if given. */
export function servableFile(ctx: RequestContext, name: string, sha256: string | undefined): StoredFile {
  const file = storedFile(ctx, name);
  if (file.damaged !== undefined) {
    throw new FerryError('ECORRUPT', `${file.name} is damaged and not served (${file.damaged}); delete it or upload it again with --force`);
  }
  if (sha256 !== undefined && sha256 !== file.sha256) {
    throw new FerryError('ECHANGED', `${file.name} changed on the server since the download began`);
  }
  return file;
}

function getNow(request: RequestOf<'get'>, ctx: RequestContext): Handled<'get'> {
  const file = servableFile(ctx, request.name, request.sha256);
  const { buffers } = ctx.services;
  if (file.chunkSize > buffers.bufferBytes) {
    throw new FerryError(
      'ECONFIG',
      `${file.name} was stored with ${file.chunkSize}-byte chunks; serving it needs --chunk-size of at least that`,
    );
  }
  const chunkCount = chunkCountOf(file.size, file.chunkSize);
  const fromChunk = request.fromChunk ?? 0;
  if (fromChunk > chunkCount) throw new FerryError('EPROTO', `fromChunk ${fromChunk} is past the last chunk (${chunkCount})`);
  const toChunk = Math.min(request.toChunk ?? chunkCount, chunkCount);
  if (toChunk < fromChunk) throw new FerryError('EPROTO', `toChunk ${toChunk} is before fromChunk ${fromChunk}`);
  if (request.pack && !localCodec(request.pack.codec)) {
    throw new FerryError('ECONFIG', `this server has no ${request.pack.codec} codec (${codecAvailability(request.pack.codec)})`);
  }
  const download = ctx.openDownload(file, { from: fromChunk, to: toChunk }, request.pack, (ended, error) => {
    const result = error?.code ?? 'ok';
    const time = Date.now();
    void ctx.logTransfer({ time, op: 'download', name: file.name, bytes: ended.bytesSent, durationMs: time - ended.startedAt, result });
  });
  return {
    result: {
      stream: download.stream,
      name: accountOf(ctx).shown(file.name),
      size: file.size,
      sha256: file.sha256,
      chunkSize: file.chunkSize,
      chunkCount,
      fromChunk,
      toChunk,
    },
    afterReply: () => download.start(),
  };
}
