import { FerryError } from '../../protocol/errors.js';
import { chunkCountOf } from '../../store/records.js';
import { DownloadTransfer } from '../download-transfer.js';
import { storedFile } from './stat.js';
import type { Handler } from './types.js';

export const get: Handler<'get'> = async (connection, request) => {
  const file = storedFile(connection, request.name);
  if (file.damaged !== undefined) throw new FerryError('ECORRUPT', `${file.name} is damaged and not served (${file.damaged}); delete it or upload it again with --force`);
  if (request.sha256 !== undefined && request.sha256 !== file.sha256) {
    throw new FerryError('ECHANGED', `${file.name} changed on the server since the download began`);
  }
  const { buffers } = connection.services;
  if (file.chunkSize > buffers.bufferBytes) {
    throw new FerryError('ENOTYET', `${file.name} was stored with ${file.chunkSize}-byte chunks; serving it needs --chunk-size of at least that`);
  }
  const chunkCount = chunkCountOf(file.size, file.chunkSize);
  const fromChunk = request.fromChunk ?? 0;
  if (fromChunk > chunkCount) throw new FerryError('EPROTO', `fromChunk ${fromChunk} is past the last chunk (${chunkCount})`);
  const stream = connection.allocateStream();
  const { store } = connection.services;
  const transfer = new DownloadTransfer(connection.services, connection, stream, file, fromChunk, (error) => {
    connection.downloads.delete(stream);
    connection.refreshTimeout();
    if (error && error.code !== 'ECONNLOST') connection.abortStream(stream, error);
    const entry = { time: Date.now(), client: connection.clientAddress, op: 'download' as const, name: file.name };
    void store.appendLog({ ...entry, bytes: transfer.bytesSent, durationMs: Date.now() - transfer.startedAt, result: error?.code ?? 'ok' });
  });
  return {
    result: { stream, name: file.name, size: file.size, sha256: file.sha256, chunkSize: file.chunkSize, chunkCount, fromChunk },
    afterReply: () => connection.startDownload(transfer),
  };
};
