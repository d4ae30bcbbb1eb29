import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { encodeControl } from '../protocol/encoder.js';
import { FerryError, errorFields } from '../protocol/errors.js';
import { addressPrefix } from './address-prefix.js';

/** What the registry needs of a connection. */
export interface RegisteredConnection {
  readonly socket: Socket;
  /** Settles once the connection is closed and has released what it held. */
  readonly closed: Promise<void>;
  /** Tells the client why (a `bye`) and ends the connection. */
  closeWith(error: FerryError): void;
}

export interface ConnectionLimits {
  maxConnections: number;
  maxConnectionsPerAddress: number;
  lingerMs: number;
}

/** The descriptors a connection's socket counts against (see DescriptorBudget). */
export interface SocketBudget {
  roomForConnection(): boolean;
  take(): boolean;
  release(): void;
}

/** How often refusals are summed up in the log, per client network. */
const refusalReportMs = 60_000;

/**
 * Ends `socket` after what is already written (a `bye` last). What the peer still sends is read
 * and dropped until it closes its side, at most `lingerMs`: closing a socket with unread input
 * makes the kernel send a reset, which can destroy the replies still in flight.
 */
export function endWithLinger(socket: Socket, lingerMs: number): void {
  socket.end();
  socket.resume();
  const linger = setTimeout(() => socket.destroy(), lingerMs);
  socket.once('close', () => clearTimeout(linger));
}

/**
 * The server's open connections: admission against the limits (in all, and per client network),
 * the count `info` reports, and closing them all at shutdown. Emits `'open'` and `'close'` with
 * the connection, so a test (or an embedder) can await a connection's end instead of polling.
 */
export class ConnectionRegistry<C extends RegisteredConnection> extends EventEmitter<{ open: [C]; close: [C] }> {
  readonly #limits: ConnectionLimits;
  readonly #log: Logger;
  readonly #open = new Set<C>();
  readonly #perNetwork = new Map<string, number>();
  /** Refusals since the last report, by client network (see `#reportRefusal`). */
  readonly #refused = new Map<string, number>();
  #refusalTimer: NodeJS.Timeout | undefined;

  readonly #descriptors: SocketBudget;

  constructor(limits: ConnectionLimits, descriptors: SocketBudget, logger: Logger) {
    super();
    this.#limits = limits;
    this.#descriptors = descriptors;
    this.#log = logger;
  }

  get count(): number {
    return this.#open.size;
  }

  /** The connections open now. */
  open(): IterableIterator<C> {
    return this.#open.values();
  }

  /**
   * Admits a new socket: the connection `create` makes is counted until it closes. Over a limit,
   * the client gets `bye EBUSY` and the socket ends (with the linger), or, when the descriptors
   * left would not even hold that, is closed at once; returns undefined then.
   */
  admit(socket: Socket, create: () => C): C | undefined {
    const network = addressPrefix(socket.remoteAddress ?? '?');
    const refusal = this.#refusal(network);
    if (refusal) {
      socket.on('error', () => {
        // A refused client that resets the connection: nothing more to tell it.
      });
      this.#reportRefusal(network, refusal);
      if (!this.#descriptors.roomForConnection()) {
        // Not even a lingering refusal fits: its descriptor goes back at once (the client sees a
        // reset), so a flood can never fill the descriptor table and the accepts stall.
        socket.destroy();
        return undefined;
      }
      // A lingering refusal holds its descriptor until it closes, so it is counted like a connection.
      this.#descriptors.take();
      socket.once('close', () => this.#descriptors.release());
      socket.write(encodeControl({ event: 'bye', ...errorFields(refusal) }));
      endWithLinger(socket, this.#limits.lingerMs);
      return undefined;
    }
    this.#perNetwork.set(network, (this.#perNetwork.get(network) ?? 0) + 1);
    this.#descriptors.take();
    const connection = create();
    this.#open.add(connection);
    this.emit('open', connection);
    void connection.closed.then(() => {
      this.#open.delete(connection);
      this.#descriptors.release();
      const left = (this.#perNetwork.get(network) ?? 1) - 1;
      if (left > 0) this.#perNetwork.set(network, left);
      else this.#perNetwork.delete(network);
      this.emit('close', connection);
    });
    return connection;
  }

  /**
   * Tells every connection why (`error`) and gives them `graceMs` to end by themselves (their
   * uploads' chunks land and are recorded), then cuts the rest. Settles once all are closed.
   */
  async closeAll(error: FerryError, graceMs: number): Promise<void> {
    clearTimeout(this.#refusalTimer);
    for (const connection of this.#open) connection.closeWith(error);
    const allClosed = Promise.all([...this.#open].map((connection) => connection.closed));
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    await Promise.race([allClosed, graceOver]);
    clearTimeout(timer);
    for (const connection of this.#open) connection.socket.destroy();
    await allClosed;
  }

  /** Why a new connection from `network` is refused (EBUSY), or undefined when it is within the limits. */
  #refusal(network: string): FerryError | undefined {
    const { maxConnections, maxConnectionsPerAddress } = this.#limits;
    if (this.#open.size >= maxConnections)
      return new FerryError('EBUSY', `the server is at its limit of ${maxConnections} connections; try again later`);
    if (!this.#descriptors.roomForConnection()) return new FerryError('EBUSY', 'the server is short of file descriptors; try again later');
    if ((this.#perNetwork.get(network) ?? 0) >= maxConnectionsPerAddress) {
      return new FerryError('EBUSY', `${network} already has ${maxConnectionsPerAddress} connections open, the most one network may have`);
    }
    return undefined;
  }

  /**
   * Logs a refusal without letting a flood of them flood the log: the first from a network is
   * logged at once, the rest are summed up once a minute ("N connections from X refused").
   */
  #reportRefusal(network: string, refusal: FerryError): void {
    const earlier = this.#refused.get(network);
    this.#refused.set(network, (earlier ?? 0) + (earlier === undefined ? 0 : 1));
    if (earlier === undefined) this.#log.warn({ client: network }, refusal.message);
    this.#refusalTimer ??= setTimeout(() => {
      this.#refusalTimer = undefined;
      for (const [from, count] of this.#refused) {
        if (count > 0)
          this.#log.warn({ client: from, refused: count }, `${count} more connections from ${from} refused in the last minute`);
      }
      this.#refused.clear();
    }, refusalReportMs).unref();
  }
}
