import { FerryError } from './errors.js';
import {
  type ChunkHeader,
  type DecoderLimits,
  FrameType,
  chunkFieldsBytes,
  codecNamed,
  frameHeaderBytes,
  packedFieldsBytes,
} from './frames.js';

/** What the decoder hands its owner. Calls arrive in stream order. */
export interface FrameSink {
  control(message: Record<string, unknown>): void;
  /** A CHUNK frame begins; its payload follows in `chunkData` calls. The sink may pause the decoder here. */
  chunkStart(header: ChunkHeader): void;
  /** A piece of the current chunk's payload. The view is only valid during the call: copy it. */
  chunkData(piece: Uint8Array): void;
  chunkEnd(): void;
  /** The byte stream broke the protocol. The decoder ignores all further input. */
  protocolError(error: FerryError): void;
}

type State = 'head' | 'chunkFields' | 'controlBody' | 'chunkPayload' | 'failed';

/**
 * A push parser: bytes in, frames out, no I/O. Declared lengths are checked against the limits
 * as soon as the 5-byte head is in, before anything of the body is buffered. Only a CONTROL body
 * is buffered whole (at most `maxControlBytes`); a chunk payload streams through `chunkData`.
 */
export class FrameDecoder {
  readonly #limits: DecoderLimits;
  readonly #sink: FrameSink;
  readonly #head = Buffer.alloc(frameHeaderBytes + packedFieldsBytes);
  /** Bytes of the current chunk frame's fields: a CHUNK's or a PACKED one's. */
  #fieldsBytes = chunkFieldsBytes;
  #headFilled = 0;
  #state: State = 'head';
  #bodyLength = 0;
  /** The CONTROL body received so far, piece by piece: memory follows what arrived, not what the head declared. */
  readonly #controlPieces: Buffer[] = [];
  #controlSize = 0;
  #controlFilled = 0;
  #payloadLeft = 0;
  readonly #pending: Uint8Array[] = [];
  #paused = false;
  #draining = false;

  constructor(limits: DecoderLimits, sink: FrameSink) {
    this.#limits = limits;
    this.#sink = sink;
  }

  /**
   * Feeds received bytes. With `transient`, the caller reuses `bytes` after the call (a socket
   * reading into one fixed buffer): whatever of it is still unparsed then (the decoder is paused)
   * is copied.
   */
  push(bytes: Uint8Array, transient = false): void {
    if (this.#state === 'failed' || bytes.byteLength === 0) return;
    this.#pending.push(bytes);
    this.#drain();
    const last = this.#pending.length - 1;
    if (transient && last >= 0 && this.#pending[last]!.buffer === bytes.buffer)
      this.#pending[last] = Uint8Array.prototype.slice.call(this.#pending[last]!);
  }

  /** Stops delivering frames; bytes pushed meanwhile are kept. */
  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
    this.#drain();
  }

  /**
   * True while a frame's head, a chunk's fields or a CONTROL body has started to arrive but not
   * ended: what a sender that trickles a frame byte by byte keeps a connection in. (A chunk's
   * payload is not counted: how fast it must arrive is its receiver's rule.)
   */
  get inFrameHead(): boolean {
    return this.#state === 'controlBody' || this.#state === 'chunkFields' || (this.#state === 'head' && this.#headFilled > 0);
  }

  /**
   * Bytes left of the current chunk's payload when the next byte pushed is one of them, else 0 (in
   * a frame's head or a CONTROL body, while paused, or while pushed bytes wait unparsed): how much
   * a reader may read straight to where the payload goes (`FrameSink.chunkData` then gets a view
   * of those bytes where they were read).
   */
  get payloadBytesAhead(): number {
    return this.#state === 'chunkPayload' && !this.#paused && this.#pending.length === 0 ? this.#payloadLeft : 0;
  }

  /** True when the stream stopped in the middle of a frame (a truncated frame at end of input). */
  get midFrame(): boolean {
    return this.#state !== 'head' || this.#headFilled > 0 || this.#pending.length > 0;
  }

  #drain(): void {
    if (this.#draining) return; // re-entrant push from a sink callback: the outer loop continues
    this.#draining = true;
    try {
      while (!this.#paused && this.#state !== 'failed' && this.#pending.length > 0) {
        const piece = this.#pending[0]!;
        // Read before it is consumed: a chunk's end may move the memory it lies in to a worker
        // (read in place), which leaves the view empty.
        const length = piece.byteLength;
        const used = this.#consume(piece);
        if ((this.#state as State) === 'failed') this.#pending.length = 0;
        else if (used === length) this.#pending.shift();
        else this.#pending[0] = piece.subarray(used);
      }
    } finally {
      this.#draining = false;
    }
  }

  /** Consumes bytes from the front of `piece` for the current state; returns how many it used. */
  #consume(piece: Uint8Array): number {
    switch (this.#state) {
      case 'head':
        return this.#fillHead(piece, frameHeaderBytes, () => this.#onHead());
      case 'chunkFields':
        return this.#fillHead(piece, frameHeaderBytes + this.#fieldsBytes, () => this.#onChunkFields());
      case 'controlBody':
        return this.#fillControl(piece);
      case 'chunkPayload':
        return this.#passPayload(piece);
      case 'failed':
        return piece.byteLength;
    }
  }

  #fillHead(piece: Uint8Array, want: number, done: () => void): number {
    const take = Math.min(want - this.#headFilled, piece.byteLength);
    this.#head.set(piece.subarray(0, take), this.#headFilled);
    this.#headFilled += take;
    if (this.#headFilled === want) done();
    return take;
  }

  #onHead(): void {
    const bodyLength = this.#head.readUInt32BE(0);
    const type = this.#head.readUInt8(4);
    this.#bodyLength = bodyLength;
    if (bodyLength < 1) return this.#fail('frame body length is 0');
    if (type === FrameType.control) {
      const size = bodyLength - 1;
      if (size > this.#limits.maxControlBytes) {
        return this.#fail(`control frame of ${size} bytes exceeds the limit of ${this.#limits.maxControlBytes}`);
      }
      if (size === 0) return this.#fail('empty control frame');
      this.#controlSize = size;
      this.#controlFilled = 0;
      this.#state = 'controlBody';
      return;
    }
    if (type === FrameType.chunk || type === FrameType.packed) {
      this.#fieldsBytes = type === FrameType.chunk ? chunkFieldsBytes : packedFieldsBytes;
      const payload = bodyLength - 1 - this.#fieldsBytes;
      if (payload < 0) return this.#fail(`chunk frame of ${bodyLength} bytes is shorter than its fields`);
      if (payload > this.#limits.maxChunkBytes) {
        return this.#fail(`chunk of ${payload} bytes exceeds the limit of ${this.#limits.maxChunkBytes}`);
      }
      this.#state = 'chunkFields';
      return;
    }
    this.#fail(`unknown frame type ${type}`);
  }

  #onChunkFields(): void {
    const offset = this.#head.readBigUInt64BE(9);
    if (offset > BigInt(Number.MAX_SAFE_INTEGER)) return this.#fail('chunk offset out of range');
    const length = this.#bodyLength - 1 - this.#fieldsBytes;
    let packed: ChunkHeader['packed'];
    if (this.#fieldsBytes === packedFieldsBytes) {
      const rawLength = this.#head.readUInt32BE(25);
      const codec = codecNamed(this.#head.readUInt8(29));
      if (!codec) return this.#fail(`packed chunk with unknown codec ${this.#head.readUInt8(29)}`);
      // A packed chunk is smaller than what it stands for, which is no bigger than any chunk.
      if (rawLength > this.#limits.maxChunkBytes || length >= rawLength) {
        return this.#fail(`packed chunk of ${length} bytes cannot stand for ${rawLength} bytes`);
      }
      packed = { codec, rawLength };
    }
    const header: ChunkHeader = {
      stream: this.#head.readUInt32BE(5),
      offset: Number(offset),
      xxh64: this.#head.readBigUInt64BE(17),
      length,
      ...(packed ? { packed } : {}),
    };
    this.#payloadLeft = header.length;
    this.#state = 'chunkPayload';
    this.#headFilled = 0;
    this.#sink.chunkStart(header);
    if (header.length === 0) this.#endChunk();
  }

  #fillControl(piece: Uint8Array): number {
    const take = Math.min(this.#controlSize - this.#controlFilled, piece.byteLength);
    // Copied: the caller may reuse `piece` (a socket's fixed read buffer).
    this.#controlPieces.push(Buffer.from(piece.subarray(0, take)));
    this.#controlFilled += take;
    if (this.#controlFilled === this.#controlSize) {
      const control = this.#controlPieces.length === 1 ? this.#controlPieces[0]! : Buffer.concat(this.#controlPieces, this.#controlSize);
      this.#controlPieces.length = 0;
      this.#headFilled = 0;
      this.#state = 'head';
      let message: unknown;
      try {
        message = JSON.parse(control.toString('utf8'));
      } catch {
        this.#fail('control frame is not valid JSON');
        return take;
      }
      if (message === null || typeof message !== 'object' || Array.isArray(message)) {
        this.#fail('control frame is not a JSON object');
        return take;
      }
      this.#sink.control(message as Record<string, unknown>);
    }
    return take;
  }

  #passPayload(piece: Uint8Array): number {
    const take = Math.min(this.#payloadLeft, piece.byteLength);
    this.#payloadLeft -= take;
    this.#sink.chunkData(take === piece.byteLength ? piece : piece.subarray(0, take));
    if (this.#payloadLeft === 0) this.#endChunk();
    return take;
  }

  #endChunk(): void {
    this.#state = 'head';
    this.#sink.chunkEnd();
  }

  #fail(message: string): void {
    this.#state = 'failed';
    this.#pending.length = 0;
    this.#controlPieces.length = 0;
    this.#sink.protocolError(new FerryError('EPROTO', message));
  }
}
