import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { FrameDecoder, type FrameSink } from '../protocol/decoder.js';
import { encodeControl } from '../protocol/encoder.js';
import { FerryError, errorFields } from '../protocol/errors.js';
import type { ChunkHeader } from '../protocol/frames.js';
import { type Request, type ServerEvent, parseRequest } from '../protocol/messages.js';
import { Allowance } from './allowance.js';
import type { DownloadPort, DownloadTransfer } from './download-transfer.js';
import { handlers } from './handlers/index.js';
import type { ServerServices } from './services.js';
import type { UploadTransfer } from './upload-transfer.js';

/**
 * Why reading is paused: waiting for a chunk buffer or a checkpoint ('chunk'), for the socket to
 * drain ('drain'), for a hello to be answered ('hello'), or for requests in flight ('requests').
 */
type PauseReason = 'chunk' | 'drain' | 'hello' | 'requests';

/** Requests of one connection being handled at once; reading pauses at this many. */
const maxRequestsInFlight = 16;
/** How long an ending connection reads (and drops) what the client still sends before it is cut. */
const lingerMs = 2000;

/** The chunk being received: which upload, which index, and the budget buffer it fills. */
interface IncomingChunk {
  header: ChunkHeader;
  /** Undefined when the chunk belongs to an upload that already failed: its payload is skipped. */
  upload: UploadTransfer | undefined;
  index: number;
  buffer: ArrayBuffer | undefined;
  filled: number;
}

/**
 * The actor for one client connection. It owns the socket and the decoder, holds the
 * connection's protocol state (handshake, uploads and downloads by stream), dispatches each
 * request to its handler, and applies backpressure: the socket is paused while a received chunk
 * waits for a buffer from the global budget or for this connection's in-flight allowance, and
 * while the client does not read what the server writes.
 */
export class Connection implements FrameSink, DownloadPort {
  readonly services: ServerServices;
  readonly socket: Socket;
  readonly log: Logger;
  readonly clientAddress: string;
  readonly uploads = new Map<number, UploadTransfer>();
  readonly downloads = new Map<number, DownloadTransfer>();
  /** Streams that failed after their request was answered: their late chunks are skipped. */
  readonly #deadStreams = new Set<number>();
  readonly #decoder: FrameDecoder;
  readonly #pauseReasons = new Set<PauseReason>();
  /** Set once the connection is ending: input is read and dropped until the client closes. */
  #discarding = false;
  #greeted = false;
  #nextStream = 1;
  #incoming: IncomingChunk | undefined;
  #cancelBufferWait: (() => void) | undefined;
  #chunksInFlight = 0;
  /** This connection's share of the budget for download chunks (read, or queued on the socket). */
  readonly #downloadAllowance: Allowance;
  /** Callbacks for the socket's next 'drain' (one listener for all of this connection's downloads). */
  #drainWaiters: (() => void)[] = [];
  /** The connection is ending (bye sent or handshake refused): nothing more is read or served. */
  #ending = false;
  /** Closes the connection if it has not said hello in time. */
  #handshakeTimer: NodeJS.Timeout | undefined;
  /** Requests being handled: while any is, the server is the one working, and no timeout runs. */
  #requestsInFlight = 0;
  #closed = false;
  readonly closed: Promise<void>;

  constructor(services: ServerServices, socket: Socket) {
    this.services = services;
    this.socket = socket;
    this.clientAddress = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`;
    this.log = services.logger.child({ client: this.clientAddress });
    this.#decoder = new FrameDecoder(
      { maxControlBytes: services.config.maxControlBytes, maxChunkBytes: services.config.chunkSizeBytes },
      this,
    );
    socket.setNoDelay(true);
    // Bytes arrive through `received` (the socket reads into a fixed buffer), or as 'data' events
    // from a socket that could not be re-wrapped.
    socket.on('data', (data: Buffer) => this.received(data));
    socket.resume();
    this.#downloadAllowance = new Allowance(services.config.maxInflightChunksPerConnection);
    socket.on('drain', () => this.#drained());
    socket.on('error', (error) => this.log.debug({ err: error }, 'socket error'));
    socket.on('timeout', () => this.#timedOut());
    const { handshakeTimeoutMs } = services.config;
    this.#handshakeTimer = setTimeout(() => this.closeWith(new FerryError('ETIMEDOUT', `no hello within ${handshakeTimeoutMs} ms`)), handshakeTimeoutMs);
    this.closed = new Promise((resolve) => socket.once('close', () => void this.#cleanup().finally(resolve)));
  }

  /** Bytes read from the socket, valid only during the call. */
  received(bytes: Uint8Array): void {
    if (this.#discarding) return;
    this.#decoder.push(bytes, true);
  }

  get greeted(): boolean {
    return this.#greeted;
  }

  /** The connection is closed or closing: no new transfer may attach to it. */
  get ending(): boolean {
    return this.#ending || this.#closed;
  }

  markGreeted(): void {
    this.#greeted = true;
    clearTimeout(this.#handshakeTimer);
    this.refreshTimeout();
  }

  /**
   * Arms the socket's inactivity timeout for what the connection is doing: the stall timeout while
   * a transfer is attached, the idle timeout when nothing is in progress, none while a request is
   * being handled or the server itself holds the socket paused (waiting for a buffer or a
   * checkpoint). Called whenever one of those changes.
   */
  refreshTimeout(): void {
    if (!this.#greeted || this.#ending || this.#closed) return;
    const { stallTimeoutMs, idleTimeoutMs } = this.services.config;
    const serverBusy = this.#requestsInFlight > 0 || this.#pauseReasons.has('chunk');
    this.socket.setTimeout(serverBusy ? 0 : this.#transferring ? stallTimeoutMs : idleTimeoutMs);
  }

  /** An upload is attached or a download runs: silence now means a stall. */
  get #transferring(): boolean {
    return this.uploads.size > 0 || this.downloads.size > 0;
  }

  #timedOut(): void {
    const { stallTimeoutMs, idleTimeoutMs } = this.services.config;
    this.closeWith(
      new FerryError('ETIMEDOUT', this.#transferring ? `no data moved for ${stallTimeoutMs} ms during a transfer` : `idle for ${idleTimeoutMs} ms`),
    );
  }

  allocateStream(): number {
    const stream = this.#nextStream;
    this.#nextStream = this.#nextStream >= 0xffffffff ? 1 : this.#nextStream + 1;
    return stream;
  }

  send(message: object): void {
    if (this.socket.destroyed || this.socket.writableEnded) return;
    if (!this.socket.write(encodeControl(message))) this.#pause('drain');
  }

  sendEvent(event: ServerEvent): void {
    this.send(event);
  }

  /** Ends the connection after telling the client why. */
  closeWith(error: FerryError): void {
    if (this.#ending) return;
    this.log.info({ code: error.code }, error.message);
    this.sendEvent({ event: 'bye', ...errorFields(error) });
    this.#end();
  }

  /**
   * Stops serving, flushes what is written (the `bye` last), and closes. What the client still
   * sends is read and dropped until it closes its side, at most `lingerMs`: closing a socket with
   * unread input makes the kernel send a reset, which can destroy the replies still in flight.
   */
  #end(): void {
    this.#ending = true;
    clearTimeout(this.#handshakeTimer);
    this.socket.setTimeout(0);
    this.#decoder.pause();
    this.#discarding = true;
    this.socket.end();
    this.socket.resume();
    const linger = setTimeout(() => this.socket.destroy(), lingerMs);
    this.socket.once('close', () => clearTimeout(linger));
  }

  /** A transfer stream failed after its request was answered: tell the client, skip its late chunks. */
  abortStream(stream: number, error: FerryError): void {
    this.#deadStreams.add(stream);
    this.sendEvent({ event: 'abort', stream, ...errorFields(error) });
  }

  /**
   * Ends an upload's attachment to this connection: its chunks in flight land and are recorded,
   * then its name is free for the next `put` (which resumes the session).
   */
  detachUpload(upload: UploadTransfer): Promise<void> {
    this.uploads.delete(upload.stream);
    this.refreshTimeout();
    upload.detached ??= upload.settle().finally(() => upload.release());
    return upload.detached;
  }

  // ---- DownloadPort ----

  /**
   * Gets a chunk buffer for one of this connection's downloads: first a place in this
   * connection's allowance (so a client that reads nothing cannot hold the whole budget), then a
   * buffer from the global budget. Returns a function that cancels the wait.
   */
  acquireDownloadBuffer(take: (buffer: ArrayBuffer) => void): () => void {
    let stage: 'allowance' | 'buffer' | 'held' = 'allowance';
    let cancelBufferWait = (): void => {};
    const cancelAllowanceWait = this.#downloadAllowance.acquire(() => {
      stage = 'buffer';
      cancelBufferWait = this.services.buffers.acquire((buffer) => {
        stage = 'held';
        take(buffer);
      });
    });
    return () => {
      if (stage === 'allowance') cancelAllowanceWait();
      if (stage !== 'buffer') return;
      cancelBufferWait();
      this.#downloadAllowance.release();
    };
  }

  releaseDownloadBuffer(buffer: ArrayBuffer): void {
    this.services.buffers.release(buffer);
    this.#downloadAllowance.release();
  }

  whenDrained(callback: () => void): void {
    this.#drainWaiters.push(callback);
  }

  #drained(): void {
    this.#unpause('drain');
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const waiter of waiters) waiter();
  }

  startDownload(transfer: DownloadTransfer): void {
    this.downloads.set(transfer.stream, transfer);
    this.refreshTimeout();
    transfer.start();
  }

  // ---- FrameSink ----

  control(message: Record<string, unknown>): void {
    if (this.#ending) return;
    const id = typeof message['id'] === 'number' ? message['id'] : undefined;
    let request: Request;
    try {
      request = parseRequest(message);
    } catch (error) {
      const failure = error as FerryError;
      if (id === undefined || !this.#greeted) return this.closeWith(failure);
      return this.send({ id, ok: false, ...errorFields(failure) });
    }
    if (!this.#greeted && request.op !== 'hello') {
      return this.closeWith(new FerryError('EPROTO', `expected hello, got ${request.op}`));
    }
    if (request.op !== 'hello') {
      // A client that pipelines requests gets at most `maxRequestsInFlight` served at once; the
      // rest wait in its socket, so a flood of requests cannot queue replies without bound.
      if (this.#requestsInFlight + 1 >= maxRequestsInFlight) this.#pause('requests');
      return void this.#dispatch(request);
    }
    // Nothing after a hello is read until it is answered: requests pipelined behind a refused
    // hello are not served, and the refusal is the last thing the client reads.
    this.#pause('hello');
    void this.#dispatch(request).finally(() => this.#unpause('hello'));
  }

  chunkStart(header: ChunkHeader): void {
    if (this.#ending) return;
    const upload = this.uploads.get(header.stream);
    if (!upload) {
      if (this.#deadStreams.has(header.stream)) {
        this.#incoming = { header, upload: undefined, index: -1, buffer: undefined, filled: 0 };
        return;
      }
      return this.closeWith(new FerryError('EPROTO', `chunk for unknown stream ${header.stream}`));
    }
    let index: number;
    try {
      index = upload.indexOf(header);
    } catch (error) {
      return this.closeWith(error as FerryError);
    }
    this.#incoming = { header, upload, index, buffer: undefined, filled: 0 };
    this.#claimBuffer();
  }

  chunkData(piece: Uint8Array): void {
    const incoming = this.#incoming;
    if (!incoming?.buffer) return;
    new Uint8Array(incoming.buffer, incoming.filled, piece.byteLength).set(piece);
    incoming.filled += piece.byteLength;
  }

  chunkEnd(): void {
    const incoming = this.#incoming;
    this.#incoming = undefined;
    if (!incoming?.upload || !incoming.buffer) return;
    const { upload, index, header, buffer } = incoming;
    if (upload.failed || !this.uploads.has(upload.stream)) {
      this.services.buffers.release(buffer);
      return;
    }
    this.#chunksInFlight += 1;
    void upload.write(index, header, buffer).finally(() => {
      this.#chunksInFlight -= 1;
      this.#claimBuffer();
    });
  }

  protocolError(error: FerryError): void {
    this.closeWith(error);
  }

  // ---- internals ----

  async #dispatch(request: Request): Promise<void> {
    this.#requestsInFlight += 1;
    this.refreshTimeout();
    try {
      const handler = handlers[request.op] as (connection: Connection, request: Request) => Promise<{ result: unknown; afterReply?: () => void }>;
      const { result, afterReply } = await handler(this, request);
      this.send({ id: request.id, ok: true, result });
      afterReply?.();
    } catch (error) {
      const failure = error instanceof FerryError ? error : new FerryError('EINTERNAL', 'internal server error', { cause: error });
      if (failure.code === 'EINTERNAL') this.log.error({ err: error, op: request.op }, 'request failed');
      this.send({ id: request.id, ok: false, ...errorFields(failure) });
      if (failure.code === 'EVERSION') this.#end();
    } finally {
      this.#requestsInFlight -= 1;
      this.refreshTimeout();
      if (this.#requestsInFlight < maxRequestsInFlight) this.#unpause('requests');
    }
  }

  /**
   * Gets a budget buffer for the incoming chunk. Until it has one, the decoder and the socket are
   * paused ('chunk'): no payload byte may arrive before there is somewhere to put it. Called again
   * when one of this connection's chunks completes or its upload records a checkpoint.
   */
  #claimBuffer(): void {
    const incoming = this.#incoming;
    if (!incoming?.upload || incoming.buffer || this.#cancelBufferWait || this.#closed) return;
    this.#pause('chunk');
    if (this.#chunksInFlight >= this.services.config.maxInflightChunksPerConnection) return;
    if (incoming.upload.lagging) {
      // Durability lag: wait until a checkpoint has recorded what is written, so a crash now
      // costs at most about two checkpoints' worth of re-sending.
      incoming.upload.onceRecorded(() => this.#claimBuffer());
      return;
    }
    let granted = false;
    const cancel = this.services.buffers.acquire((buffer) => {
      granted = true;
      this.#cancelBufferWait = undefined;
      if (this.#closed) return this.services.buffers.release(buffer);
      incoming.buffer = buffer;
      this.#unpause('chunk');
    });
    if (!granted) this.#cancelBufferWait = cancel;
  }

  #pause(reason: PauseReason): void {
    this.#pauseReasons.add(reason);
    this.#decoder.pause();
    if (!this.#discarding) this.socket.pause();
    if (reason === 'chunk') this.refreshTimeout();
  }

  #unpause(reason: PauseReason): void {
    if (!this.#pauseReasons.delete(reason)) return;
    if (reason === 'chunk') this.refreshTimeout();
    if (this.#pauseReasons.size > 0 || this.#closed || this.#ending) return;
    this.socket.resume();
    this.#decoder.resume();
  }

  /** The socket closed: release what this connection held and save upload progress. */
  async #cleanup(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#handshakeTimer);
    this.#cancelBufferWait?.();
    if (this.#incoming?.buffer) this.services.buffers.release(this.#incoming.buffer);
    this.#incoming = undefined;
    this.#drainWaiters = [];
    for (const download of this.downloads.values()) download.stop(new FerryError('ECONNLOST', 'client went away'));
    await Promise.all([...this.uploads.values()].map((upload) => this.detachUpload(upload)));
  }
}
