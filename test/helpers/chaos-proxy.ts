import { rememberServer, serverAt } from './accounts.js';
import { once } from 'node:events';
import { type AddressInfo, type Socket, createConnection, createServer } from 'node:net';
import type { Test } from 'tap';

export type Direction = 'up' | 'down';

/** What the proxy does to the bytes it carries. Every chance is per connection or per read, 0..1. */
export interface ChaosOptions {
  /** Seeds every random choice (connection n draws from its own stream derived from it). */
  seed: number;
  /** Chance that a connection is cut at all. */
  cutChance: number;
  /** Share of the cuts that fall in the client-to-target direction (the rest go the other way). */
  upCutShare: number;
  /** A cut falls after a byte offset drawn uniformly from [0, cutWithinBytes) in its direction... */
  cutWithinBytes: number;
  /** ...or, this often, within the first `earlyCutBytes` (handshake, requests and replies). */
  earlyCutChance: number;
  earlyCutBytes: number;
  /** Chance that a read is held back before it is forwarded, for 1..maxDelayMs ms. */
  delayChance: number;
  maxDelayMs: number;
  /** Chance that the first 1..maxSplitBytes bytes of a read go out as writes of 1..maxPieceBytes. */
  splitChance: number;
  maxSplitBytes: number;
  maxPieceBytes: number;
  /**
   * Sees every byte forwarded on each connection (numbered from 0 in the order they were
   * accepted), per direction, in order, once the destination socket has taken it. A
   * protocol-aware meter lives in the test, not here.
   */
  observe?: (connection: number, direction: Direction) => (bytes: Uint8Array) => void;
}

export interface ChaosStats {
  connections: number;
  cuts: Record<Direction, number>;
  /** The numbers of the connections that were cut. */
  cutConnections: number[];
  /** Bytes the destination socket took (handed to the kernel), per direction, over all connections. */
  forwardedBytes: Record<Direction, number>;
  delays: number;
  splits: number;
  /** Writes of 1..maxPieceBytes bytes made by splits. */
  tinyWrites: number;
}

export interface ChaosProxy {
  port: number;
  /** A copy of the counters so far. */
  stats(): ChaosStats;
}

/**
 * sfc32, a small seeded PRNG (Chris Doty-Humphrey's Small Fast Chaotic generator, in unsigned
 * 32-bit arithmetic): the same seed gives the same draws, so a failing soak can be replayed.
 * Returns floats in [0, 1).
 */
export function seededRandom(seed: number): () => number {
  let a = 0x9e3779b9;
  let b = 0x243f6a88;
  let c = 0xb7e15162;
  let d = seed >>> 0;
  const next = (): number => {
    a >>>= 0;
    b >>>= 0;
    c >>>= 0;
    d >>>= 0;
    const sum = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = ((c << 21) | (c >>> 11)) >>> 0;
    c = (c + sum) >>> 0;
    return sum / 4294967296;
  };
  // The first draws of sfc32 still show the constant start state: warm it up.
  for (let i = 0; i < 15; i += 1) next();
  return next;
}

/** An integer in [min, max] from `random`. */
export function between(random: () => number, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1));
}

/** Where one connection will be cut, drawn when it opens. */
interface CutPlan {
  direction: Direction;
  /** Cut once exactly this many bytes have been forwarded in `direction`. */
  afterBytes: number;
}

function planCut(random: () => number, options: ChaosOptions): CutPlan | undefined {
  if (random() >= options.cutChance) return undefined;
  const direction: Direction = random() < options.upCutShare ? 'up' : 'down';
  const within = random() < options.earlyCutChance ? options.earlyCutBytes : options.cutWithinBytes;
  return { direction, afterBytes: Math.floor(random() * within) };
}

/**
 * One proxied connection: the client's socket, the one to the target, and a relay each way.
 * `close` destroys both sockets at once, as a dropped link would; bytes queued in the proxy are lost.
 */
class Link {
  readonly id: number;
  readonly client: Socket;
  readonly target: Socket;
  readonly #stats: ChaosStats;
  readonly #timers = new Set<{ timer: NodeJS.Timeout; wake: () => void }>();
  #closed = false;
  readonly cut: CutPlan | undefined;

  constructor(id: number, client: Socket, target: Socket, cut: CutPlan | undefined, stats: ChaosStats) {
    this.id = id;
    this.client = client;
    this.target = target;
    this.cut = cut;
    this.#stats = stats;
  }

  get closed(): boolean {
    return this.#closed;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.client.destroy();
    this.target.destroy();
    // Relays asleep in a delay wake up, see the link closed, and stop.
    for (const sleeper of this.#timers) {
      clearTimeout(sleeper.timer);
      sleeper.wake();
    }
    this.#timers.clear();
  }

  cutNow(direction: Direction): void {
    if (this.#closed) return;
    this.#stats.cuts[direction] += 1;
    this.#stats.cutConnections.push(this.id);
    this.close();
  }

  /** The proxy's own delay injection: a timer, cancelled (woken early) if the link closes. */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const sleeper = {
        timer: setTimeout(() => {
          this.#timers.delete(sleeper);
          resolve();
        }, ms),
        wake: resolve,
      };
      this.#timers.add(sleeper);
    });
  }
}

/**
 * Carries one direction of a link. Reads are handled one at a time: the source is paused until a
 * read has been forwarded (delays, splits and all) and the destination has taken every byte of it,
 * so the proxy holds at most one read (64 KiB) per direction, whatever the peers do.
 */
class Relay {
  readonly #link: Link;
  readonly #from: Socket;
  readonly #to: Socket;
  readonly #direction: Direction;
  readonly #random: () => number;
  readonly #options: ChaosOptions;
  readonly #stats: ChaosStats;
  readonly #observe: ((bytes: Uint8Array) => void) | undefined;
  /** Bytes forwarded in this direction on this link: the clock a cut is planned on. */
  #forwarded = 0;
  /** Reads are forwarded strictly in order, one after another. */
  #queue: Promise<void> = Promise.resolve();

  constructor(link: Link, direction: Direction, random: () => number, options: ChaosOptions, stats: ChaosStats) {
    this.#link = link;
    this.#direction = direction;
    [this.#from, this.#to] = direction === 'up' ? [link.client, link.target] : [link.target, link.client];
    this.#random = random;
    this.#options = options;
    this.#stats = stats;
    this.#observe = options.observe?.(link.id, direction);
  }

  start(): void {
    this.#from.on('data', (data: Buffer) => {
      this.#from.pause();
      this.#queue = this.#queue
        .then(() => this.#forwardRead(data))
        .then(() => {
          if (!this.#link.closed) this.#from.resume();
        });
    });
    // A peer's orderly end goes through once everything before it has.
    this.#from.on('end', () => {
      this.#queue = this.#queue.then(() => {
        if (!this.#link.closed) this.#to.end();
      });
    });
  }

  async #forwardRead(data: Buffer): Promise<void> {
    const { delayChance, maxDelayMs, splitChance, maxSplitBytes, maxPieceBytes } = this.#options;
    if (this.#random() < delayChance) {
      this.#stats.delays += 1;
      await this.#link.sleep(between(this.#random, 1, maxDelayMs));
    }
    let rest = data;
    if (this.#random() < splitChance) {
      this.#stats.splits += 1;
      let head = rest.subarray(0, between(this.#random, 1, maxSplitBytes));
      rest = rest.subarray(head.length);
      while (head.length > 0) {
        const piece = head.subarray(0, between(this.#random, 1, maxPieceBytes));
        head = head.subarray(piece.length);
        this.#stats.tinyWrites += 1;
        if (!(await this.#send(piece))) return;
        // One piece per turn of the event loop, so the peer reads them one by one, not coalesced.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
    if (rest.length > 0) await this.#send(rest);
  }

  /**
   * Writes `piece` unless the planned cut comes first: then only the bytes up to the cut go out,
   * and the link is cut once the destination has taken them. Resolves false when the link is gone.
   */
  async #send(piece: Buffer): Promise<boolean> {
    if (this.#link.closed) return false;
    const cut = this.#link.cut;
    if (cut?.direction === this.#direction && this.#forwarded + piece.length >= cut.afterBytes) {
      const head = piece.subarray(0, cut.afterBytes - this.#forwarded);
      if (head.length > 0) await this.#write(head);
      this.#link.cutNow(this.#direction);
      return false;
    }
    return this.#write(piece);
  }

  /**
   * Resolves once the destination socket has handed `piece` to the kernel (its write callback),
   * true if the link is still up. Waiting for that is the backpressure. Bytes are counted only
   * then: what the kernel took still reaches the peer when the link is cut (the close sends it
   * ahead of the FIN), what died in the proxy's own buffers does not. (Unless the closed socket
   * had unread bytes from its own peer: the kernel then resets the connection and may drop the
   * unsent rest. In a Ferry transfer the side that receives the file's bytes sends nothing
   * while they flow, so the socket towards it has nothing unread when a cut comes mid-stream.)
   */
  #write(piece: Buffer): Promise<boolean> {
    return new Promise((resolve) => {
      this.#to.write(piece, (error) => {
        if (error) return resolve(false);
        this.#forwarded += piece.length;
        this.#stats.forwardedBytes[this.#direction] += piece.length;
        this.#observe?.(piece);
        resolve(!this.#link.closed);
      });
    });
  }
}

/**
 * A TCP proxy on 127.0.0.1 in front of `targetPort` that misbehaves like a bad network, driven by
 * a seeded PRNG: it cuts connections (both sockets destroyed) after a random byte offset in either
 * direction, holds reads back for a few ms, and splits the start of some reads into tiny writes.
 * Closed, with every connection, when the test ends.
 */
export async function startChaosProxy(t: Test, targetPort: number, options: ChaosOptions): Promise<ChaosProxy> {
  const stats: ChaosStats = {
    connections: 0,
    cuts: { up: 0, down: 0 },
    cutConnections: [],
    forwardedBytes: { up: 0, down: 0 },
    delays: 0,
    splits: 0,
    tinyWrites: 0,
  };
  const links = new Set<Link>();
  const server = createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
    // Each connection draws from its own stream: what happens on connection n does not depend on
    // how many bytes went over the ones before it.
    const sequence = stats.connections;
    stats.connections += 1;
    const random = seededRandom((options.seed ^ Math.imul(sequence + 1, 0x9e3779b1)) >>> 0);
    const target = createConnection({ host: '127.0.0.1', port: targetPort, allowHalfOpen: true, noDelay: true });
    const link = new Link(sequence, client, target, planCut(random, options), stats);
    links.add(link);
    const close = (): void => {
      link.close();
      links.delete(link);
    };
    for (const socket of [client, target]) socket.on('error', close).on('close', close);
    const upRandom = seededRandom(Math.floor(random() * 2 ** 32));
    const downRandom = seededRandom(Math.floor(random() * 2 ** 32));
    new Relay(link, 'up', upRandom, options, stats).start();
    new Relay(link, 'down', downRandom, options, stats).start();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  // Clients through the proxy log in as the test account of the server behind it.
  const target = serverAt(targetPort);
  if (target) rememberServer((server.address() as AddressInfo).port, target);
  t.teardown(async () => {
    for (const link of links) link.close();
    links.clear();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return {
    port: (server.address() as AddressInfo).port,
    stats: () => structuredClone(stats),
  };
}
