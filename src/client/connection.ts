import { once } from 'node:events';
import { type Socket, connect as netConnect } from 'node:net';
import { FrameDecoder, type FrameSink } from '../protocol/decoder.js';
import { encodeChunkHead, encodeControl } from '../protocol/encoder.js';
import { FerryError, isErrorCode } from '../protocol/errors.js';
import { type ChunkHeader, maxChunkBytesCeiling, protocolVersion } from '../protocol/frames.js';
import { maxServerControlBytes } from '../protocol/limits.js';
import type { HelloResult, Op, RequestOf, ResultOf } from '../protocol/messages.js';
import { ferryVersion } from '../version.js';
import { formatDuration, hostPort } from '../units.js';

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
}

export const defaultClientStallTimeoutMs = 30_000;

/** Receives the chunks of one download stream. */
export interface StreamSink {
  chunkStart(header: ChunkHeader): void;
  chunkData(piece: Uint8Array): void;
  chunkEnd(): void;
  /** The stream ended with an error: an `abort` from the server, or the connection was lost. */
  fail(error: FerryError): void;
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

/** Size of the buffer each connection reads into. */
const readBufferBytes = 256 * 1024;

type Args<O extends Op> = Omit<RequestOf<O>, 'id' | 'op'>;

/**
 * One connection to a Ferry server: the handshake, requests matched to replies by id, and
 * chunk frames routed to their stream. Knows nothing about files.
 */
export class ClientConnection implements FrameSink {
  readonly socket: Socket;
  hello!: HelloResult;
  readonly #decoder: FrameDecoder;
  readonly #pending = new Map<number, Pending>();
  readonly #streams = new Map<number, StreamSink>();
  #currentStream: StreamSink | undefined;
  #nextId = 1;
  #lost: FerryError | undefined;
  readonly #stallTimeoutMs: number;
  /** Pending requests the stall watchdog covers. */
  #watchedRequests = 0;
  /** Reading paused by us (a download waiting for the disk): the server is not to blame. */
  #pausedByUs = false;
  #watchdogArmed = false;

  /** Where it is connected, as people type it: for messages. */
  readonly #address: string;
  /** Whether any byte has come from the server yet: the first ones tell a foreign protocol. */
  #heardFrom = false;

  private constructor(socket: Socket, stallTimeoutMs: number, address: string) {
    this.socket = socket;
    this.#address = address;
    this.#stallTimeoutMs = stallTimeoutMs;
    this.#decoder = new FrameDecoder({ maxControlBytes: maxServerControlBytes, maxChunkBytes: maxChunkBytesCeiling }, this);

    socket.on('error', () => {}); // the 'close' that follows reports it
    socket.on('close', () => this.#lose(new FerryError('ECONNLOST', 'connection to the server lost')));
    // The socket's inactivity timer: reads and writes handed to the kernel both reset it.
    socket.on('timeout', () => {
      this.#lose(new FerryError('ETIMEDOUT', `stalled: no data for ${formatDuration(this.#stallTimeoutMs)}`));
      socket.destroy();
    });
  }

  static async connect(options: ConnectOptions): Promise<ClientConnection> {
    // Reads land in one buffer per connection, reused (`onread`), instead of a fresh 64 KiB Buffer
    // per read: at hundreds of MiB/s those allocations cost more in garbage collection than the copy.
    let connection: ClientConnection | undefined;
    const readBuffer = Buffer.allocUnsafe(readBufferBytes);
    const socket = netConnect({
      host: options.host,
      port: options.port,
      noDelay: true,
      onread: {
        buffer: readBuffer,
        callback: (bytes: number, buffer: Uint8Array) => {
          connection?.received(buffer.subarray(0, bytes));
          return true;
        },
      },
    });
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
      if (connection && options.knownServer) {
        connection.destroy(new FerryError('ETIMEDOUT', `${address} did not answer the handshake in ${formatDuration(timeoutMs)}`));
      } else if (connection) {
        // Connected, but the handshake got no answer: something listens there that is not a Ferry
        // server (or one wedged). Another attempt would find the same, so this is not retried.
        connection.destroy(
          new FerryError(
            'EPROTO',
            `no Ferry server answered at ${address} (it accepted the connection but sent nothing in ${formatDuration(timeoutMs)})`,
          ),
        );
      } else socket.destroy(new FerryError('ECONNECT', `no answer from ${address} in ${formatDuration(timeoutMs)}`));
    }, timeoutMs);
    try {
      await once(socket, 'connect');
    } catch (error) {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      if (error instanceof FerryError) throw error;
      const detail = (error as NodeJS.ErrnoException).code ?? String(error);
      throw new FerryError('ECONNECT', `cannot connect to ${address} (${detail})`, { cause: error });
    }
    connection = new ClientConnection(socket, options.stallTimeoutMs ?? defaultClientStallTimeoutMs, address);
    try {
      connection.hello = await connection.request('hello', {
        protocol: protocolVersion,
        client: `ferry/${ferryVersion}`,
        capabilities: ['resume'],
        ...(options.token === undefined ? {} : { token: options.token }),
      });
    } catch (error) {
      socket.destroy();
      // Closed before a single byte came back: not what a Ferry server does (it says why before it
      // hangs up). Still retried, as a link that dropped would be, but it says what else it may be.
      if (error instanceof FerryError && error.code === 'ECONNLOST' && !connection.#heardFrom) {
        throw new FerryError(
          'ECONNLOST',
          `${address} closed the connection without answering the handshake (not a Ferry server? one behind TLS?)`,
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
        this.destroy(new FerryError('EPROTO', `${this.#address} speaks ${foreign}, not the Ferry protocol (wrong port?)`));
        return;
      }
    }
    this.#decoder.push(bytes, true);
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
      this.socket.write(encodeControl({ id, op, ...args }));
    });
  }

  /** Writes one chunk frame; false when the socket's buffer is full (await `drained()`). `done` fires once it is flushed. */
  writeChunk(header: ChunkHeader, payload: Uint8Array, done: () => void): boolean {
    if (this.#lost) {
      done();
      return true;
    }
    this.socket.cork();
    this.socket.write(encodeChunkHead(header));
    const room = this.socket.write(payload, () => done());
    this.socket.uncork();
    return room;
  }

  async drained(): Promise<void> {
    if (!this.socket.writableNeedDrain || this.#lost) return;
    await new Promise<void>((resolve) => {
      const finish = (): void => {
        this.socket.off('drain', finish);
        this.socket.off('close', finish);
        resolve();
      };
      this.socket.on('drain', finish);
      this.socket.on('close', finish);
    });
  }

  openStream(stream: number, sink: StreamSink): void {
    this.#streams.set(stream, sink);
    this.#refreshWatchdog();
  }

  closeStream(stream: number): void {
    this.#streams.delete(stream);
    this.#refreshWatchdog();
  }

  /** Stops reading from the server (backpressure for downloads). */
  pause(): void {
    this.#decoder.pause();
    this.socket.pause();
    this.#pausedByUs = true;
    this.#refreshWatchdog();
  }

  resume(): void {
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
