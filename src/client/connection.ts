import { once } from 'node:events';
import { type Socket, connect as netConnect, isIP } from 'node:net';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { FrameDecoder, type FrameSink } from '../protocol/decoder.js';
import { ReadPlacement, placedReads } from '../protocol/read-placement.js';
import { encodeChunkHead, encodeControl } from '../protocol/encoder.js';
import { FerryError, isErrorCode } from '../protocol/errors.js';
import { type ChunkHeader, maxChunkBytesCeiling, protocolVersion } from '../protocol/frames.js';
import { maxServerControlBytes } from '../protocol/limits.js';
import type { HelloResult, Op, RequestOf, ResultOf } from '../protocol/messages.js';
import { TickWrites } from '../tick-writes.js';
import { ferryVersion } from '../version.js';
import { formatDuration, hostPort } from '../units.js';
import { type ClientTls, checkServerCertificate, tlsHandshakeError } from './server-trust.js';
import { defaultClientStallTimeoutMs } from './defaults.js';
import { writeLargeBuffersAlone } from '../tls/large-writes-alone.js';

export interface ConnectOptions {
  host: string;
  port: number;
  /** Give up connecting (and on the handshake) after this long. */
  connectTimeoutMs?: number;
  /**
   * While a request or a transfer is in progress, no byte moving either way for this long means
   * the link is dead (a dropped NAT entry, a frozen peer): the connection is cut with ETIMEDOUT,
   * which a retrying transfer answers by reconnecting and resuming. Default 30 s.
   */
  stallTimeoutMs?: number;
  /**
   * A handshake with this server has succeeded before: one that now gets no answer in time is a
   * slow or broken link (ETIMEDOUT, retried), not a wrong port (EPROTO).
   */
  knownServer?: boolean;
  /** Abandons the connect or the handshake: the socket is destroyed and the connect fails with the signal's reason. */
  signal?: AbortSignal;
  /** A login session's token, given in the hello: the connection starts logged in (EAUTH if it is not valid). */
  token?: string;
  /**
   * The certificate the token was issued under: it is sent only to a server presenting this one
   * (a token saved for one server is never handed to another that took its address).
   */
  tokenFingerprint?: string;
  /** TLS and how the server's certificate is trusted (see ClientTls); `false`: clear text. */
  tls: ClientTls | false;
}

export { defaultClientStallTimeoutMs } from './defaults.js';

/** Receives the chunks of one download stream. */
export interface StreamSink {
  chunkStart(header: ChunkHeader): void;
  chunkData(piece: Uint8Array): void;
  chunkEnd(): void;
  /** The stream ended with an error: an `abort` from the server, or the connection was lost. */
  fail(error: FerryError): void;
  /**
   * Where the next `bytes` of the current chunk's payload may be read straight into, if the sink
   * offers that: they then come to `chunkData` as a view of that memory. A stream that fails in the
   * middle of that chunk must not give the memory to anyone else: the socket may still read into
   * it once (after the chunk's end it does not: where the next read lands is asked after each read).
   */
  payloadTarget?(bytes: number): Uint8Array | undefined;
}

interface Pending {
  resolve(result: unknown): void;
  reject(error: FerryError): void;
  /** For a request that opens a stream: its sink, registered the moment the reply is decoded. */
  sinkFor?: (result: { stream: number }) => StreamSink;
  /** Whether the stall watchdog covers the wait for its reply (see `unwatchedOps`). */
  watched: boolean;
}

/**
 * Requests whose reply may take long with nothing on the wire: `putEnd` can hash a whole file
 * on the server (after a restart), which takes minutes for a big one. The stall watchdog does
 * not run while only these are outstanding.
 */
const unwatchedOps: ReadonlySet<Op> = new Set(['putEnd']);

type Args<O extends Op> = Omit<RequestOf<O>, 'id' | 'op'>;

/**
 * One connection to a Ferry server: the handshake, requests matched to replies by id, and
 * chunk frames routed to their stream. Knows nothing about files.
 */
export class ClientConnection implements FrameSink {
  readonly socket: Socket;
  hello!: HelloResult;
  /** The server certificate's fingerprint (`SHA256:...`), checked before anything was sent; undefined in clear text. */
  fingerprint: string | undefined;
  readonly #decoder: FrameDecoder;
  readonly #pending = new Map<number, Pending>();
  /** Called at each 'drain' and at 'close' (see `watchDrain`). */
  readonly #drainWatchers = new Set<() => void>();
  /** Called once at 'close' (see `watchClose`). */
  readonly #closeWatchers = new Set<() => void>();
  readonly #streams = new Map<number, StreamSink>();
  #currentStream: StreamSink | undefined;
  readonly #readPlacement = new ReadPlacement();
  readonly #payloadTarget = (bytes: number): Uint8Array | undefined => this.#currentStream?.payloadTarget?.(bytes);
  #nextId = 1;
  #lost: FerryError | undefined;
  readonly #stallTimeoutMs: number;
  /** Pending requests the stall watchdog covers. */
  #watchedRequests = 0;
  /** Reading paused by us (a download waiting for the disk): the server is not to blame. */
  #pausedByUs = false;
  /** Who holds reading paused (see `pause`). */
  readonly #pausers = new Set<object>();
  #watchdogArmed = false;

  /** Where it is connected, as people type it: for messages. */
  readonly #address: string;
  /** Whether any byte has come from the server yet: the first ones tell a foreign protocol. */
  #heardFrom = false;
  /** Gathers the frames sent in one tick into one write. */
  readonly #tickWrites: TickWrites;

  private constructor(socket: Socket, stallTimeoutMs: number, address: string) {
    this.socket = socket;
    this.#tickWrites = new TickWrites(socket);
    this.#address = address;
    this.#stallTimeoutMs = stallTimeoutMs;
    this.#decoder = new FrameDecoder({ maxControlBytes: maxServerControlBytes, maxChunkBytes: maxChunkBytesCeiling }, this);

    socket.on('error', () => {}); // the 'close' that follows reports it
    socket.on('close', () => {
      this.#lose(new FerryError('ECONNLOST', 'connection to the server lost'));
      for (const watcher of [...this.#closeWatchers]) watcher();
      this.#wakeDrainWatchers();
    });
    socket.on('drain', () => this.#wakeDrainWatchers());
    // Closed already, while the server's certificate was being checked: lost before it began.
    if (socket.destroyed) this.#lose(new FerryError('ECONNLOST', 'connection to the server lost'));
    // The socket's inactivity timer: reads and writes handed to the kernel both reset it.
    socket.on('timeout', () => {
      this.#lose(new FerryError('ETIMEDOUT', `stalled: no data for ${formatDuration(this.#stallTimeoutMs)}`));
      socket.destroy();
    });
  }

  static async connect(options: ConnectOptions): Promise<ClientConnection> {
    let connection: ClientConnection | undefined;
    const socket = openSocket(
      options,
      (bytes) => connection?.received(bytes),
      (own) => connection?.nextRead(own) ?? own,
    );
    const timeoutMs = options.connectTimeoutMs ?? 10_000;
    const address = hostPort(options.host, options.port);
    const giveUp = (reason: FerryError): void => {
      if (connection) connection.destroy(reason);
      else socket.destroy(reason);
    };
    const onAbort = (): void => giveUp(options.signal?.reason instanceof FerryError ? options.signal.reason : new FerryError('ECANCELED'));
    if (options.signal?.aborted) onAbort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => {
      // Still connecting: nothing answers at that address. Connected (TCP) but the handshake (TLS,
      // then Ferry's hello) got no answer: something listens there that is not a Ferry server (or
      // one wedged); another attempt would find the same, so that is not retried, unless this
      // server answered before (then it is a slow or broken link).
      if (socket.connecting) giveUp(new FerryError('ECONNECT', `no answer from ${address} in ${formatDuration(timeoutMs)}`));
      else if (options.knownServer)
        giveUp(new FerryError('ETIMEDOUT', `${address} did not answer the handshake in ${formatDuration(timeoutMs)}`));
      else
        giveUp(
          new FerryError(
            'EPROTO',
            `no Ferry server answered at ${address} (it accepted the connection but sent nothing in ${formatDuration(timeoutMs)})`,
          ),
        );
    }, timeoutMs);
    let fingerprint: string | undefined;
    try {
      fingerprint = await connected(socket, address, options.tls);
      // Given up (a cancel, the timeout) while the certificate was being checked: say why.
      if (socket.errored instanceof FerryError) throw socket.errored;
    } catch (error) {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      throw error;
    }
    connection = new ClientConnection(socket, options.stallTimeoutMs ?? defaultClientStallTimeoutMs, address);
    connection.fingerprint = fingerprint;
    const token = options.tokenFingerprint === undefined || options.tokenFingerprint === fingerprint ? options.token : undefined;
    try {
      connection.hello = await connection.request('hello', {
        protocol: protocolVersion,
        client: `ferry/${ferryVersion}`,
        capabilities: ['resume'],
        ...(token === undefined ? {} : { token }),
      });
    } catch (error) {
      socket.destroy();
      // Closed before a single byte came back: not what a Ferry server does (it says why before it
      // hangs up). Still retried, as a link that dropped would be, but it says what else it may be.
      if (error instanceof FerryError && error.code === 'ECONNLOST' && !connection.#heardFrom) {
        throw new FerryError(
          'ECONNLOST',
          options.tls
            ? `${address} closed the connection without answering the handshake (not a Ferry server?)`
            : `${address} closed the connection without answering the handshake: a Ferry server serving TLS does that to clear text (connect without --no-tls), or it is not a Ferry server`,
          { cause: error },
        );
      }
      throw error;
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
    }
    return connection;
  }

  /** Bytes read from the socket, valid only during the call. */
  received(bytes: Uint8Array): void {
    if (!this.#heardFrom) {
      this.#heardFrom = true;
      const foreign = foreignProtocol(bytes);
      if (foreign) {
        const why =
          foreign === 'TLS'
            ? `${this.#address} answers with TLS: connect without --no-tls`
            : `${this.#address} speaks ${foreign}, not the Ferry protocol (wrong port?)`;
        this.destroy(new FerryError('EPROTO', why));
        return;
      }
    }
    this.#decoder.push(bytes, true);
  }

  /** Where the next read lands, given the socket's own buffer (see ReadPlacement). */
  nextRead(own: Buffer): Uint8Array {
    return this.#readPlacement.next(own, this.#decoder.payloadBytesAhead, this.#payloadTarget);
  }

  get lost(): FerryError | undefined {
    return this.#lost;
  }

  /**
   * Sends a request and resolves with its result. `sinkFor` (for `get`) opens the reply's stream
   * before any later frame is decoded: chunks may follow the reply in the same read.
   */
  request<O extends Op>(op: O, args: Args<O>, sinkFor?: (result: ResultOf[O] & { stream: number }) => StreamSink): Promise<ResultOf[O]> {
    if (this.#lost) return Promise.reject(this.#lost);
    const id = this.#nextId;
    this.#nextId = this.#nextId >= 0xffffffff ? 1 : this.#nextId + 1;
    return new Promise<ResultOf[O]>((resolve, reject) => {
      const pending: Pending = { resolve: resolve, reject, watched: !unwatchedOps.has(op) };
      if (sinkFor) pending.sinkFor = sinkFor as (result: { stream: number }) => StreamSink;
      this.#pending.set(id, pending);
      if (pending.watched) this.#watchedRequests += 1;
      this.#refreshWatchdog();
      this.#tickWrites.gather();
      this.socket.write(encodeControl({ id, op, ...args }));
    });
  }

  /** Writes one chunk frame; false when the socket's buffer is full (await `drained()`). `done` fires once it is flushed. */
  writeChunk(header: ChunkHeader, payload: Uint8Array, done: () => void): boolean {
    if (this.#lost) {
      done();
      return true;
    }
    // The head and the payload leave together: the socket is corked for the tick.
    this.#tickWrites.gather();
    this.socket.write(encodeChunkHead(header));
    return this.socket.write(payload, () => done());
  }

  async drained(): Promise<void> {
    if (!this.socket.writableNeedDrain || this.#lost) return;
    await new Promise<void>((resolve) => {
      const stop = this.watchDrain(() => {
        stop();
        resolve();
      });
    });
  }

  /**
   * Calls `wake` at each 'drain' of the socket, and once it closes, until the function returned
   * is called. One listener on the socket serves them all: a folder's uploads, each watching it,
   * are many more than Node's ten listeners per event before it warns.
   */
  watchDrain(wake: () => void): () => void {
    const watcher = (): void => wake(); // a Set entry of its own, even for the same `wake` twice
    this.#drainWatchers.add(watcher);
    return () => this.#drainWatchers.delete(watcher);
  }

  /** Calls `closed` once the socket closes, unless the function returned is called first (one listener on the socket for all, as `watchDrain`). */
  watchClose(closed: () => void): () => void {
    const watcher = (): void => {
      this.#closeWatchers.delete(watcher);
      closed();
    };
    this.#closeWatchers.add(watcher);
    return () => this.#closeWatchers.delete(watcher);
  }

  #wakeDrainWatchers(): void {
    for (const watcher of [...this.#drainWatchers]) watcher();
  }

  openStream(stream: number, sink: StreamSink): void {
    this.#streams.set(stream, sink);
    this.#refreshWatchdog();
  }

  closeStream(stream: number): void {
    this.#streams.delete(stream);
    this.#refreshWatchdog();
  }

  /**
   * Stops reading from the server while `holder` wants it (backpressure for downloads: each
   * download's receiver holds its own pause, and reading goes on only when none does).
   */
  pause(holder: object): void {
    this.#pausers.add(holder);
    if (this.#pausers.size > 1) return;
    this.#decoder.pause();
    this.socket.pause();
    this.#pausedByUs = true;
    this.#refreshWatchdog();
  }

  /** `holder` no longer needs reading paused (nothing happens if it did not pause it). */
  resume(holder: object): void {
    if (!this.#pausers.delete(holder) || this.#pausers.size > 0) return;
    this.#pausedByUs = false;
    this.#refreshWatchdog();
    this.socket.resume();
    this.#decoder.resume();
  }

  async close(): Promise<void> {
    if (this.socket.destroyed) return;
    const closed = once(this.socket, 'close');
    this.socket.end();
    this.socket.destroySoon();
    await closed;
  }

  /** Closes the connection at once; what is pending fails with `error` (default: ECONNLOST). */
  /** Closes the connection at once: it counts as lost from now on (the next request of a client connects again). */
  destroy(error?: FerryError): void {
    this.#lose(error ?? new FerryError('ECONNLOST', 'connection to the server lost'));
    this.socket.destroy();
  }

  // ---- FrameSink ----

  control(message: Record<string, unknown>): void {
    if (typeof message['id'] === 'number') {
      const pending = this.#pending.get(message['id']);
      if (!pending) return;
      this.#pending.delete(message['id']);
      if (pending.watched) this.#watchedRequests -= 1;
      if (message['ok'] !== true) {
        this.#refreshWatchdog();
        return pending.reject(errorFrom(message));
      }
      const result = message['result'] as { stream: number };
      if (pending.sinkFor) this.#streams.set(result.stream, pending.sinkFor(result));
      this.#refreshWatchdog();
      pending.resolve(result);
      return;
    }
    if (message['event'] === 'abort' && typeof message['stream'] === 'number') {
      const sink = this.#streams.get(message['stream']);
      this.#streams.delete(message['stream']);
      this.#refreshWatchdog();
      sink?.fail(errorFrom(message));
      return;
    }
    if (message['event'] === 'bye') this.#lose(errorFrom(message));
  }

  chunkStart(header: ChunkHeader): void {
    this.#currentStream = this.#streams.get(header.stream);
    this.#currentStream?.chunkStart(header);
  }

  chunkData(piece: Uint8Array): void {
    this.#currentStream?.chunkData(piece);
  }

  chunkEnd(): void {
    this.#currentStream?.chunkEnd();
    this.#currentStream = undefined;
  }

  protocolError(error: FerryError): void {
    this.#lose(error);
    this.socket.destroy();
  }

  /**
   * Arms the stall watchdog while something is expected of the link (a watched request, an open
   * stream) and we are not holding it paused ourselves; disarms it otherwise, so an idle shell
   * connection is never cut by it.
   */
  #refreshWatchdog(): void {
    const watching = !this.#lost && !this.#pausedByUs && (this.#watchedRequests > 0 || this.#streams.size > 0);
    if (watching === this.#watchdogArmed) return;
    this.#watchdogArmed = watching;
    this.socket.setTimeout(watching ? this.#stallTimeoutMs : 0);
  }

  #lose(error: FerryError): void {
    if (this.#lost) return;
    this.#lost = error;
    this.socket.setTimeout(0);
    this.#watchdogArmed = false;
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
    this.#watchedRequests = 0;
    for (const sink of this.#streams.values()) sink.fail(error);
    this.#streams.clear();
  }
}

/** Size of the buffer each connection reads into. */
const readBufferBytes = 256 * 1024;

/**
 * Opens the socket, over TLS or in clear text, reading into one buffer per connection, reused
 * (`onread`), instead of a fresh Buffer per read: at hundreds of MiB/s those allocations cost more
 * in garbage collection than the copy. Where each read lands is `nextRead`'s choice: that buffer,
 * part of it, or a download's chunk buffer. Over TLS, a read is one record's decrypted bytes (at
 * most 16 KiB), copied by Node's TLS layer into the memory `nextRead` gives, in as many reads as
 * that memory takes.
 */
function openSocket(options: ConnectOptions, onBytes: (bytes: Uint8Array) => void, nextRead: (own: Buffer) => Uint8Array): Socket {
  const onread = placedReads(readBufferBytes, nextRead, onBytes);
  if (options.tls) {
    const socket = tlsConnect({
      host: options.host,
      port: options.port,
      minVersion: 'TLSv1.3',
      // A host name (not an address) goes in SNI and, with --ca, must be named by the certificate.
      ...(isIP(options.host) ? {} : { servername: options.host }),
      // With a CA, the handshake verifies the chain; otherwise checkServerCertificate pins the
      // certificate itself before anything is sent (a self-signed one has no chain to verify).
      ...(options.tls.ca === undefined ? { rejectUnauthorized: false } : { ca: options.tls.ca, rejectUnauthorized: true }),
      // Not in @types/node's TLS options, but tls.connect passes it on to the socket it makes.
      ...({ onread } as object),
    });
    socket.setNoDelay(true);
    writeLargeBuffersAlone(socket);
    return socket;
  }
  return netConnect({ host: options.host, port: options.port, noDelay: true, onread });
}

/** Waits for the connection (and, over TLS, the handshake and the certificate check); resolves with the certificate's fingerprint. */
async function connected(socket: Socket, address: string, tls: ClientTls | false): Promise<string | undefined> {
  let reached = false; // the TCP connection is up: what fails after that is the TLS handshake
  socket.once('connect', () => (reached = true));
  try {
    await once(socket, tls ? 'secureConnect' : 'connect');
  } catch (error) {
    if (error instanceof FerryError) throw error;
    if (tls && reached) throw tlsHandshakeError(error, address);
    const detail = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new FerryError('ECONNECT', `cannot connect to ${address} (${detail})`, { cause: error });
  }
  return tls ? checkServerCertificate(socket as TLSSocket, address, tls) : undefined;
}

/**
 * The protocol a server's first bytes show, when it is a well-known one that is not Ferry's: an
 * HTTP server answers our hello with a status line, an SSH server greets with its banner, a TLS
 * server answers with a handshake or an alert record.
 */
export function foreignProtocol(first: Uint8Array): string | undefined {
  const text = Buffer.from(first.subarray(0, 8)).toString('latin1');
  if (text.startsWith('HTTP/')) return 'HTTP';
  if (text.startsWith('SSH-')) return 'SSH';
  if ((first[0] === 0x15 || first[0] === 0x16) && first[1] === 0x03) return 'TLS';
  return undefined;
}

function errorFrom(message: Record<string, unknown>): FerryError {
  const code = isErrorCode(message['code']) ? message['code'] : 'EPROTO';
  const text = typeof message['message'] === 'string' ? message['message'] : String(message['code']);
  return new FerryError(code, text);
}
