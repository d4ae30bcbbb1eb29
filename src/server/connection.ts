import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { FrameDecoder, type FrameSink } from '../protocol/decoder.js';
import { encodeChunkHead, encodeControl } from '../protocol/encoder.js';
import { FerryError, errorFields } from '../protocol/errors.js';
import type { ChunkHeader, PackedAs } from '../protocol/frames.js';
import type { Packing } from '../compression/negotiation.js';
import { type Request, type ServerEvent, parseRequest } from '../protocol/messages.js';
import { ReadPlacement } from '../protocol/read-placement.js';
import { TickWrites } from '../tick-writes.js';
import { type StoredFile, type TransferLogRecord, type UserRecord, hashAt } from '../store/records.js';
import { AccountView, checkAccess } from './account-view.js';
import { addressPrefix } from './address-prefix.js';
import { Allowance } from './allowance.js';
import { ChunkIntake } from './chunk-intake.js';
import { endWithLinger } from './connection-registry.js';
import { type ChunkRange, type DownloadPort, DownloadTransfer } from './download-transfer.js';
import { handle } from './handlers/index.js';
import type { RequestContext } from './request-context.js';
import type { ServerServices } from './services.js';
import type { ActiveUpload, ClaimedUpload } from './upload-registry.js';
import { type TransferEntry, logTransfer, reportTransfer, whoOf } from './transfer-report.js';
import { UploadTransfer } from './upload-transfer.js';
import { type WholePutData, WholePutIntake } from './whole-put-intake.js';

/**
 * Why reading is paused: waiting for a chunk buffer or a checkpoint ('chunk'), for a whole-put
 * buffer ('whole'), for the socket to drain ('drain'), for a hello to be answered ('hello'), for
 * requests in flight ('requests'), or for whole puts in flight ('wholePuts').
 */
type PauseReason = 'chunk' | 'whole' | 'drain' | 'hello' | 'requests' | 'wholePuts';

/**
 * The actor for one client connection. It owns the socket and the decoder, holds the
 * connection's protocol state (handshake, uploads and downloads by stream), dispatches each
 * request to its handler with a narrow context (`RequestContext`), and applies backpressure: the
 * socket is paused while a received chunk waits for a buffer (`ChunkIntake`), while requests are
 * in flight, and while the client does not read what the server writes.
 */
export class Connection implements FrameSink, DownloadPort, RequestContext {
  readonly services: ServerServices;
  readonly socket: Socket;
  log: Logger;
  readonly clientAddress: string;
  readonly clientNetwork: string;
  readonly closed: Promise<void>;
  readonly #uploads = new Map<number, UploadTransfer>();
  /** Uploads of other connections this one sends chunks for (`putJoin`: parallel streams), by this connection's stream. */
  readonly #joined = new Map<number, UploadTransfer>();
  readonly #downloads = new Map<number, DownloadTransfer>();
  /** Streams that failed after their request was answered: their late chunks are skipped. */
  readonly #deadStreams = new Set<number>();
  readonly #decoder: FrameDecoder;
  readonly #intake: ChunkIntake;
  readonly #readPlacement = new ReadPlacement();
  /** An upload chunk's payload may be read in place; a whole put's goes through its own intake. */
  readonly #payloadTarget = (bytes: number): Uint8Array | undefined =>
    this.#receivingWhole ? undefined : this.#intake.payloadTarget(bytes);
  readonly #wholePuts: WholePutIntake;
  /** Data of `putWhole` requests being handled, by request id, until their handlers take it. */
  readonly #wholePutData = new Map<number, WholePutData>();
  /** The chunk frame being received is a whole put's data (stream 0), not an upload's chunk. */
  #receivingWhole = false;
  readonly #pauseReasons = new Set<PauseReason>();
  /** Set once the connection is ending: input is read and dropped until the client closes. */
  #discarding = false;
  #greeted = false;
  /** The account logged in on this connection, and its session's token (for logout). */
  #account: AccountView | undefined;
  #token: string | undefined;
  #nextStream = 1;
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
  /** Of those, whole puts: they have a limit of their own (`maxWholePutsInFlightPerConnection`). */
  #wholePutsInFlight = 0;
  /** Of those, the ones waiting for the client to take what was written before they start (the client's doing). */
  #requestsWaitingForOutput = 0;
  /** Closes the connection if a frame's head or a control frame, once started, is not finished in time. */
  #frameTimer: NodeJS.Timeout | undefined;
  /** Download chunk buffers this connection holds (being read, or written to the socket and not yet flushed). */
  #downloadBuffersHeld = 0;
  /** Download buffers waited for: the server is the one holding things up. */
  #downloadBufferWaits = 0;
  /** When the client last took download bytes (a flush, or the socket's queue going down), and that queue's length then. */
  #downloadProgressAt = performance.now();
  #queuedAtProgress = 0;
  #closed = false;
  /** Gathers the frames sent in one tick into one write. */
  readonly #tickWrites: TickWrites;

  constructor(services: ServerServices, socket: Socket) {
    this.services = services;
    this.socket = socket;
    this.#tickWrites = new TickWrites(socket);
    this.clientAddress = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`;
    this.clientNetwork = addressPrefix(socket.remoteAddress ?? '?');
    this.log = services.logger.child({ client: this.clientAddress });
    const { config } = services;
    this.#decoder = new FrameDecoder({ maxControlBytes: config.maxControlBytes, maxChunkBytes: config.chunkSizeBytes }, this);
    this.#intake = new ChunkIntake(services.buffers, config.maxInflightChunksPerConnection, {
      upload: (stream) => this.#uploads.get(stream) ?? this.#joinedUpload(stream),
      // A joined upload that ended (finished, failed, its own connection gone): its late chunks are skipped.
      isDeadStream: (stream) => this.#deadStreams.has(stream) || this.#joined.has(stream),
      holdReading: (hold) => (hold ? this.#pause('chunk') : this.#unpause('chunk')),
      protocolError: (error) => this.closeWith(error),
    });
    this.#wholePuts = new WholePutIntake(services.wholePutBuffers, {
      holdReading: (hold) => (hold ? this.#pause('whole') : this.#unpause('whole')),
      protocolError: (error) => this.closeWith(error),
      received: (request, data, refusal) => this.#wholePutReceived(request, data, refusal),
    });
    this.#downloadAllowance = new Allowance(config.maxInflightChunksPerConnection);
    socket.setNoDelay(true);
    // Bytes arrive through `received` (the socket reads into a fixed buffer), or as 'data' events
    // from a socket that could not be re-wrapped.
    socket.on('data', (data: Buffer) => this.received(data));
    socket.resume();
    socket.on('drain', () => this.#drained());
    socket.on('error', (error) => this.log.debug({ err: error }, 'socket error'));
    socket.on('timeout', () => this.#timedOut());
    const { handshakeTimeoutMs } = config;
    this.#handshakeTimer = setTimeout(
      () =>
        this.closeWith(
          new FerryError('ETIMEDOUT', `${this.#greeted ? 'no login' : 'no hello'} within ${handshakeTimeoutMs} ms of connecting`),
        ),
      handshakeTimeoutMs,
    );
    this.closed = new Promise((resolve) => socket.once('close', () => void this.#cleanup().finally(resolve)));
  }

  /** Where the next read from the socket lands (clear text or TLS), given its own buffer (see ReadPlacement). */
  nextRead(own: Buffer): Uint8Array {
    return this.#readPlacement.next(own, this.#decoder.payloadBytesAhead, this.#payloadTarget);
  }

  /** Bytes read from the socket, valid only during the call. */
  received(bytes: Uint8Array): void {
    if (this.#discarding) return;
    this.#decoder.push(bytes, true);
    this.#watchFrame();
  }

  /**
   * Arms the frame deadline while a frame's head, a chunk's fields or a control frame has started
   * to arrive and has not ended (a client that sends one byte of a frame every few seconds must not
   * hold its connection for ever), and while a whole put's data does (it is as small as a control
   * frame); disarms it otherwise. An upload chunk's payload is the intake's to time.
   */
  #watchFrame(): void {
    const started = (this.#decoder.inFrameHead || this.#wholePuts.receiving) && this.#pauseReasons.size === 0 && !this.#ending;
    if (started && !this.#frameTimer) {
      const { frameTimeoutMs } = this.services.config;
      this.#frameTimer = setTimeout(
        () => this.closeWith(new FerryError('ETIMEDOUT', `a frame was started and not finished within ${frameTimeoutMs} ms`)),
        frameTimeoutMs,
      );
    } else if (!started && this.#frameTimer) {
      clearTimeout(this.#frameTimer);
      this.#frameTimer = undefined;
    }
  }

  /**
   * Called now and then while others wait for a chunk buffer: a connection that holds buffers and
   * is far too slow to use them gives them up, by being closed (ETIMEDOUT; an upload resumes from
   * what was recorded). Slow means a chunk arriving under `minChunkRateBytesPerSec` for longer than
   * `budgetGraceMs`, or a download whose client has taken nothing for `budgetGraceMs`.
   */
  yieldBudgetIfSlow(now: number): void {
    if (this.#ending || this.#closed) return;
    const { budgetGraceMs, minChunkRateBytesPerSec } = this.services.config;
    const slowUpload = this.#intake.slowness(now, budgetGraceMs, minChunkRateBytesPerSec);
    if (slowUpload) return this.closeWith(new FerryError('ETIMEDOUT', slowUpload));
    if (this.#downloadBuffersHeld === 0) return;
    const queued = this.socket.writableLength;
    if (queued < this.#queuedAtProgress) this.#noteDownloadProgress(now);
    this.#queuedAtProgress = queued;
    const stuckMs = now - this.#downloadProgressAt;
    if (stuckMs > budgetGraceMs) {
      this.closeWith(
        new FerryError('ETIMEDOUT', `the client took none of its download for ${Math.round(stuckMs)} ms while others waited for a buffer`),
      );
    }
  }

  #noteDownloadProgress(now = performance.now()): void {
    this.#downloadProgressAt = now;
  }

  // ---- RequestContext ----

  get greeted(): boolean {
    return this.#greeted;
  }

  get ending(): boolean {
    return this.#ending || this.#closed;
  }

  markGreeted(): void {
    this.#greeted = true;
    this.#refreshTimeout();
  }

  get account(): AccountView | undefined {
    return this.#account;
  }

  authenticate(user: UserRecord, token: string): AccountView {
    try {
      this.services.gate.establish(this);
    } catch (error) {
      // Over the limits on established connections: the client hears why in a `bye`.
      this.closeWith(error as FerryError);
      throw error;
    }
    clearTimeout(this.#handshakeTimer);
    this.#account = new AccountView(user);
    this.#token = token;
    this.log = this.log.child({ user: user.name });
    return this.#account;
  }

  logout(): string | undefined {
    const token = this.#token;
    this.#account = undefined;
    this.#token = undefined;
    return token;
  }

  get who(): Pick<TransferLogRecord, 'client' | 'user'> {
    return whoOf(this.clientAddress, this.#account);
  }

  async attachUpload(claim: ClaimedUpload, force: boolean): Promise<UploadTransfer> {
    const stream = this.#allocateStream();
    let upload: UploadTransfer;
    try {
      upload = await UploadTransfer.open(this.services, stream, claim, force, (error) => {
        this.#abortStream(stream, error);
        void this.#detachUpload(upload);
      });
    } catch (error) {
      claim.cancel();
      throw error;
    }
    if (this.ending) {
      claim.cancel();
      void upload.release();
      throw new FerryError('ECONNLOST', 'client went away');
    }
    claim.attach(upload);
    this.#uploads.set(stream, upload);
    this.#refreshTimeout();
    return upload;
  }

  upload(stream: number): UploadTransfer | undefined {
    return this.#uploads.get(stream);
  }

  joinUpload(upload: UploadTransfer): number {
    const stream = this.#allocateStream();
    this.#joined.set(stream, upload);
    // Once the upload lets go of its name, the stream is dead: its late chunks are skipped.
    void upload.released.then(() => {
      if (this.#joined.get(stream) !== upload) return;
      this.#joined.delete(stream);
      this.#deadStreams.add(stream);
      this.#refreshTimeout();
    });
    this.#refreshTimeout();
    return stream;
  }

  #joinedUpload(stream: number): UploadTransfer | undefined {
    const upload = this.#joined.get(stream);
    return upload?.accepting ? upload : undefined;
  }

  ownsUpload(upload: ActiveUpload): boolean {
    return upload instanceof UploadTransfer && this.#uploads.get(upload.stream) === upload;
  }

  takeWholePutData(id: number): WholePutData | undefined {
    const data = this.#wholePutData.get(id);
    this.#wholePutData.delete(id);
    return data;
  }

  takeUpload(stream: number): UploadTransfer | undefined {
    const upload = this.#uploads.get(stream);
    this.#uploads.delete(stream);
    return upload;
  }

  openDownload(
    file: StoredFile,
    chunks: ChunkRange,
    packing: Packing | undefined,
    onEnd: (download: DownloadTransfer, error?: FerryError) => void,
  ): DownloadTransfer {
    const stream = this.#allocateStream();
    const ended = (error?: FerryError): void => {
      this.#downloads.delete(stream);
      this.#refreshTimeout();
      if (error && error.code !== 'ECONNLOST') this.#abortStream(stream, error);
      onEnd(download, error);
    };
    const download = new DownloadTransfer(this.services, this, stream, file, chunks, ended, packing);
    this.#downloads.set(stream, download);
    this.#refreshTimeout();
    return download;
  }

  async logTransfer(entry: TransferEntry): Promise<void> {
    await logTransfer(this.services.store, this.log, this.who, entry);
  }

  reportTransfer(entry: TransferEntry): void {
    reportTransfer(this.log, entry);
  }

  // ---- DownloadPort ----

  /**
   * Gets a chunk buffer for one of this connection's downloads: first a place in this
   * connection's allowance (so a client that reads nothing cannot hold the whole budget), then a
   * buffer from the global budget. Returns a function that cancels the wait.
   */
  acquireDownloadBuffer(take: (buffer: SharedArrayBuffer) => void): () => void {
    let stage: 'allowance' | 'buffer' | 'held' = 'allowance';
    let cancelBufferWait = (): void => {};
    const cancelAllowanceWait = this.#downloadAllowance.acquire(() => {
      stage = 'buffer';
      this.#downloadBufferWaits += 1;
      this.#refreshTimeout();
      cancelBufferWait = this.services.buffers.acquire((buffer) => {
        stage = 'held';
        this.#downloadBufferWaits -= 1;
        if (this.#downloadBuffersHeld === 0) this.#noteDownloadProgress();
        this.#downloadBuffersHeld += 1;
        this.#refreshTimeout();
        take(buffer);
      });
    });
    return () => {
      if (stage === 'allowance') cancelAllowanceWait();
      if (stage !== 'buffer') return;
      cancelBufferWait();
      this.#downloadBufferWaits -= 1;
      this.#refreshTimeout();
      this.#downloadAllowance.release();
    };
  }

  releaseDownloadBuffer(buffer: SharedArrayBuffer): void {
    this.services.buffers.release(buffer);
    this.#downloadBuffersHeld -= 1;
    this.#noteDownloadProgress();
    this.#downloadAllowance.release();
  }

  sendChunk(download: DownloadTransfer, index: number, payload: Buffer, flushed: () => void, packed?: PackedAs): boolean {
    const { socket } = this;
    const { chunkSize, hashes } = download.file;
    // The head and the payload leave together: the socket is corked for the tick.
    this.#tickWrites.gather();
    socket.write(
      encodeChunkHead({ stream: download.stream, offset: index * chunkSize, xxh64: hashAt(hashes, index), length: payload.length, packed }),
    );
    return socket.write(payload, flushed);
  }

  whenDrained(callback: () => void): void {
    this.#drainWaiters.push(callback);
  }

  // ---- FrameSink ----

  control(message: Record<string, unknown>): void {
    if (this.#ending) return;
    if (this.#wholePuts.expecting) {
      return this.closeWith(new FerryError('EPROTO', 'a control frame where the data of a putWhole was due'));
    }
    // An id that is not a whole number (1.5, 1e300) is no id: the error cannot be matched to a request.
    const id = Number.isSafeInteger(message['id']) ? (message['id'] as number) : undefined;
    let request: Request;
    try {
      request = parseRequest(message);
    } catch (error) {
      const failure = error as FerryError;
      if (id === undefined || !this.#greeted) return this.closeWith(failure);
      return this.#send({ id, ok: false, ...errorFields(failure) });
    }
    if (!this.#greeted && request.op !== 'hello') {
      return this.closeWith(new FerryError('EPROTO', `expected hello, got ${request.op}`));
    }
    if (request.op === 'putWhole') {
      // Handled once its data (the next frame) is in; one the account may not make is refused
      // then, its data read and dropped.
      let refusal: FerryError | undefined;
      try {
        checkAccess(request.op, this.#account);
      } catch (error) {
        refusal = error as FerryError;
      }
      return this.#wholePuts.expect(request, refusal);
    }
    if (request.op !== 'hello') {
      // A client that pipelines requests gets at most `maxRequestsInFlightPerConnection` served at
      // once; the rest wait in its socket, so a flood of requests cannot queue replies without bound.
      if (this.#otherRequestsInFlight + 1 >= this.services.config.maxRequestsInFlightPerConnection) this.#pause('requests');
      return void this.#dispatch(request);
    }
    // Nothing after a hello is read until it is answered: requests pipelined behind a refused
    // hello are not served, and the refusal is the last thing the client reads.
    this.#pause('hello');
    void this.#dispatch(request).finally(() => this.#unpause('hello'));
  }

  chunkStart(header: ChunkHeader): void {
    if (this.#ending) return;
    this.#receivingWhole = header.stream === 0;
    if (this.#receivingWhole) this.#wholePuts.chunkStart(header);
    else this.#intake.chunkStart(header);
    this.#watchFrame();
  }

  chunkData(piece: Uint8Array): void {
    if (this.#receivingWhole) this.#wholePuts.chunkData(piece);
    else this.#intake.chunkData(piece);
  }

  chunkEnd(): void {
    if (!this.#receivingWhole) return this.#intake.chunkEnd();
    this.#wholePuts.chunkEnd();
    this.#receivingWhole = false;
    this.#watchFrame();
  }

  protocolError(error: FerryError): void {
    this.closeWith(error);
  }

  // ---- ending ----

  /** Ends the connection after telling the client why. */
  closeWith(error: FerryError): void {
    if (this.#ending) return;
    this.log.info({ code: error.code }, error.message);
    this.#send({ event: 'bye', ...errorFields(error) } satisfies ServerEvent);
    this.#end();
  }

  /** Stops serving, flushes what is written (the `bye` last), and closes with the linger. */
  #end(): void {
    this.#ending = true;
    clearTimeout(this.#handshakeTimer);
    clearTimeout(this.#frameTimer);
    this.socket.setTimeout(0);
    this.#decoder.pause();
    this.#discarding = true;
    endWithLinger(this.socket, this.services.config.lingerMs);
  }

  // ---- internals ----

  #allocateStream(): number {
    const stream = this.#nextStream;
    this.#nextStream = this.#nextStream >= 0xffffffff ? 1 : this.#nextStream + 1;
    return stream;
  }

  #send(message: object): void {
    if (this.socket.destroyed || this.socket.writableEnded) return;
    this.#tickWrites.gather();
    if (this.socket.write(encodeControl(message))) return;
    // The client is not taking what it is sent: read nothing more from it until it does, and let
    // the stall timeout close it if it never does.
    this.#pause('drain');
    this.#refreshTimeout();
  }

  /** A transfer stream failed after its request was answered: tell the client, skip its late chunks. */
  #abortStream(stream: number, error: FerryError): void {
    this.#deadStreams.add(stream);
    this.#send({ event: 'abort', stream, ...errorFields(error) } satisfies ServerEvent);
  }

  /** Takes an upload off this connection and lets it save its progress and free its name. */
  #detachUpload(upload: UploadTransfer): Promise<void> {
    if (this.#uploads.get(upload.stream) === upload) this.#uploads.delete(upload.stream);
    this.#refreshTimeout();
    return upload.detach();
  }

  /** A whole put's data is in (or was dropped, the request being refused): it is handled like any request. */
  #wholePutReceived(request: Request & { op: 'putWhole' }, data: WholePutData | undefined, refusal: FerryError | undefined): void {
    if (this.#ending) return data?.release();
    if (data) this.#wholePutData.set(request.id, data);
    // Whole puts have a larger limit than other requests (docs/design.md, "Requests"): what one holds
    // past its write is a small reply, and many at once share each folder fsync and LMDB commit.
    if (this.#wholePutsInFlight + 1 >= this.services.config.maxWholePutsInFlightPerConnection) this.#pause('wholePuts');
    void this.#dispatch(request, refusal).finally(() => {
      // A handler that failed before it took its data leaves it here.
      this.takeWholePutData(request.id)?.release();
    });
  }

  /** Requests being handled other than whole puts. */
  get #otherRequestsInFlight(): number {
    return this.#requestsInFlight - this.#wholePutsInFlight;
  }

  async #dispatch(request: Request, refusal?: FerryError): Promise<void> {
    const wholePut = request.op === 'putWhole';
    this.#requestsInFlight += 1;
    if (wholePut) this.#wholePutsInFlight += 1;
    this.#refreshTimeout();
    try {
      // A client that does not take its replies gets no new ones: what waits for it stays bounded.
      if (this.socket.writableLength >= this.services.config.maxQueuedOutputBytes) await this.#outputRoom();
      if (refusal) throw refusal;
      checkAccess(request.op, this.#account);
      const { result, afterReply } = await handle(request.op, request, this);
      this.#send({ id: request.id, ok: true, result });
      afterReply?.();
    } catch (error) {
      const failure = error instanceof FerryError ? error : new FerryError('EINTERNAL', 'internal server error', { cause: error });
      if (failure.code === 'EINTERNAL') this.log.error({ err: error, op: request.op }, 'request failed');
      else if (failure.code === 'EIO' || failure.code === 'ENOSPC')
        this.log.warn({ err: failure.cause ?? failure, op: request.op }, failure.message);
      this.#send({ id: request.id, ok: false, ...errorFields(failure) });
      if (failure.code === 'EVERSION') this.#end();
    } finally {
      this.#requestsInFlight -= 1;
      if (wholePut) this.#wholePutsInFlight -= 1;
      this.#refreshTimeout();
      const { maxRequestsInFlightPerConnection, maxWholePutsInFlightPerConnection } = this.services.config;
      if (this.#otherRequestsInFlight < maxRequestsInFlightPerConnection) this.#unpause('requests');
      if (this.#wholePutsInFlight < maxWholePutsInFlightPerConnection) this.#unpause('wholePuts');
    }
  }

  /** Waits until the client has taken what is queued for it (the socket drained) or the connection closed. */
  async #outputRoom(): Promise<void> {
    this.#requestsWaitingForOutput += 1;
    this.#refreshTimeout();
    // Woken by 'drain', or by the cleanup when the connection closes first.
    await new Promise<void>((resolve) => this.#drainWaiters.push(resolve));
    this.#requestsWaitingForOutput -= 1;
    this.#refreshTimeout();
  }

  /**
   * Arms the socket's inactivity timeout for what the connection is doing: the stall timeout while
   * a transfer is attached or replies wait for the client to take them, the idle timeout when
   * nothing is in progress, none while the server itself is working (a request being handled, the
   * socket paused waiting for a buffer or a checkpoint). Called whenever one of those changes.
   */
  #refreshTimeout(): void {
    if (!this.#greeted || this.#ending || this.#closed) return;
    const { stallTimeoutMs, idleTimeoutMs } = this.services.config;
    const serverWorking =
      this.#requestsInFlight > this.#requestsWaitingForOutput ||
      this.#pauseReasons.has('chunk') ||
      this.#pauseReasons.has('whole') ||
      this.#downloadBufferWaits > 0;
    const waitingForClient = this.#transferring || this.#requestsWaitingForOutput > 0 || this.socket.writableNeedDrain;
    this.socket.setTimeout(serverWorking ? 0 : waitingForClient ? stallTimeoutMs : idleTimeoutMs);
  }

  /** An upload is attached or a download runs: silence now means a stall. */
  get #transferring(): boolean {
    return this.#uploads.size > 0 || this.#joined.size > 0 || this.#downloads.size > 0;
  }

  #timedOut(): void {
    const { stallTimeoutMs, idleTimeoutMs } = this.services.config;
    this.closeWith(
      new FerryError(
        'ETIMEDOUT',
        this.#transferring ? `no data moved for ${stallTimeoutMs} ms during a transfer` : `idle for ${idleTimeoutMs} ms`,
      ),
    );
  }

  #drained(): void {
    this.#unpause('drain');
    this.#refreshTimeout();
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const waiter of waiters) waiter();
  }

  #pause(reason: PauseReason): void {
    this.#pauseReasons.add(reason);
    this.#decoder.pause();
    if (!this.#discarding) this.socket.pause();
    if (reason === 'chunk' || reason === 'whole') this.#refreshTimeout();
    this.#watchFrame();
  }

  #unpause(reason: PauseReason): void {
    if (!this.#pauseReasons.delete(reason)) return;
    if (reason === 'chunk' || reason === 'whole') this.#refreshTimeout();
    if (this.#pauseReasons.size > 0 || this.#closed || this.#ending) return;
    this.socket.resume();
    this.#decoder.resume();
    this.#watchFrame();
  }

  /** The socket closed: release what this connection held and save upload progress. */
  async #cleanup(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#handshakeTimer);
    clearTimeout(this.#frameTimer);
    this.#intake.close();
    this.#wholePuts.close();
    for (const data of this.#wholePutData.values()) data.release();
    this.#wholePutData.clear();
    for (const download of this.#downloads.values()) download.stop(new FerryError('ECONNLOST', 'client went away'));
    // Whoever waits for the client to take its output stops waiting: there is no client any more.
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const waiter of waiters) waiter();
    await Promise.all([...this.#uploads.values()].map((upload) => this.#detachUpload(upload)));
  }
}
