// One fuzzing connection to the live server, and the checks on everything the server sends it.
import { type Hash, createHash } from 'node:crypto';
import type { Socket } from 'node:net';
import type { XXHash } from 'xxhash-wasm';
import { FrameDecoder } from '../../src/protocol/decoder.js';
import { encodeControl } from '../../src/protocol/encoder.js';
import type { ChunkHeader } from '../../src/protocol/frames.js';
import { OracleFrameReader } from '../helpers/frame-reader.js';
import { openTestSocket } from '../helpers/test-socket.js';
import type { ControlMessage } from '../helpers/raw-client.js';
import { KiB, chunkSize, maxControlBytes, waitMs } from './config.js';
import { count, ledger, noteDelete } from './ledger.js';
import { create64 } from './material.js';
import { bigOkReply, codeProblem } from './message-rules.js';
import type { Ending, Fields } from './plan.js';
import { show } from './report.js';

/** A download a get reply opened on this connection, followed chunk by chunk up to its SHA-256. */
interface DownloadState {
  name: string;
  size: number;
  chunkSize: number;
  chunkCount: number;
  next: number;
  sha256: string;
  hash: Hash | undefined;
  done: boolean;
  aborted: boolean;
}

/**
 * One fuzzing connection: writes what it is told (also into a model decoder with the server's
 * limits, to know where the server's framing stands), checks every frame the server sends as it
 * arrives, and waits, always with a bound, for replies and the close. It keeps no more than it
 * needs: replies only for requests it waits on, summaries of the rest.
 */
export class FuzzConnection {
  readonly socket: Socket;
  readonly label: string;
  readonly problems: string[] = [];
  readonly #received: string[] = [];
  #receivedCount = 0;
  /** The server's framing, as its own decoder sees the bytes sent: failed, or mid-frame. */
  readonly #model: FrameDecoder;
  #modelFailed = false;
  /** Ids of control messages the model decoded since the last `call`. */
  readonly #modelIds = new Set<number>();
  /** The download chunk arriving: which download, its running xxh64; undefined when it is not checked further. */
  #chunk: { header: ChunkHeader; download: DownloadState; xxh64: XXHash<bigint> } | undefined;
  readonly #wanted = new Map<number, ControlMessage | undefined>();
  readonly #ops = new Map<number, string>();
  readonly #downloads = new Map<number, DownloadState>();
  #bye: ControlMessage | undefined;
  #refusedVersion = false;
  #endedByUs = false;
  serverClosedFirst = false;
  closed = false;
  #stalled = false;
  #pendingWrites: Promise<void>[] = [];
  // Id ranges apart, and apart from the values fuzzed fields take (a mutation may move any field
  // into `id`, or flip a digit of it), so that a reply is never taken for another's.
  #nextId = 2_000_000_001;
  #nextFloodId = 500_000_000;
  #nextMutatedId = 1_000_000_000;
  readonly #wake = new Set<() => void>();
  /** Settles once the socket (and TLS, to a server that serves it) is up. */
  readonly #connected: Promise<void>;

  private constructor(port: number, label: string, parseLimit: number) {
    this.label = label;
    this.#model = new FrameDecoder(
      { maxControlBytes, maxChunkBytes: chunkSize },
      {
        control: (message) => {
          if (typeof message['id'] === 'number') this.#modelIds.add(message['id']);
        },
        chunkStart: () => {},
        chunkData: () => {},
        chunkEnd: () => {},
        protocolError: () => {
          this.#modelFailed = true;
        },
      },
    );
    const reader = new OracleFrameReader(parseLimit, {
      control: (message) => this.#onMessage(message),
      bigControl: (prefix, length) => {
        const id = bigOkReply.exec(prefix)?.[1];
        if (id === undefined) return this.problem(`a control frame of ${length} bytes that is not an ok reply: ${show(prefix)}…`);
        count('big ok replies skipped');
        this.#onMessage({ id: Number(id), ok: true, result: {} });
      },
      chunkStart: (header) => this.#onChunkStart(header),
      chunkData: (piece) => {
        if (!this.#chunk) return;
        this.#chunk.xxh64.update(piece);
        this.#chunk.download.hash?.update(piece);
      },
      chunkEnd: () => this.#onChunkEnd(),
      broken: (why, detail) => this.problem(`the server's bytes do not decode: ${detail === undefined ? why : `${why}: ${show(detail)}`}`),
    });
    const opened = openTestSocket(port, (bytes) => reader.push(bytes));
    this.socket = opened.socket;
    this.#connected = opened.connected;
    this.socket.on('end', () => {
      if (!this.#endedByUs) this.serverClosedFirst = true;
      this.#notify();
    });
    this.socket.on('error', () => {
      if (!this.#endedByUs) this.serverClosedFirst = true;
      this.#notify();
    });
    this.socket.on('close', () => {
      this.closed = true;
      this.#notify();
    });
  }

  /**
   * Connects to the server on 127.0.0.1:`port`. `parseLimit`: control bodies up to this size are
   * parsed; bigger ok replies are only recognised.
   */
  static async open(port: number, label: string, parseLimit = 16 * KiB): Promise<FuzzConnection> {
    const connection = new FuzzConnection(port, label, parseLimit);
    await connection.#connected;
    count('connections');
    return connection;
  }

  problem(text: string): void {
    this.problems.push(text);
  }

  /** What the server sent, in short, for a failure message. */
  describe(): string {
    const more = this.#receivedCount > this.#received.length ? ` … (${this.#receivedCount} frames in all)` : '';
    return `${this.label} received: ${this.#received.join(' | ') || 'nothing'}${more}; closed=${this.closed}, server closed first=${this.serverClosedFirst}`;
  }

  // ---- sending ----

  /** Writes `bytes` in pieces cut at `cuts`; each piece waits for the OS unless this client has stopped reading. */
  async send(bytes: Buffer, cuts: number[] = []): Promise<void> {
    this.#model.push(bytes);
    count('bytes sent', bytes.length);
    const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
    let from = 0;
    for (const point of [...points, bytes.length]) {
      if (point <= from) continue;
      const piece = bytes.subarray(from, point);
      from = point;
      if (this.socket.destroyed || this.socket.writableEnded) return;
      const written = new Promise<void>((resolve) => this.socket.write(piece, () => resolve()));
      if (this.#stalled) this.#pendingWrites.push(written);
      else if ((await this.#bounded(written)) === 'timeout') {
        this.problem(`a write of ${piece.length} bytes was not taken within ${waitMs} ms while this client was reading`);
        return;
      }
    }
  }

  /** Sends a valid request without waiting; returns its id. */
  request(fields: Fields, cuts: number[] = []): Promise<number> {
    const id = this.#nextId++;
    this.#ops.set(id, fields.op);
    noteDelete(fields);
    return this.send(encodeControl({ id, ...fields }), cuts).then(() => id);
  }

  /**
   * Sends a valid request and waits for its reply. Undefined if the server closed instead, or if
   * the frame never reached the server as a frame of its own (earlier bytes left its framing
   * mid-frame or broken): then no reply is due.
   */
  async call(fields: Fields, cuts: number[] = []): Promise<ControlMessage | undefined> {
    const id = this.#nextId;
    this.#wanted.set(id, undefined);
    this.#modelIds.clear();
    await this.request(fields, cuts);
    if (!this.#modelIds.has(id)) {
      this.#wanted.delete(id);
      return undefined;
    }
    await this.unstall();
    const reply = await this.waitFor(() => this.#wanted.get(id) ?? (this.closed ? null : undefined));
    this.#wanted.delete(id);
    if (reply === undefined) this.problem(`no reply to ${fields.op} (id ${id}) within ${waitMs} ms, and the connection is still open`);
    return reply ?? undefined;
  }

  nextMutatedId(): number {
    return this.#nextMutatedId++;
  }

  nextFloodId(): number {
    return this.#nextFloodId++;
  }

  stall(): void {
    this.#stalled = true;
    this.socket.pause();
  }

  /** Reads again, and waits for the writes made while not reading. */
  async unstall(): Promise<void> {
    if (!this.#stalled) return;
    this.#stalled = false;
    this.socket.resume();
    const writes = this.#pendingWrites.splice(0);
    if ((await this.#bounded(Promise.all(writes))) === 'timeout')
      this.problem(`writes made while not reading were not taken within ${waitMs} ms of reading again`);
  }

  // ---- waiting ----

  /** Resolves with `check()` once it is defined (re-checked on every frame and socket event), or undefined after `waitMs`. */
  waitFor<T>(check: () => T | undefined): Promise<T | undefined> {
    const now = check();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise((resolve) => {
      const test = (): void => {
        const value = check();
        if (value === undefined) return;
        clearTimeout(timer);
        this.#wake.delete(test);
        resolve(value);
      };
      const timer = setTimeout(() => {
        this.#wake.delete(test);
        resolve(undefined);
      }, waitMs);
      this.#wake.add(test);
    });
  }

  async #bounded<T>(promise: Promise<T>): Promise<T | 'timeout'> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), waitMs);
    });
    try {
      return await Promise.race([promise, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  #notify(): void {
    for (const wake of [...this.#wake]) wake();
  }

  // ---- ending ----

  /** Ends the connection at once (RST if replies are unread): what a client that crashes does. */
  vanish(): void {
    this.#endedByUs = true;
    this.socket.destroy();
  }

  async finish(ending: Ending): Promise<void> {
    if (this.#endedByUs) return;
    if (ending !== 'graceful') {
      if (ending.abrupt && !this.closed) {
        const frame = encodeControl({ id: this.nextMutatedId(), ...ending.abrupt.fields });
        await this.send(frame.subarray(0, ending.abrupt.keep % frame.length));
      }
      this.vanish();
      return;
    }
    await this.unstall();
    if (!this.closed && (this.#bye !== undefined || this.#refusedVersion || this.#modelFailed)) {
      // The server said it is closing, or the bytes sent break the framing (so its decoder
      // failed on them): it must close the connection by itself.
      if ((await this.waitFor(() => this.closed || undefined)) === undefined) {
        this.problem(
          this.#modelFailed && this.#bye === undefined
            ? `the bytes sent break the framing, but within ${waitMs} ms the server neither sent bye nor closed`
            : `the server said it is closing but had not closed after ${waitMs} ms`,
        );
      }
    }
    if (!this.closed && !this.#model.midFrame) {
      // At a frame boundary: the server must still answer.
      const reply = await this.call({ op: 'ping' });
      if (reply !== undefined && reply['ok'] !== true) this.problem(`ping refused: ${show(reply)}`);
    }
    if (!this.closed) {
      this.#endedByUs = true;
      this.socket.end();
      if ((await this.waitFor(() => this.closed || undefined)) === undefined) {
        this.problem(`the server did not close within ${waitMs} ms after this client ended its side`);
      }
    }
  }

  /** Checks that hold once the connection is over. */
  verdict(): void {
    if (this.serverClosedFirst && this.#bye === undefined && !this.#refusedVersion) {
      // FOUND BY THIS TEST: when the client had sent more than the server read before its bye
      // (say the rest of a chunk it refused), the server closed with that input unread, so the
      // kernel reset the connection and the bye could be lost. An ending connection now reads
      // and drops input until the client closes (src/server/connection.ts, #end).
      this.problem('the server closed the connection without a bye (and without an EVERSION reply)');
    }
    for (const download of this.#downloads.values()) if (download.done && download.hash) count('downloads verified whole');
  }

  // ---- receiving ----

  #note(summary: string): void {
    this.#receivedCount += 1;
    if (this.#received.length < 30) this.#received.push(summary);
  }

  #onMessage(message: ControlMessage): void {
    count('control frames received');
    if (this.#bye !== undefined) this.problem(`a frame followed the bye: ${show(message)}`);
    if ('event' in message) {
      const event = message['event'];
      this.#note(`${String(event)} ${String(message['code'])}${event === 'abort' ? ` stream ${String(message['stream'])}` : ''}`);
      if (event !== 'bye' && event !== 'abort') return this.problem(`unknown event: ${show(message)}`);
      count(`${event} ${String(message['code'])}`);
      const problem = codeProblem(message);
      if (problem) this.problem(`${event}: ${problem}`);
      if (event === 'bye') {
        this.#bye = message;
      } else {
        const stream = message['stream'];
        if (typeof stream !== 'number' || !Number.isInteger(stream)) return this.problem(`abort without a stream: ${show(message)}`);
        const download = this.#downloads.get(stream);
        if (download) download.aborted = true;
      }
    } else if (typeof message['id'] === 'number') {
      const id = message['id'];
      if (message['ok'] === true) {
        this.#note(`${id} ok`);
        count('ok replies');
        const result = message['result'];
        if (typeof result !== 'object' || result === null || Array.isArray(result))
          this.problem(`ok reply without a result object: ${show(message)}`);
        else this.#onResult(id, result as ControlMessage);
      } else if (message['ok'] === false) {
        this.#note(`${id} ${String(message['code'])}`);
        count(`reply ${String(message['code'])}`);
        const problem = codeProblem(message);
        if (problem) this.problem(`reply: ${problem}`);
        if (message['code'] === 'EVERSION') this.#refusedVersion = true;
      } else {
        this.problem(`a reply without ok: ${show(message)}`);
      }
      if (this.#wanted.has(id) && this.#wanted.get(id) === undefined) this.#wanted.set(id, message);
    } else {
      this.#note('?');
      this.problem(`neither a reply (numeric id) nor an event: ${show(message)}`);
    }
    this.#notify();
  }

  #onResult(id: number, result: ControlMessage): void {
    const op = this.#ops.get(id);
    if (op === 'putEnd' && typeof result['name'] === 'string' && typeof result['sha256'] === 'string') {
      const shas = ledger.published.get(result['name']) ?? new Set<string>();
      shas.add(result['sha256']);
      ledger.published.set(result['name'], shas);
      count('files published');
    }
    // A get result (by shape: a mutated get may succeed under another id): its stream is a download.
    const { stream, size, chunkSize: fileChunkSize, chunkCount, fromChunk, sha256 } = result;
    if (
      typeof stream === 'number' &&
      typeof size === 'number' &&
      typeof fileChunkSize === 'number' &&
      typeof chunkCount === 'number' &&
      typeof fromChunk === 'number' &&
      typeof sha256 === 'string'
    ) {
      if (op !== undefined && op !== 'get') this.problem(`a ${op} reply looks like a get result: ${show(result)}`);
      if (this.#downloads.has(stream)) this.problem(`stream ${stream} was given to two downloads`);
      if (chunkCount !== Math.ceil(size / fileChunkSize))
        this.problem(`get result with chunkCount ${chunkCount} for ${size} bytes in ${fileChunkSize}-byte chunks`);
      const download: DownloadState = {
        name: String(result['name']),
        size,
        chunkSize: fileChunkSize,
        chunkCount,
        next: fromChunk,
        sha256,
        hash: fromChunk === 0 ? createHash('sha256') : undefined,
        done: false,
        aborted: false,
      };
      this.#downloads.set(stream, download);
      if (fromChunk >= chunkCount) this.#completeDownload(download);
    }
  }

  #onChunkStart(header: ChunkHeader): void {
    count('chunks received');
    this.#note(`chunk ${header.stream}@${header.offset}`);
    this.#chunk = undefined;
    const download = this.#downloads.get(header.stream);
    if (!download) return this.problem(`a chunk on stream ${header.stream}, which no get reply opened`);
    if (download.done || download.aborted)
      return this.problem(`a chunk on stream ${header.stream} after its download ${download.done ? 'completed' : 'was aborted'}`);
    const offset = download.next * download.chunkSize;
    const length = Math.min(download.chunkSize, download.size - offset);
    if (header.offset !== offset || header.length !== length) {
      download.aborted = true; // its bytes are not followed further
      return this.problem(
        `download ${show(download.name)}: chunk at ${header.offset} of ${header.length} bytes, expected ${offset} of ${length}`,
      );
    }
    this.#chunk = { header, download, xxh64: create64() };
  }

  #onChunkEnd(): void {
    const chunk = this.#chunk;
    this.#chunk = undefined;
    if (!chunk) return;
    const { header, download } = chunk;
    if (chunk.xxh64.digest() !== header.xxh64)
      this.problem(`download ${show(download.name)}: the chunk at ${header.offset} does not match its xxh64`);
    download.next += 1;
    if (download.next === download.chunkCount) this.#completeDownload(download);
  }

  #completeDownload(download: DownloadState): void {
    download.done = true;
    if (download.hash) {
      const sha256 = download.hash.digest('hex');
      if (sha256 !== download.sha256)
        this.problem(`download ${show(download.name)}: the bytes hash to ${sha256}, the get result said ${download.sha256}`);
    }
    this.#notify();
  }

  downloadSettled(stream: number): boolean | undefined {
    const download = this.#downloads.get(stream);
    return download === undefined || download.done || download.aborted || this.closed ? true : undefined;
  }
}
