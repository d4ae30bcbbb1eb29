import type { Socket } from 'node:net';
import type { Test } from 'tap';
import { loadXxh64 } from '../../src/hashing/xxh64.js';
import { FrameDecoder } from '../../src/protocol/decoder.js';
import { encodeChunkHead, encodeControl } from '../../src/protocol/encoder.js';
import { type ChunkHeader, maxChunkBytesCeiling, protocolVersion } from '../../src/protocol/frames.js';
import { tokenFor } from './accounts.js';
import { openTestSocket } from './test-socket.js';

/** What the server sent, decoded. `undecodable`: the server's own byte stream broke the protocol. */
export type RawFrame =
  | { kind: 'control'; message: Record<string, unknown> }
  | { kind: 'chunk'; header: ChunkHeader; payload: Buffer }
  | { kind: 'undecodable'; message: string };

export type ControlMessage = Record<string, unknown>;

/** Default bound for every wait: no test waits longer than this for one thing. */
export const defaultWaitMs = 5000;

/**
 * A bare-socket Ferry client for hostile tests: it writes whatever bytes it is told to (frames
 * built with the real encoder, or garbage), decodes what the server sends with the real decoder,
 * and lets a test wait, with a bound, for a reply, an event, or the close.
 */
export class RawClient {
  readonly socket: Socket;
  /** The server's port: its test account's token is what `hello` logs in with. */
  readonly port: number;
  /** Every frame received, in order. */
  readonly frames: RawFrame[] = [];
  /** Socket errors seen (EPIPE, ECONNRESET after the server hung up...); never thrown. */
  readonly errors: Error[] = [];
  /** Set once the server ended its side ('end') and once the socket is fully closed ('close'). */
  ended = false;
  closed = false;
  #nextId = 1;
  readonly #wake = new Set<() => void>();
  #chunk: { header: ChunkHeader; pieces: Buffer[] } | undefined;
  /** Bytes from the server (valid only during the call). */
  readonly received: (bytes: Uint8Array) => void;

  private constructor(socket: Socket, port: number) {
    this.socket = socket;
    this.port = port;
    const decoder = new FrameDecoder(
      { maxControlBytes: 64 * 1024 * 1024, maxChunkBytes: maxChunkBytesCeiling },
      {
        control: (message) => this.#push({ kind: 'control', message }),
        chunkStart: (header) => {
          this.#chunk = { header, pieces: [] };
        },
        chunkData: (piece) => {
          this.#chunk?.pieces.push(Buffer.from(piece));
        },
        chunkEnd: () => {
          const chunk = this.#chunk!;
          this.#chunk = undefined;
          this.#push({ kind: 'chunk', header: chunk.header, payload: Buffer.concat(chunk.pieces) });
        },
        protocolError: (error) => this.#push({ kind: 'undecodable', message: error.message }),
      },
    );
    this.received = (bytes) => decoder.push(bytes);
    socket.on('error', (error) => {
      this.errors.push(error);
      this.#notify();
    });
    socket.on('end', () => {
      this.ended = true;
      this.#notify();
    });
    socket.on('close', () => {
      this.closed = true;
      this.#notify();
    });
    // Closed already (a refusal before the TLS handshake ended): nothing more will come.
    if (socket.destroyed) this.ended = this.closed = true;
  }

  /**
   * Connects to 127.0.0.1:`port` (from `localAddress`, another loopback address, to count as
   * another client network): over TLS to a test server that serves it (its certificate pinned),
   * else in clear text. The bytes a test writes are then the Ferry protocol's, inside TLS.
   */
  static async connect(t: Test, port: number, localAddress?: string): Promise<RawClient> {
    let client: RawClient | undefined;
    const opened = openTestSocket(port, (bytes) => client?.received(bytes), localAddress === undefined ? {} : { localAddress });
    t.teardown(() => {
      opened.socket.destroy();
    });
    await opened.connected;
    client = new RawClient(opened.socket, port);
    return client;
  }

  /** Control messages received so far. */
  get controls(): ControlMessage[] {
    return this.frames.flatMap((frame) => (frame.kind === 'control' ? [frame.message] : []));
  }

  /** Writes bytes (or a control message, framed); resolves once handed to the OS, or on a write error. */
  write(data: Uint8Array | ControlMessage | readonly Uint8Array[]): Promise<Error | undefined> {
    let bytes: Uint8Array;
    if (data instanceof Uint8Array) bytes = data;
    else if (Array.isArray(data)) bytes = Buffer.concat(data as readonly Uint8Array[]);
    else bytes = encodeControl(data);
    if (this.socket.destroyed || this.socket.writableEnded) return Promise.resolve(new Error('socket already closed'));
    return new Promise((resolve) => this.socket.write(bytes, (error) => resolve(error ?? undefined)));
  }

  /** Sends `{id, op, ...fields}` with a fresh id (unless `fields` has one); returns the id. */
  send(op: string, fields: ControlMessage = {}): number {
    const id = typeof fields['id'] === 'number' ? fields['id'] : this.#nextId++;
    void this.write({ id, op, ...fields });
    return id;
  }

  /** Sends a request and waits for the reply with its id. */
  async call(op: string, fields: ControlMessage = {}, timeoutMs = defaultWaitMs): Promise<ControlMessage> {
    return this.reply(this.send(op, fields), timeoutMs);
  }

  /**
   * The fields of a good hello: this protocol version and, unless `anonymous`, the test account's
   * token for this server (the connection starts logged in).
   */
  helloFields(anonymous = false): ControlMessage {
    const token = anonymous ? undefined : tokenFor(this.port);
    return { protocol: protocolVersion, client: 'hostile-test/1', capabilities: ['resume'], ...(token === undefined ? {} : { token }) };
  }

  /** A good handshake, logged in as the test account (unless `anonymous`); throws unless the server accepts it. */
  async hello(anonymous = false): Promise<ControlMessage> {
    const reply = await this.call('hello', this.helloFields(anonymous));
    if (reply['ok'] !== true) throw new Error(`hello refused: ${JSON.stringify(reply)}`);
    return reply['result'] as ControlMessage;
  }

  /** Waits for the reply carrying `id`. */
  reply(id: number, timeoutMs = defaultWaitMs): Promise<ControlMessage> {
    return this.until(`reply ${id}`, () => this.controls.find((message) => message['id'] === id), timeoutMs);
  }

  /** Waits for an event (`abort`, `bye`), optionally of one stream. */
  event(name: string, stream?: number, timeoutMs = defaultWaitMs): Promise<ControlMessage> {
    return this.until(
      `${name} event`,
      () => this.controls.find((message) => message['event'] === name && (stream === undefined || message['stream'] === stream)),
      timeoutMs,
    );
  }

  /** Waits until the server has closed the connection (and it is fully closed here). */
  waitClosed(timeoutMs = defaultWaitMs): Promise<true> {
    return this.until('the connection to close', () => (this.closed ? true : undefined), timeoutMs, true);
  }

  /**
   * Resolves with `check()` as soon as it is defined; re-checked on every frame, error and close.
   * Rejects after `timeoutMs`, or when the connection closes first (unless `evenIfClosed`).
   */
  until<T>(what: string, check: () => T | undefined, timeoutMs = defaultWaitMs, evenIfClosed = false): Promise<T> {
    const now = check();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise<T>((resolve, reject) => {
      const finish = (): void => {
        clearTimeout(timer);
        this.#wake.delete(test);
      };
      const test = (): void => {
        const value = check();
        if (value !== undefined) {
          finish();
          resolve(value);
        } else if (this.closed && !evenIfClosed) {
          finish();
          reject(new Error(`connection closed while waiting for ${what}; received ${this.describe()}`));
        }
      };
      const timer = setTimeout(() => {
        this.#wake.delete(test);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; received ${this.describe()}`));
      }, timeoutMs);
      this.#wake.add(test);
      test();
    });
  }

  /** A short summary of what was received, for failure messages. */
  describe(): string {
    const shown = this.frames
      .slice(0, 5)
      .map((frame) =>
        frame.kind === 'control'
          ? JSON.stringify(frame.message).slice(0, 200)
          : frame.kind === 'chunk'
            ? `chunk(stream ${frame.header.stream})`
            : `undecodable(${frame.message})`,
      );
    return `${this.frames.length} frame(s) [${shown.join(', ')}${this.frames.length > 5 ? ', ...' : ''}], closed=${this.closed}`;
  }

  destroy(): void {
    this.socket.destroy();
  }

  #push(frame: RawFrame): void {
    this.frames.push(frame);
    this.#notify();
  }

  #notify(): void {
    for (const wake of [...this.#wake]) wake();
  }
}

/** A whole CHUNK frame: head plus payload. The xxh64 is the payload's unless one is given. */
export async function chunkFrame(stream: number, offset: number, payload: Uint8Array, xxh64?: bigint): Promise<Buffer> {
  const hash = xxh64 ?? (await loadXxh64())(payload);
  return Buffer.concat([encodeChunkHead({ stream, offset, xxh64: hash, length: payload.byteLength }), payload]);
}

/** Just a 5-byte frame head: declared body length and type, nothing else. */
export function frameHead(bodyLength: number, type: number): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(bodyLength, 0);
  head.writeUInt8(type, 4);
  return head;
}

/** The fingerprint the reference client computes for a file's bytes (so a raw upload can be resumed by it). */
export async function referenceFingerprint(bytes: Buffer): Promise<string> {
  const xxh64 = await loadXxh64();
  const edge = Math.min(bytes.length, 64 * 1024);
  const head = bytes.subarray(0, edge);
  const tail = bytes.subarray(bytes.length - edge);
  return `v1:${bytes.length}:${xxh64(head).toString(16)}:${xxh64(tail).toString(16)}`;
}
