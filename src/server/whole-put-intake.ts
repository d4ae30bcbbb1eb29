import { unpackInPlace } from '../compression/codecs.js';
import { FerryError } from '../protocol/errors.js';
import type { ChunkHeader } from '../protocol/frames.js';
import type { RequestOf } from '../protocol/messages.js';
import type { ChunkBuffers } from './chunk-buffers.js';

export type WholePutRequest = RequestOf<'putWhole'>;

/** A `putWhole`'s bytes, in a buffer of the whole-put budget: give it back with `release` (once; later calls do nothing). */
export interface WholePutData {
  readonly bytes: Uint8Array;
  /** The xxh64 its CHUNK frame gave (undefined for an empty file: it has no frame). */
  readonly xxh64: bigint | undefined;
  release(): void;
}

/** What the intake needs of its connection. */
export interface WholePutIntakeHost {
  /** Reading must wait (true) until there is a buffer for the data, or may go on (false). */
  holdReading(hold: boolean): void;
  /** The client broke the protocol: the connection ends. */
  protocolError(error: FerryError): void;
  /** The request and its data are in: handle it. `data` is undefined when the request was refused before its data came (its data was skipped). */
  received(request: WholePutRequest, data: WholePutData | undefined, refusal: FerryError | undefined): void;
}

/** The request whose data is awaited, and the buffer it fills. */
interface Awaited {
  request: WholePutRequest;
  /** Why it is refused, if it was before its data came: the data is read and dropped, and the request answered with this. */
  refusal: FerryError | undefined;
  header: ChunkHeader | undefined;
  buffer: SharedArrayBuffer | undefined;
  filled: number;
}

/**
 * Receives the data of `putWhole` requests (docs/protocol.md, "putWhole"): the frame right after
 * such a request is a CHUNK frame on stream 0 carrying the whole file (none for an empty file).
 * A buffer of the whole-put budget is taken before any payload byte is read (reading is held
 * meanwhile), so the memory they use stays bounded whatever the number of clients.
 */
export class WholePutIntake {
  readonly #buffers: ChunkBuffers;
  readonly #host: WholePutIntakeHost;
  #awaited: Awaited | undefined;
  #cancelBufferWait: (() => void) | undefined;
  #closed = false;

  constructor(buffers: ChunkBuffers, host: WholePutIntakeHost) {
    this.#buffers = buffers;
    this.#host = host;
  }

  /** Whether a `putWhole` waits for its data frame: the next frame must be it. */
  get expecting(): boolean {
    return this.#awaited !== undefined;
  }

  /** The data frame has started and not ended: it is timed like a control frame. */
  get receiving(): boolean {
    return this.#awaited?.header !== undefined;
  }

  /** A `putWhole` came: its data is the next frame (an empty file has none: it is handled at once). */
  expect(request: WholePutRequest, refusal: FerryError | undefined): void {
    if (request.size > this.#buffers.bufferBytes) {
      return this.#host.protocolError(
        new FerryError('EPROTO', `putWhole of ${request.size} bytes: this server takes at most ${this.#buffers.bufferBytes} in one`),
      );
    }
    if (request.size === 0) return this.#host.received(request, refusal ? undefined : emptyData, refusal);
    this.#awaited = { request, refusal, header: undefined, buffer: undefined, filled: 0 };
  }

  chunkStart(header: ChunkHeader): void {
    const awaited = this.#awaited;
    if (!awaited) return this.#host.protocolError(new FerryError('EPROTO', 'a chunk on stream 0 without a putWhole before it'));
    const { size, id } = awaited.request;
    // Raw, the whole file; packed (capability put-whole-packed), no more bytes than it stands for.
    const whole = header.packed ? header.packed.rawLength === size && header.length <= size : header.length === size;
    if (header.offset !== 0 || !whole) {
      return this.#host.protocolError(
        new FerryError('EPROTO', `the data of putWhole ${id} must be one chunk at offset 0 standing for its ${size} bytes`),
      );
    }
    awaited.header = header;
    if (awaited.refusal) return;
    this.#host.holdReading(true);
    const cancel = this.#buffers.acquire((buffer) => {
      this.#cancelBufferWait = undefined;
      if (this.#closed) return this.#buffers.release(buffer);
      awaited.buffer = buffer;
      this.#host.holdReading(false);
    });
    if (!awaited.buffer) this.#cancelBufferWait = cancel;
  }

  chunkData(piece: Uint8Array): void {
    const awaited = this.#awaited;
    if (!awaited?.buffer) return;
    new Uint8Array(awaited.buffer, awaited.filled, piece.byteLength).set(piece);
    awaited.filled += piece.byteLength;
  }

  chunkEnd(): void {
    const awaited = this.#awaited;
    this.#awaited = undefined;
    if (!awaited?.header) return;
    const { request, refusal, buffer, header } = awaited;
    if (!buffer) return this.#host.received(request, undefined, refusal);
    if (header.packed) {
      // At most one chunk's worth, unpacked here: less than a hop to a worker would cost.
      const failure = unpackInPlace(header.packed.codec, buffer, awaited.filled, request.size);
      if (failure !== undefined) {
        this.#buffers.release(buffer);
        return this.#host.received(request, undefined, new FerryError('ECHECKSUM', `${request.name}: ${failure}`));
      }
    }
    let released = false;
    const data: WholePutData = {
      bytes: new Uint8Array(buffer, 0, request.size),
      xxh64: header.xxh64,
      release: () => {
        if (released) return;
        released = true;
        this.#buffers.release(buffer);
      },
    };
    this.#host.received(request, data, undefined);
  }

  /** The connection closed: a buffer held or waited for goes back to the budget. */
  close(): void {
    this.#closed = true;
    this.#cancelBufferWait?.();
    this.#cancelBufferWait = undefined;
    if (this.#awaited?.buffer) this.#buffers.release(this.#awaited.buffer);
    this.#awaited = undefined;
  }
}

const emptyData: WholePutData = { bytes: new Uint8Array(0), xxh64: undefined, release: () => {} };
