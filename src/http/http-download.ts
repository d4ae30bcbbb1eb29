import type { IncomingMessage, ServerResponse } from 'node:http';
import { basename } from 'node:path';
import contentDisposition from 'content-disposition';
import parseRange from 'range-parser';
import { FerryError } from '../protocol/errors.js';
import { Allowance } from '../server/allowance.js';
import { type DownloadPort, DownloadTransfer } from '../server/download-transfer.js';
import { storedFile } from '../server/handlers/stat.js';
import type { StoredFile } from '../store/records.js';
import { sendError } from './http-errors.js';
import type { HttpRequestScope } from './http-scope.js';

/** Bytes `start` to `end` of a file, both included. */
interface ByteRange {
  start: number;
  end: number;
}

/**
 * `GET` and `HEAD /files/NAME`: the stored file as an HTTP download that `curl -C -`, `wget -c`
 * and browsers resume (one `Range`, `If-Range`), identified by its SHA-256 (strong `ETag`,
 * `Repr-Digest`). The bytes come through the same DownloadTransfer as a Ferry `get`: each chunk
 * is checked against its recorded XXH64 before it is sent, within the same chunk budget. A chunk
 * that does not check out cuts the response (the client sees a short body, never wrong bytes) and
 * flags the file damaged.
 */
export function serveFile(scope: HttpRequestScope, request: IncomingMessage, response: ServerResponse, name: string): void {
  const file = storedFile(scope, name);
  if (file.damaged !== undefined) {
    throw new FerryError('ECORRUPT', `${name} is damaged and not served (${file.damaged}); delete it or upload it again`);
  }
  const { buffers } = scope.services;
  if (file.chunkSize > buffers.bufferBytes) {
    throw new FerryError(
      'ECONFIG',
      `${name} was stored with ${file.chunkSize}-byte chunks; serving it needs --chunk-size of at least that`,
    );
  }
  const etag = `"${file.sha256}"`;
  const lastModified = new Date(file.modified).toUTCString();
  const headers: Record<string, string | number> = {
    'Content-Type': 'application/octet-stream',
    'Content-Disposition': contentDisposition(basename(name)),
    ETag: etag,
    'Last-Modified': lastModified,
    'Accept-Ranges': 'bytes',
    'Repr-Digest': `sha-256=:${Buffer.from(file.sha256, 'hex').toString('base64')}:`,
    'Cache-Control': 'private, no-cache',
    'X-Content-Type-Options': 'nosniff',
  };
  if (notModified(request, etag)) {
    response.writeHead(304, headers);
    return void response.end();
  }
  const range = requestedRange(request, file, etag, lastModified);
  if (range === 'unsatisfiable') {
    const error = new FerryError('ERANGE', `the range ${request.headers.range ?? ''} is not in ${name} (${file.size} bytes)`);
    return sendError(response, error, { 'Content-Range': `bytes */${file.size}` });
  }
  const bytes = range ?? { start: 0, end: file.size - 1 };
  const length = bytes.end - bytes.start + 1;
  headers['Content-Length'] = length;
  if (range) headers['Content-Range'] = `bytes ${range.start}-${range.end}/${file.size}`;
  response.writeHead(range ? 206 : 200, headers);
  if (request.method === 'HEAD' || length === 0) return void response.end();
  sendBytes(scope, response, file, bytes);
}

/** `If-None-Match` naming this content: the client has it (GET and HEAD only reach here). */
function notModified(request: IncomingMessage, etag: string): boolean {
  const match = request.headers['if-none-match'];
  if (match === undefined) return false;
  return match.trim() === '*' || match.split(',').some((tag) => tag.trim().replace(/^W\//u, '') === etag);
}

/**
 * The one range a request asks for, when it asks for one and its `If-Range` (if any) still names
 * this content; undefined means the whole file. Several ranges, or a malformed header, are
 * answered with the whole file, as RFC 9110 allows; a range past the end is 'unsatisfiable'.
 */
function requestedRange(
  request: IncomingMessage,
  file: StoredFile,
  etag: string,
  lastModified: string,
): ByteRange | 'unsatisfiable' | undefined {
  const header = request.headers.range;
  if (header === undefined || request.method !== 'GET') return undefined;
  const ifRange = request.headers['if-range'];
  // The strong comparison: an ETag must be this one; a date must be exactly the content's time.
  if (ifRange !== undefined && String(ifRange).trim() !== etag && String(ifRange).trim() !== lastModified) return undefined;
  const ranges = parseRange(file.size, header, { combine: true });
  if (ranges === -1) return 'unsatisfiable';
  if (ranges === -2 || ranges.type !== 'bytes' || ranges.length !== 1) return undefined;
  const [only] = ranges;
  return only && { start: only.start, end: only.end };
}

/** Streams `bytes` of the file through a DownloadTransfer of the chunks that hold them; logs the transfer. */
function sendBytes(scope: HttpRequestScope, response: ServerResponse, file: StoredFile, bytes: ByteRange): void {
  const port = new ResponsePort(scope, response, file.chunkSize, bytes);
  const chunks = { from: Math.floor(bytes.start / file.chunkSize), to: Math.floor(bytes.end / file.chunkSize) + 1 };
  const download = new DownloadTransfer(scope.services, port, 0, file, chunks, (error) => {
    const time = Date.now();
    if (error) {
      scope.log.warn({ err: error, file: file.name }, 'http download cut');
      response.destroy();
    } else {
      response.end();
    }
    void scope.logTransfer({
      time,
      op: 'download',
      name: file.name,
      bytes: port.bytesSent,
      durationMs: time - download.startedAt,
      result: error?.code ?? 'ok',
    });
  });
  response.once('close', () => {
    port.closed();
    download.stop(new FerryError('ECONNLOST', 'the client went away'));
  });
  download.start();
}

/**
 * Where a DownloadTransfer's chunks go for an HTTP response: the part of each chunk inside the
 * requested range is written to the response. Chunk buffers come from the global budget within
 * an allowance per response, as they do per Ferry connection; a buffer returns when its bytes
 * are flushed, or when the response closes (a write cut by a closing socket may never call back).
 */
class ResponsePort implements DownloadPort {
  bytesSent = 0;
  readonly #scope: HttpRequestScope;
  readonly #response: ServerResponse;
  readonly #chunkSize: number;
  readonly #bytes: ByteRange;
  readonly #allowance: Allowance;
  /** Buffers written to the response whose bytes have not been flushed yet, with their release. */
  readonly #unflushed = new Map<SharedArrayBuffer, () => void>();
  #drainWaiters: (() => void)[] = [];
  #waitingForBuffers = 0;

  constructor(scope: HttpRequestScope, response: ServerResponse, chunkSize: number, bytes: ByteRange) {
    this.#scope = scope;
    this.#response = response;
    this.#chunkSize = chunkSize;
    this.#bytes = bytes;
    this.#allowance = new Allowance(scope.services.config.maxInflightChunksPerConnection);
    response.on('drain', () => this.#drained());
  }

  acquireDownloadBuffer(take: (buffer: SharedArrayBuffer) => void): () => void {
    let stage: 'allowance' | 'buffer' | 'held' = 'allowance';
    let cancelBufferWait = (): void => {};
    const cancelAllowanceWait = this.#allowance.acquire(() => {
      stage = 'buffer';
      this.#bufferWaits(+1);
      cancelBufferWait = this.#scope.services.buffers.acquire((buffer) => {
        stage = 'held';
        this.#bufferWaits(-1);
        take(buffer);
      });
    });
    return () => {
      if (stage === 'allowance') cancelAllowanceWait();
      if (stage !== 'buffer') return;
      cancelBufferWait();
      this.#bufferWaits(-1);
      this.#allowance.release();
    };
  }

  /**
   * While the response waits for the global budget to give it a buffer, the server is the one
   * holding it up: the connection's stall timeout does not run (as on the Ferry side).
   */
  #bufferWaits(change: number): void {
    this.#waitingForBuffers += change;
    const socket = this.#response.socket;
    if (!socket || socket.destroyed) return;
    if (change > 0 && this.#waitingForBuffers === 1) socket.setTimeout(0);
    if (change < 0 && this.#waitingForBuffers === 0) socket.setTimeout(this.#scope.services.config.stallTimeoutMs);
  }

  releaseDownloadBuffer(buffer: SharedArrayBuffer): void {
    this.#scope.services.buffers.release(buffer);
    this.#allowance.release();
  }

  sendChunk(_download: DownloadTransfer, index: number, payload: Buffer, flushed: () => void): boolean {
    const chunkStart = index * this.#chunkSize;
    const from = Math.max(0, this.#bytes.start - chunkStart);
    const to = Math.min(payload.length, this.#bytes.end + 1 - chunkStart);
    const buffer = payload.buffer as SharedArrayBuffer;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.#unflushed.delete(buffer);
      flushed();
    };
    this.#unflushed.set(buffer, release);
    this.bytesSent += to - from;
    return this.#response.write(payload.subarray(from, to), release);
  }

  whenDrained(callback: () => void): void {
    this.#drainWaiters.push(callback);
  }

  /** The response closed: its unflushed buffers go back, and whoever waits for a drain stops waiting. */
  closed(): void {
    for (const release of [...this.#unflushed.values()]) release();
    this.#drained();
  }

  #drained(): void {
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const waiter of waiters) waiter();
  }
}
