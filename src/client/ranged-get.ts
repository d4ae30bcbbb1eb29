import { Agent as HttpAgent, type IncomingMessage, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { FerryError } from '../protocol/errors.js';
import { copyIntoShared } from './shared-copy.js';

/** Connections kept open to an object store between ranged GETs (idle ones do not keep the process alive). */
const agents = {
  'http:': new HttpAgent({ keepAlive: true, maxSockets: 16 }),
  'https:': new HttpsAgent({ keepAlive: true, maxSockets: 16 }),
};

/** A store not connected to in this long is given up (ETIMEDOUT): one that drops packets costs each download only this. */
const connectTimeoutMs = 5_000;
/** A read that has heard nothing from the store for this long is given up (ETIMEDOUT). */
const idleTimeoutMs = 30_000;

/**
 * Reads bytes [offset, offset + length) of the object at `url` (a signed URL: nothing is added to
 * it but the Range and If-Match headers) into `target` from its start. The object must still be
 * the version `etag` names: another is ECHANGED, as is a missing one. Any other failure (the store
 * unreachable, refusing the URL, sending too few bytes or too many) is EIO or ETIMEDOUT, with the
 * store's own word in the message. Settles only once nothing writes into `target` any more.
 * `onPiece` sees each piece as it lands, while it is still in the cache (to hash it).
 */
export function readRange(
  url: URL,
  etag: string,
  offset: number,
  length: number,
  target: Buffer,
  signal: AbortSignal,
  onPiece?: (piece: Uint8Array) => void,
): Promise<void> {
  const where = `${url.host}${url.pathname}`;
  return new Promise<void>((resolve, reject) => {
    let filled = 0;
    let failure: FerryError | undefined;
    const fail = (error: FerryError): void => {
      failure ??= error;
      request.destroy();
    };
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const agent = url.protocol === 'https:' ? agents['https:'] : agents['http:'];
    const request = send(url, {
      agent,
      signal,
      // Also bounds connecting (setTimeout below starts only once connected): a store that drops packets fails as fast.
      timeout: connectTimeoutMs,
      headers: { Range: `bytes=${offset}-${offset + length - 1}`, 'If-Match': etag },
    });
    request.setTimeout(idleTimeoutMs, () =>
      fail(
        new FerryError(
          'ETIMEDOUT',
          `${where}: no answer from the store in time (${connectTimeoutMs / 1000} s to connect, ${idleTimeoutMs / 1000} s between bytes)`,
        ),
      ),
    );
    request.on('response', (response: IncomingMessage) => {
      const status = response.statusCode ?? 0;
      if (status === 412 || status === 404) {
        fail(new FerryError('ECHANGED', `${where}: the object was replaced or deleted in the store (HTTP ${status})`));
        return;
      }
      if (status !== 206 && !(status === 200 && offset === 0)) {
        fail(new FerryError('EIO', `${where}: the store answered HTTP ${status} to a ranged read`));
        return;
      }
      response.on('data', (piece: Buffer) => {
        if (failure) return;
        if (filled + piece.byteLength > length) {
          fail(new FerryError('EIO', `${where}: the store sent more than the ${length} bytes asked for`));
          return;
        }
        copyIntoShared(target, piece, filled);
        filled += piece.byteLength;
        onPiece?.(piece);
      });
      response.on('end', () => {
        if (!failure && filled !== length)
          failure = new FerryError('EIO', `${where}: the store sent ${filled} of the ${length} bytes asked for`);
      });
    });
    request.on('error', (error: NodeJS.ErrnoException) => {
      const reason = signal.aborted ? new FerryError('ECANCELED', 'the read was called off') : undefined;
      failure ??= reason ?? new FerryError('EIO', `${where}: ${error.code ?? error.message}`, { cause: error });
    });
    request.end();
    // 'close' comes last, whatever happened: from then on nothing writes into `target`.
    request.on('close', () => {
      const response = (request as unknown as { res?: IncomingMessage }).res;
      if (!failure && (!response || !response.complete)) failure = new FerryError('EIO', `${where}: the read ended early`);
      if (failure) reject(failure);
      else resolve();
    });
  });
}
