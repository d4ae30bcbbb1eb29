/**
 * Whether a sender packs (compresses) its next chunk. `always` packs every chunk; `off` none;
 * `auto` packs only while that is expected to move the file faster, from three things it
 * measures as the transfer runs:
 *
 * - the link's rate `L`, in bytes on the wire per ms, over windows of at least `windowBytes` and
 *   `windowMs` in which the sender found the socket full (`blocked`): then the socket drains at
 *   the pace of the link (or the receiver), whatever the buffers hold. A window is timed from its
 *   first chunk's flush to its last's, less the time the sender had nothing out (every chunk
 *   decided was flushed and the next not yet decided: between the files of a folder, say), which
 *   says nothing of the link. Flushes come in bursts (a drained socket takes the chunks queued
 *   behind it at once), so a window must span many bursts: one of two 4 MiB chunks over a
 *   100 Mbit/s link, both flushed in the same burst, once read as tens of GB/s and turned packing
 *   off. The faster of the last two such windows counts, so one slow moment does not pass for a
 *   slow link. A window the socket never held back says only that the sender is slower than the
 *   link, and packing cannot help such a sender.
 * - how fast this side packs, `C` (raw bytes per ms of one codec thread, under whatever else the
 *   machine is doing), and how much a chunk shrinks, `r`: from the chunks it packs, and from a
 *   single chunk packed as a probe when it has no recent figure (a whole chunk, as big as the
 *   largest yet: a file's last few bytes would say the data does not shrink, and a small sample
 *   times brotli at a third of its speed on a chunk).
 *
 * Packing goes on when the link is well below the compressor (`C >= linkShare * L`) and the
 * data shrinks enough that packed, at about min(C, L * r), the file would move `winMargin` times
 * faster than raw, at L. The first rule is there because a sender cannot tell a slow network from
 * a slow receiver: on loopback the "link" is the receiver's CPU, which would also have to unpack
 * every chunk, and packing there only slows both ends down. So a link much slower than the
 * compressor carrying data that shrinks gets packed chunks; loopback, and a LAN about as fast as
 * the compressor, do not. No probe is made while the link is faster than `linkShare` times the
 * fastest codec here could pack (about 400 MiB/s): on loopback `auto` costs nothing, not even
 * the start of the codec threads. While packing, a window in which the socket was not full means
 * the compressor is what limits the sender: after a stretch of such windows (growing each time,
 * as for probes that say no) one window goes raw to measure the link again.
 *
 * One policy may serve every transfer a connection sends (the files of a folder, each too small
 * to fill a window of its own): each chunk's `PackTicket` says which window it counts in,
 * whatever order the transfers' chunks reach the socket in.
 */
import { type PackMeasure, probeBytes } from './codecs.js';
import type { CodecName } from '../protocol/frames.js';

export type CompressMode = 'auto' | 'always' | 'off';

export interface PackingPolicyOptions {
  /**
   * Raw bytes in a measuring window (and at least two chunks). Far more than socket buffers
   * hold: a write's callback says the kernel took the bytes, not that they crossed the link.
   */
  windowBytes?: number;
  /**
   * Milliseconds a window lasts at least, from its first chunk's decision; a window whose flushes
   * spanned less than half of it is not measured (its rate would be a burst's, not the link's).
   */
  windowMs?: number;
  /** How much faster packing must be expected to be to pack. */
  winMargin?: number;
  /** How many times the link's rate the compressor's must be to pack. */
  linkShare?: number;
  /** How many times longer the wait before the next probe or raw check grows after one that changed nothing. */
  backoff?: number;
  /** Milliseconds, monotonic. */
  now?: () => number;
}

interface Window {
  packed: boolean;
  /** Chunks decided in this window, and their raw bytes; it takes no more once those reach `windowBytes`. */
  decided: number;
  decidedBytes: number;
  flushed: number;
  /** When its first chunk was decided: it takes chunks for `windowMs` at least. */
  openedAt: number;
  /** When its first chunk was flushed: the clock starts there, so that chunk's bytes are not counted. */
  startedAt: number;
  /** When its last chunk so far was flushed. */
  lastFlushAt: number;
  /** Whether its rate has been taken (once it is full and every chunk of it flushed). */
  measured: boolean;
  wireBytes: number;
  /** Whether the sender found the socket full while this window's chunks were going out. */
  blocked: boolean;
  /** Time since its first chunk in which the sender had nothing out: not the link's. */
  idleMs: number;
}

export type PackWay = 'pack' | 'raw' | 'probe';

/** What a policy decided for one chunk; given back with `blocked` and `flushed` for that chunk. */
export interface PackTicket {
  readonly way: PackWay;
}

interface Decision extends PackTicket {
  /** The window the chunk counts in (none when the mode is not `auto`). */
  readonly window: Window | undefined;
  readonly rawBytes: number;
}

function ticket(way: PackWay, window: Window | undefined, rawBytes: number): PackTicket {
  const decision: Decision = { way, window, rawBytes };
  return decision;
}

const fixedDecisions = { pack: ticket('pack', undefined, 0), raw: ticket('raw', undefined, 0) };

/** About the fastest any codec here packs on one thread, in raw bytes per ms (400 MiB/s). */
const fastestPackRate = (400 * 1024 * 1024) / 1000;

/** A running average that follows change: each new sample weighs a quarter. */
function follow(average: number | undefined, sample: number): number {
  return average === undefined ? sample : 0.75 * average + 0.25 * sample;
}

export class PackingPolicy {
  readonly mode: CompressMode;
  readonly #windowBytes: number;
  readonly #windowMs: number;
  readonly #winMargin: number;
  readonly #linkShare: number;
  readonly #backoff: number;
  readonly #now: () => number;
  #packing: boolean;
  /**
   * L: wire bytes per ms when the socket was full, the faster of the last two such windows: one
   * slow window (a receiver's disk flush, a busy moment) does not make a fast link look slow.
   */
  #linkRate: number | undefined;
  #lastWindowRate: number | undefined;
  /** C: raw bytes one codec thread packs per ms. */
  #packRate: number | undefined;
  /** r: raw bytes over wire bytes of the chunks packed (a chunk sent raw because it did not shrink counts 1). */
  #ratio: number | undefined;
  /** Windows measured since the last probe, and how many to wait before the next. */
  #sinceProbe = 0;
  #probeEvery = 1;
  #probeWanted = false;
  /** A probe was asked for and its answer (`packed`) has not come yet. */
  #probeOut = false;
  /** The largest chunk decided yet: a file's last chunk, smaller, says little of the data or the codec. */
  #largestChunk = 0;
  /** While packing: windows the socket was not full, and how many to allow before a raw window. */
  #unblockedPacked = 0;
  #rawCheckEvery = 2;
  #rawCheckWanted = false;
  #deciding: Window;
  /** Chunks decided and not yet flushed, and since when there has been none (undefined while some are). */
  #outstanding = 0;
  #idleSince: number | undefined;

  constructor(mode: CompressMode, options: PackingPolicyOptions = {}) {
    this.mode = mode;
    this.#windowBytes = options.windowBytes ?? 8 * 1024 * 1024;
    this.#windowMs = options.windowMs ?? 1000;
    this.#winMargin = options.winMargin ?? 1.5;
    this.#linkShare = options.linkShare ?? 3;
    this.#backoff = options.backoff ?? 2;
    this.#now = options.now ?? (() => performance.now());
    this.#packing = mode === 'always';
    this.#deciding = newWindow(this.#packing);
  }

  /** Whether packing is the way chunks go now. */
  get packing(): boolean {
    return this.#packing;
  }

  /**
   * How to send the next chunk, of `rawBytes`: `pack` it, send it `raw`, or `probe`: pack this one
   * (as for `pack`) to learn what packing costs and gives, and report that with `packed`.
   * Call once per chunk, as it is about to be sent; give the ticket back to `blocked` and `flushed`.
   */
  packNext(rawBytes: number): PackTicket {
    if (this.mode !== 'auto') return this.mode === 'always' ? fixedDecisions.pack : fixedDecisions.raw;
    const window = this.#push(rawBytes);
    this.#largestChunk = Math.max(this.#largestChunk, rawBytes);
    if (window.packed) return ticket('pack', window, rawBytes);
    // A probe waits for a chunk that tells: the few bytes of a file's end would not shrink.
    if (!this.#probeWanted || !this.#telling(rawBytes)) return ticket('raw', window, rawBytes);
    this.#probeWanted = false;
    this.#probeOut = true;
    return ticket('probe', window, rawBytes);
  }

  #push(rawBytes: number): Window {
    const now = this.#now();
    const idleSince = this.#idleSince;
    this.#idleSince = undefined;
    if (this.#isFull(this.#deciding, idleSince ?? now)) {
      // Full before the pause, if there was one: measured as it was when its last chunk left.
      this.#measure(this.#deciding);
      const raw = this.#rawCheckWanted;
      this.#rawCheckWanted = false;
      this.#deciding = newWindow(this.#packing && !raw);
    } else if (idleSince !== undefined && this.#deciding.decided > 0) {
      // Nothing was out since then: that time was the sender's, not the link's.
      this.#deciding.idleMs += now - idleSince;
    }
    const window = this.#deciding;
    if (window.decided === 0) window.openedAt = now;
    window.decided += 1;
    window.decidedBytes += rawBytes;
    this.#outstanding += 1;
    return window;
  }

  /** The sender found the socket full (it waits for 'drain') as it sent the chunk of `ticket`. */
  blocked(ticket: PackTicket): void {
    const { window } = ticket as Decision;
    if (window) window.blocked = true;
  }

  /** What packing a chunk (a probe's too) took and gave (see `timedPack`). */
  packed({ rawBytes, packedBytes, ms }: PackMeasure): void {
    if (this.mode !== 'auto') return;
    // A probe always counts (it was taken on a chunk that tells); a file's small last chunk does not.
    if (!this.#probeOut && !this.#telling(rawBytes)) return;
    // A faster sample counts at once (the first chunks of a fresh thread pack slowly); a slower one only follows.
    const packRate = rawBytes / Math.max(ms, 0.001);
    this.#packRate = Math.max(packRate, follow(this.#packRate, packRate));
    this.#ratio = follow(this.#ratio, rawBytes / (packedBytes ?? rawBytes));
    if (!this.#probeOut) return;
    // A probe's answer: if packing still does not pay, the next probe waits longer.
    this.#probeOut = false;
    if (!this.#decide()) this.#probeEvery *= this.#backoff;
  }

  /** The chunk of `ticket` has been flushed to the socket: `wireBytes` left. */
  flushed(ticket: PackTicket, wireBytes: number): void {
    const { window } = ticket as Decision;
    if (!window) return;
    this.#outstanding -= 1;
    if (this.#outstanding === 0) this.#idleSince = this.#now();
    window.flushed += 1;
    window.lastFlushAt = this.#now();
    if (window.flushed === 1) {
      window.startedAt = window.lastFlushAt;
      return;
    }
    window.wireBytes += wireBytes;
    if (this.#isFull(window, window.lastFlushAt)) this.#measure(window);
  }

  /** The chunk of `ticket` will not be sent after all (its transfer stopped): it counts nowhere. */
  unsent(ticket: PackTicket): void {
    const { window, rawBytes } = ticket as Decision;
    if (!window) return;
    window.decided -= 1;
    window.decidedBytes -= rawBytes;
    this.#outstanding -= 1;
    if (this.#outstanding === 0) this.#idleSince = this.#now();
    if (window.flushed > 0 && this.#isFull(window, window.lastFlushAt)) this.#measure(window);
  }

  /** Whether a chunk of `rawBytes` is big enough to judge the codec and the data by. */
  #telling(rawBytes: number): boolean {
    return rawBytes >= Math.min(probeBytes, this.#largestChunk);
  }

  /** A window takes no more chunks once it holds `windowBytes` in two chunks or more and has lasted `windowMs` by `at` (idle time aside). */
  #isFull(window: Window, at: number): boolean {
    const lasted = at - window.openedAt - window.idleMs;
    return window.decidedBytes >= this.#windowBytes && window.decided >= 2 && lasted >= this.#windowMs;
  }

  /** Takes a full window's rate once every chunk of it has been flushed (once). */
  #measure(window: Window): void {
    if (window.measured || window.flushed < window.decided) return;
    window.measured = true;
    const span = window.lastFlushAt - window.startedAt - window.idleMs;
    // Its chunks were flushed in a burst or two: the rate would be the buffers', not the link's.
    if (span < this.#windowMs / 2) return;
    const rate = window.wireBytes / span;
    if (window.blocked) {
      this.#linkRate = Math.max(rate, this.#lastWindowRate ?? rate);
      this.#lastWindowRate = rate;
    } else if (window.packed) {
      // Packing, and the socket was never full: the compressor limits the sender. Now and then,
      // a raw window finds out whether the link could take the file faster as it is.
      this.#unblockedPacked += 1;
      if (this.#unblockedPacked >= this.#rawCheckEvery) {
        this.#unblockedPacked = 0;
        this.#rawCheckEvery *= this.#backoff;
        this.#rawCheckWanted = true;
      }
      return;
    } else {
      // Raw, and never held back: the sender is slower than the link, and packing cannot help.
      // (A raw check while packing ends the packing.)
      if (this.#packing) this.#switch(false);
      return;
    }
    this.#sinceProbe += 1;
    const worthAProbe = this.#linkRate * this.#linkShare < fastestPackRate;
    if (!this.#packing && worthAProbe && (this.#packRate === undefined || this.#sinceProbe >= this.#probeEvery)) {
      this.#sinceProbe = 0;
      this.#probeWanted = true;
    }
    this.#decide();
  }

  /** Packs or not from what is known now; returns whether it packs. */
  #decide(): boolean {
    const link = this.#linkRate;
    if (link === undefined || this.#packRate === undefined || this.#ratio === undefined) return this.#packing;
    const packedRate = Math.min(this.#packRate, link * this.#ratio);
    const pack = this.#packRate >= link * this.#linkShare && packedRate > link * this.#winMargin;
    if (pack !== this.#packing) this.#switch(pack);
    return pack;
  }

  #switch(pack: boolean): void {
    this.#packing = pack;
    this.#probeEvery = 1;
    this.#rawCheckEvery = 2;
    this.#unblockedPacked = 0;
    this.#deciding = newWindow(pack);
  }
}

/** A window that has taken no chunk yet (its clock starts at its first: see `#push`). */
function newWindow(packed: boolean): Window {
  return {
    packed,
    decided: 0,
    decidedBytes: 0,
    flushed: 0,
    openedAt: 0,
    startedAt: 0,
    lastFlushAt: 0,
    measured: false,
    wireBytes: 0,
    blocked: false,
    idleMs: 0,
  };
}

/** The `auto` policies of each connection, by codec: every transfer a connection sends measures its link together. */
const connectionPolicies = new WeakMap<object, Map<string, PackingPolicy>>();

/** How a transfer packs: its codec, and the policy that decides chunk by chunk. */
export interface PolicyPacking {
  codec: CodecName;
  policy: PackingPolicy;
}

/**
 * How a transfer on `connection` packs as `packing` says (undefined: it does not). For `auto`,
 * the policy is the one every transfer of that connection with that codec shares (a folder's
 * files are each too small to measure a link alone, and the next file starts from what the last
 * ones found); for `always`, a new one.
 */
export function connectionPacking(
  connection: object,
  packing: { codec: CodecName; mode: CompressMode } | undefined,
): PolicyPacking | undefined {
  if (!packing) return undefined;
  return { codec: packing.codec, policy: connectionPolicy(connection, packing) };
}

/** The policy `connectionPacking` gives a transfer on `connection` packing as `packing` says. */
export function connectionPolicy(connection: object, packing: { codec: CodecName; mode: CompressMode }): PackingPolicy {
  if (packing.mode !== 'auto') return new PackingPolicy(packing.mode);
  let byCodec = connectionPolicies.get(connection);
  if (!byCodec) connectionPolicies.set(connection, (byCodec = new Map<string, PackingPolicy>()));
  let policy = byCodec.get(packing.codec);
  if (!policy) byCodec.set(packing.codec, (policy = new PackingPolicy('auto')));
  return policy;
}
