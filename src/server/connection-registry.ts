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
  maxUnauthenticated: number;
  maxUnauthenticatedPerAddress: number;
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

/** Where a connection stands: its client network, and whether it is past the gate. */
interface Standing {
  readonly network: string;
  established: boolean;
}

/**
 * The server's open connections: admission against the limits (in all, and per client network),
 * the count `info` reports, and closing them all at shutdown. Emits `'open'` and `'close'` with
 * the connection, so a test (or an embedder) can await a connection's end instead of polling.
 *
 * The connection gate: a connection is *pending* from its accept until it is *established* (its
 * hello accepted; once accounts exist, its login). Pending connections have a budget of their own,
 * in all and per network, and a newcomer over it closes the oldest pending one (of its own
 * network, or of the network holding the most) instead of being refused, as sshd's MaxStartups
 * drops early connections: silent sockets and garbage from one network never keep a real client
 * out. Established connections count against `maxConnections` and `maxConnectionsPerAddress`.
 */
export class ConnectionRegistry<C extends RegisteredConnection> extends EventEmitter<{ open: [C]; close: [C] }> {
  readonly #limits: ConnectionLimits;
  readonly #log: Logger;
  readonly #open = new Map<RegisteredConnection, Standing>();
  /** Established connections, in all and per network. */
  #established = 0;
  readonly #perNetwork = new Map<string, number>();
  /** Pending connections per network, oldest first, and how many in all. */
  readonly #pending = new Map<string, Set<C>>();
  #pendingCount = 0;
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
    return this.#open.keys() as IterableIterator<C>;
  }

  /** Connections accepted and not yet established. */
  get pendingCount(): number {
    return this.#pendingCount;
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
    this.#makePendingRoom(network);
    this.#descriptors.take();
    const connection = create();
    const standing: Standing = { network, established: false };
    this.#open.set(connection, standing);
    this.#addPending(network, connection);
    this.emit('open', connection);
    void connection.closed.then(() => {
      this.#open.delete(connection);
      this.#descriptors.release();
      if (standing.established) {
        this.#established -= 1;
        this.#count(this.#perNetwork, network, -1);
      } else this.#removePending(network, connection);
      this.emit('close', connection);
    });
    return connection;
  }

  /**
   * The connection passed the gate (its hello was accepted): it leaves the pending budget and
   * counts against the limits on established connections. Throws EBUSY when it is over them (the
   * caller closes it).
   */
  establish(connection: RegisteredConnection): void {
    const standing = this.#open.get(connection);
    if (!standing || standing.established) return;
    const refusal = this.#overEstablished(standing.network);
    if (refusal) throw refusal;
    this.#removePending(standing.network, connection as C);
    standing.established = true;
    this.#established += 1;
    this.#count(this.#perNetwork, standing.network, 1);
  }

  /**
   * Makes room in the pending budget for a newcomer from `network`: at its network's cap, that
   * network's oldest pending connection is closed; at the global cap, the oldest of the network
   * holding the most.
   */
  #makePendingRoom(network: string): void {
    const { maxUnauthenticated, maxUnauthenticatedPerAddress } = this.#limits;
    let victimNetwork: string | undefined;
    if ((this.#pending.get(network)?.size ?? 0) >= maxUnauthenticatedPerAddress) victimNetwork = network;
    else if (this.#pendingCount >= maxUnauthenticated) {
      let most = 0;
      for (const [each, set] of this.#pending) {
        if (set.size > most) {
          most = set.size;
          victimNetwork = each;
        }
      }
    }
    if (victimNetwork === undefined) return;
    const oldest = this.#pending.get(victimNetwork)?.values().next().value;
    if (!oldest) return;
    this.#removePending(victimNetwork, oldest);
    this.#reportRefusal(victimNetwork, new FerryError('EBUSY', 'closed an unfinished handshake to admit a newer connection'));
    oldest.closeWith(
      new FerryError('EBUSY', 'closed to make room for newer connections: this one had not finished its handshake; try again'),
    );
  }

  #addPending(network: string, connection: C): void {
    let set = this.#pending.get(network);
    if (!set) this.#pending.set(network, (set = new Set()));
    set.add(connection);
    this.#pendingCount += 1;
  }

  #removePending(network: string, connection: C): void {
    const set = this.#pending.get(network);
    if (!set?.delete(connection)) return;
    this.#pendingCount -= 1;
    if (set.size === 0) this.#pending.delete(network);
  }

  #count(counts: Map<string, number>, network: string, change: number): void {
    const value = (counts.get(network) ?? 0) + change;
    if (value > 0) counts.set(network, value);
    else counts.delete(network);
  }

  /**
   * Tells every connection why (`error`) and gives them `graceMs` to end by themselves (their
   * uploads' chunks land and are recorded), then cuts the rest. Settles once all are closed.
   */
  async closeAll(error: FerryError, graceMs: number): Promise<void> {
    clearTimeout(this.#refusalTimer);
    for (const connection of this.#open.keys()) connection.closeWith(error);
    const allClosed = Promise.all([...this.#open.keys()].map((connection) => connection.closed));
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    await Promise.race([allClosed, graceOver]);
    clearTimeout(timer);
    for (const connection of this.#open.keys()) connection.socket.destroy();
    await allClosed;
  }

  /**
   * Why a new connection from `network` is refused (EBUSY), or undefined: the established limits
   * are full (it could not be established), or the descriptors are. The pending budget refuses no
   * one: it makes room (see `#makePendingRoom`).
   */
  #refusal(network: string): FerryError | undefined {
    if (!this.#descriptors.roomForConnection()) return new FerryError('EBUSY', 'the server is short of file descriptors; try again later');
    return this.#overEstablished(network);
  }

  /** Why one more established connection from `network` is over the limits, if it is. */
  #overEstablished(network: string): FerryError | undefined {
    const { maxConnections, maxConnectionsPerAddress } = this.#limits;
    if (this.#established >= maxConnections)
      return new FerryError('EBUSY', `the server is at its limit of ${maxConnections} connections; try again later`);
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
