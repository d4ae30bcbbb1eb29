import { type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { type Socket, connect as netConnect } from 'node:net';
import { FerryError } from '../protocol/errors.js';
import { RangeResponseParser } from './range-response.js';
import { copyIntoShared } from '../shared-copy.js';
import { WaitQueue } from '../wait-queue.js';

/** Connections kept open to an object store over https between ranged GETs (idle ones do not keep the process alive); at most 64 at once, as the SDK client of a server on the store. */
const httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 64 });

/** A store not connected to in this long is given up (ETIMEDOUT): one that drops packets costs each download only this. */
const connectTimeoutMs = 5_000;
/** A read that has heard nothing from the store for this long is given up (ETIMEDOUT). */
const idleTimeoutMs = 30_000;
/** Clear-text connections in use to one store at once, at most (as the https agent's sockets): more reads wait their turn. */
export const connectionsPerStore = 64;
/** Clear-text connections kept open to one store between reads, at most; each for this long. */
const idleConnectionsPerStore = 16;
const keepIdleMs = 15_000;
/** What each clear-text connection to a store reads into, reused: as the connections to a Ferry server do. */
const readBufferBytes = 256 * 1024;

/**
 * Reads bytes [offset, offset + length) of the object at `url` (a signed URL: nothing is added to
 * it but the Range and If-Match headers) into `target` from its start. The object must still be
 * the version `etag` names: another is ECHANGED, as is a missing one. Any other failure (the store
 * unreachable, refusing the URL, sending too few bytes or too many) is EIO or ETIMEDOUT, with the
 * store's own word in the message. Settles only once nothing writes into `target` any more.
 * `onPiece` sees each piece as it lands, while it is still in the cache (to hash it).
 *
 * Over http, the connection reads into one buffer of its own, reused (as a Ferry connection
 * does; Node's HTTP client allocates 64 KiB per socket read and half the CPU of a direct download
 * went to it, its parser and the garbage: docs/perf-notes.md); over https, Node's client.
 */
export async function readRange(
  url: URL,
  etag: string,
  offset: number,
  length: number,
  target: Buffer,
  signal?: AbortSignal,
  onPiece?: (piece: Uint8Array) => void,
): Promise<void> {
  // Sent as a header line as it is: nothing that could end the line or the head.
  if (!/^[\x21-\x7e]+$/u.test(etag))
    throw new FerryError('EPROTO', `the object's ETag the server gave is not a header value: ${JSON.stringify(etag)}`);
  if (length === 0) return;
  const read: RangeRead = { url, etag, offset, length, target, signal, onPiece, where: `${url.host}${url.pathname}` };
  if (url.protocol === 'https:') return readOverHttps(read);
  const slots = await connectionSlotAt(url.host, signal);
  try {
    const pooled = idleConnectionTo(url.host);
    if (pooled) {
      try {
        return await readOn(pooled, read);
      } catch (error) {
        if (!(error instanceof StaleConnection)) throw error;
        // The store closed it while it sat idle, before reading the request: a new one reads it.
      }
    }
    return await readOn(new StoreConnection(url), read);
  } finally {
    slots.release();
  }
}

/** Per store: clear-text connections in use, and the reads waiting for one. */
const connectionSlots = new Map<string, { inUse: number; waiting: WaitQueue<void>; release(): void }>();

/** A place among the `connectionsPerStore` connections to `host`, once one is free (ECANCELED if `signal` calls it off first). */
async function connectionSlotAt(host: string, signal: AbortSignal | undefined): Promise<{ release(): void }> {
  let slots = connectionSlots.get(host);
  if (!slots) {
    const made = {
      inUse: 0,
      waiting: new WaitQueue<void>(),
      // Handed straight to the longest waiter, if any.
      release: () => {
        if (made.waiting.serve()) return;
        made.inUse -= 1;
        if (made.inUse === 0) connectionSlots.delete(host);
      },
    };
    slots = made;
    connectionSlots.set(host, slots);
  }
  if (slots.inUse < connectionsPerStore) {
    slots.inUse += 1;
    return slots;
  }
  const { waiting } = slots;
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      cancel();
      reject(new FerryError('ECANCELED', 'the read was called off'));
    };
    const cancel = waiting.wait(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    });
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
  });
  return slots;
}

interface RangeRead {
  url: URL;
  etag: string;
  offset: number;
  length: number;
  target: Buffer;
  /** What calls the read off, if anything may. */
  signal: AbortSignal | undefined;
  onPiece: ((piece: Uint8Array) => void) | undefined;
  /** The object, for messages. */
  where: string;
}

/**
 * A ranged read that failed, saying whether the store was reached at all (connected to): one
 * that was not is unreachable from here, which a caller may remember; one that was failed this
 * read (a cut, a stall, an error of the store's), which another try may not.
 */
export class StoreReadError extends FerryError {
  readonly reached: boolean;

  constructor(code: ConstructorParameters<typeof FerryError>[0], message: string, reached: boolean, options?: ErrorOptions) {
    super(code, message, options);
    this.reached = reached;
  }
}

/**
 * The error of a status that is not the range asked for; undefined for the range. A refused URL
 * (401, 403) is ECONFIG: the signature, the clock or the credentials, none of which another try mends.
 */
function statusFailure(status: number, { offset, where }: RangeRead): FerryError | undefined {
  if (status === 412 || status === 404)
    return new StoreReadError('ECHANGED', `${where}: the object was replaced or deleted in the store (HTTP ${status})`, true);
  if (status === 401 || status === 403) {
    return new StoreReadError(
      'ECONFIG',
      `${where}: the store refused the signed URL (HTTP ${status}: a clock out of step, or credentials it does not take)`,
      true,
    );
  }
  if (status !== 206 && !(status === 200 && offset === 0))
    return new StoreReadError('EIO', `${where}: the store answered HTTP ${status} to a ranged read`, true);
  return undefined;
}

function timedOut({ where }: RangeRead, connected: boolean): FerryError {
  return connected
    ? new StoreReadError('ETIMEDOUT', `${where}: the store sent nothing for ${idleTimeoutMs / 1000} s`, true)
    : new StoreReadError('ETIMEDOUT', `${where}: the store could not be connected to in ${connectTimeoutMs / 1000} s`, false);
}

/** A kept-alive connection failed before the store answered anything: it had closed it meanwhile. */
class StaleConnection extends Error {}

/** What reads the response on a connection now. */
interface ResponseReader {
  bytes(piece: Uint8Array): void;
  closed(error: NodeJS.ErrnoException | undefined): void;
  timedOut(connected: boolean): void;
}

/** Idle clear-text connections, by the store's host:port. */
const idleConnections = new Map<string, StoreConnection[]>();

function idleConnectionTo(host: string): StoreConnection | undefined {
  const idle = idleConnections.get(host);
  for (let connection = idle?.pop(); connection; connection = idle?.pop()) {
    if (connection.socket.destroyed) continue;
    connection.socket.ref();
    connection.socket.setTimeout(idleTimeoutMs);
    return connection;
  }
  return undefined;
}

/** A clear-text connection to a store, reading into a buffer of its own for whichever response it carries now. */
class StoreConnection {
  readonly socket: Socket;
  readonly host: string;
  reader: ResponseReader | undefined;
  /** It carried a response before (so the store may have closed it since). */
  reused = false;
  /** The TCP connection is up. */
  connected = false;
  #error: NodeJS.ErrnoException | undefined;

  constructor(url: URL) {
    this.host = url.host;
    this.socket = netConnect({
      host: url.hostname.replace(/^\[(.*)\]$/u, '$1'),
      port: Number(url.port || 80),
      noDelay: true,
      onread: {
        buffer: Buffer.allocUnsafe(readBufferBytes),
        callback: (bytes: number, buffer: Uint8Array) => {
          this.reader?.bytes(buffer.subarray(0, bytes));
          return true;
        },
      },
    });
    this.socket.setTimeout(connectTimeoutMs);
    this.socket.once('connect', () => {
      this.connected = true;
      this.socket.setTimeout(idleTimeoutMs);
    });
    this.socket.on('error', (error: NodeJS.ErrnoException) => (this.#error ??= error));
    this.socket.on('timeout', () => (this.reader ? this.reader.timedOut(this.connected) : this.socket.destroy()));
    this.socket.on('close', () => {
      this.reader?.closed(this.#error);
      const idle = idleConnections.get(this.host);
      if (idle?.includes(this)) idle.splice(idle.indexOf(this), 1);
    });
  }

  /** Done with a response it read whole: kept for the next read, if it may carry one. */
  release(keepAlive: boolean): void {
    this.reader = undefined;
    const idle = idleConnections.get(this.host) ?? [];
    if (!keepAlive || idle.length >= idleConnectionsPerStore) {
      this.socket.destroy();
      return;
    }
    this.reused = true;
    this.socket.setTimeout(keepIdleMs);
    this.socket.unref();
    idle.push(this);
    idleConnections.set(this.host, idle);
  }
}

/** Sends the ranged GET on `connection` and reads its response into the target. */
function readOn(connection: StoreConnection, read: RangeRead): Promise<void> {
  const { url, etag, offset, length, target, signal, onPiece, where } = read;
  return new Promise<void>((resolve, reject) => {
    let filled = 0;
    let keepAlive = false;
    let settled = false;
    const finish = (failure?: Error): void => {
      if (settled) return;
      settled = true;
      connection.reader = undefined; // from here on, nothing writes into `target`
      signal?.removeEventListener('abort', onAbort);
      if (failure) {
        connection.socket.destroy();
        reject(failure);
      } else {
        connection.release(keepAlive);
        resolve();
      }
    };
    const onAbort = (): void => finish(new FerryError('ECANCELED', 'the read was called off'));
    const response = new RangeResponseParser(
      (head) => {
        const failure = statusFailure(head.status, read);
        if (failure) throw failure;
        if (head.bodyBytes !== length) {
          throw new StoreReadError(
            'EIO',
            `${where}: the store is sending ${head.bodyBytes ?? 'an unsaid number of'} bytes for the ${length} asked for`,
            true,
          );
        }
        keepAlive = head.keepAlive;
        return length;
      },
      (piece) => {
        copyIntoShared(target, piece, filled);
        filled += piece.byteLength;
        onPiece?.(piece);
      },
    );
    connection.reader = {
      bytes(piece) {
        try {
          response.push(piece);
        } catch (error) {
          finish(error instanceof FerryError ? error : new StoreReadError('EIO', `${where}: ${String(error)}`, true));
          return;
        }
        if (response.complete) finish();
      },
      closed(error) {
        if (connection.reused && !response.started) return finish(new StaleConnection());
        const why = error?.code ?? error?.message;
        finish(
          new StoreReadError('EIO', `${where}: ${why ?? `the read ended early (${filled} of ${length} bytes)`}`, connection.connected, {
            cause: error,
          }),
        );
      },
      timedOut: (connected) => finish(timedOut(read, connected)),
    };
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    connection.socket.write(
      `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nRange: bytes=${offset}-${offset + length - 1}\r\nIf-Match: ${etag}\r\n\r\n`,
    );
  });
}

/** The same read over https, with Node's client. */
function readOverHttps(read: RangeRead): Promise<void> {
  const { url, etag, offset, length, target, signal, onPiece, where } = read;
  return new Promise<void>((resolve, reject) => {
    let filled = 0;
    let failure: FerryError | undefined;
    /** Connected to the store (a kept-alive socket is, from the start). */
    let connected = false;
    const fail = (error: FerryError): void => {
      failure ??= error;
      request.destroy();
    };
    const request = httpsRequest(url, {
      agent: httpsAgent,
      signal,
      // Also bounds connecting (setTimeout below starts only once connected): a store that drops packets fails as fast.
      timeout: connectTimeoutMs,
      headers: { Range: `bytes=${offset}-${offset + length - 1}`, 'If-Match': etag },
    });
    request.on('socket', (socket) => {
      if (!socket.connecting) connected = true;
      else socket.once('connect', () => (connected = true));
    });
    request.setTimeout(idleTimeoutMs, () => fail(timedOut(read, connected)));
    request.on('response', (response: IncomingMessage) => {
      const refused = statusFailure(response.statusCode ?? 0, read);
      if (refused) return fail(refused);
      response.on('data', (piece: Buffer) => {
        if (failure) return;
        if (filled + piece.byteLength > length)
          return fail(new StoreReadError('EIO', `${where}: the store sent more than the ${length} bytes asked for`, true));
        copyIntoShared(target, piece, filled);
        filled += piece.byteLength;
        onPiece?.(piece);
      });
      response.on('end', () => {
        if (!failure && filled !== length)
          failure = new StoreReadError('EIO', `${where}: the store sent ${filled} of the ${length} bytes asked for`, true);
      });
    });
    request.on('error', (error: NodeJS.ErrnoException) => {
      const reason = signal?.aborted ? new FerryError('ECANCELED', 'the read was called off') : undefined;
      failure ??= reason ?? new StoreReadError('EIO', `${where}: ${error.code ?? error.message}`, connected, { cause: error });
    });
    request.end();
    // 'close' comes last, whatever happened: from then on nothing writes into `target`.
    request.on('close', () => {
      const response = (request as unknown as { res?: IncomingMessage }).res;
      if (!failure && (!response || !response.complete)) failure = new StoreReadError('EIO', `${where}: the read ended early`, connected);
      if (failure) reject(failure);
      else resolve();
    });
  });
}
