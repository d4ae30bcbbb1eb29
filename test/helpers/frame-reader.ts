import { type ChunkHeader, maxChunkBytesCeiling } from '../../src/protocol/frames.js';

// The framing, written here from docs/protocol.md ("Framing") and not taken from
// src/protocol/decoder.ts or the constants in src/protocol/frames.ts: a test that checks what
// crossed the wire must not share the decoder's mistakes.
/** A frame head: u32 BE body length (the type byte and the body), u8 type. */
const headBytes = 5;
/** What a CHUNK body holds before its payload: u32 BE stream, u64 BE offset, u64 BE xxh64. */
const chunkFieldsBytes = 20;
const chunkHeadBytes = headBytes + chunkFieldsBytes;
const controlType = 1;
const chunkType = 2;
/** The largest control body read: well past any server's limit, so only a corrupt length trips it. */
const maxControlBodyBytes = 64 * 1024 * 1024;
/** How much of a control body over the parse limit is kept, to tell what it was. */
const prefixBytes = 64;

/** What the reader hands on, in stream order. */
export interface OracleFrameSink {
  control(message: Record<string, unknown>): void;
  /** A control body over the parse limit: its first 64 bytes (as latin1) and its length. */
  bigControl(prefix: string, length: number): void;
  chunkStart(header: ChunkHeader): void;
  /** A piece of the current chunk's payload, valid only during the call. */
  chunkData(piece: Uint8Array): void;
  chunkEnd(): void;
  /** The bytes are not Ferry frames; `detail` is the offending body when there is one. Nothing more is read. */
  broken(why: string, detail?: unknown): void;
}

/**
 * The tests' own reader of Ferry frames (the independent oracle; the server and the client use
 * FrameDecoder). It allocates next to nothing per byte, so that a test measuring memory measures
 * the server's, not its own: control bodies up to `parseLimit` bytes are parsed, bigger ones (in
 * practice only ok replies to list, log and hashes) are handed on by their first bytes, and chunk
 * payloads are handed on in place.
 */
export class OracleFrameReader {
  readonly #parseLimit: number;
  readonly #sink: OracleFrameSink;
  readonly #head = Buffer.alloc(chunkHeadBytes);
  readonly #prefix = Buffer.alloc(prefixBytes);
  #want = headBytes;
  #filled = 0;
  #state: 'head' | 'chunkFields' | 'body' | 'payload' | 'broken' = 'head';
  #bodyLength = 0;
  #body: Buffer | undefined;
  #bodyFilled = 0;
  #payloadLeft = 0;

  constructor(parseLimit: number, sink: OracleFrameSink) {
    this.#parseLimit = parseLimit;
    this.#sink = sink;
  }

  push(bytes: Uint8Array): void {
    let at = 0;
    while (at < bytes.length && this.#state !== 'broken') {
      if (this.#state === 'head' || this.#state === 'chunkFields') {
        const take = Math.min(this.#want - this.#filled, bytes.length - at);
        this.#head.set(bytes.subarray(at, at + take), this.#filled);
        this.#filled += take;
        at += take;
        if (this.#filled === this.#want) {
          if (this.#state === 'head') this.#onHead();
          else this.#onChunkFields();
        }
      } else if (this.#state === 'body') {
        const size = this.#bodyLength - 1;
        const take = Math.min(size - this.#bodyFilled, bytes.length - at);
        const piece = bytes.subarray(at, at + take);
        if (this.#body) this.#body.set(piece, this.#bodyFilled);
        else if (this.#bodyFilled < this.#prefix.length)
          this.#prefix.set(piece.subarray(0, this.#prefix.length - this.#bodyFilled), this.#bodyFilled);
        this.#bodyFilled += take;
        at += take;
        if (this.#bodyFilled === size) this.#onBody();
      } else {
        const take = Math.min(this.#payloadLeft, bytes.length - at);
        this.#payloadLeft -= take;
        this.#sink.chunkData(bytes.subarray(at, at + take));
        at += take;
        if (this.#payloadLeft === 0) this.#endChunk();
      }
    }
  }

  #onHead(): void {
    this.#bodyLength = this.#head.readUInt32BE(0);
    const type = this.#head[4];
    if (type === controlType && this.#bodyLength > 1 && this.#bodyLength - 1 <= maxControlBodyBytes) {
      this.#body = this.#bodyLength - 1 <= this.#parseLimit ? Buffer.allocUnsafe(this.#bodyLength - 1) : undefined;
      this.#bodyFilled = 0;
      this.#state = 'body';
    } else if (
      type === chunkType &&
      this.#bodyLength >= 1 + chunkFieldsBytes &&
      this.#bodyLength - 1 - chunkFieldsBytes <= maxChunkBytesCeiling
    ) {
      this.#want = chunkHeadBytes;
      this.#state = 'chunkFields';
    } else {
      this.#fail(`a frame head declaring ${this.#bodyLength} bytes of type ${String(type)}`);
    }
  }

  #onChunkFields(): void {
    const offset = this.#head.readBigUInt64BE(9);
    if (offset > BigInt(Number.MAX_SAFE_INTEGER)) return this.#fail(`a chunk at offset ${offset}`);
    const header = {
      stream: this.#head.readUInt32BE(5),
      offset: Number(offset),
      xxh64: this.#head.readBigUInt64BE(17),
      length: this.#bodyLength - 1 - chunkFieldsBytes,
    };
    this.#payloadLeft = header.length;
    this.#state = 'payload';
    this.#sink.chunkStart(header);
    if (header.length === 0) this.#endChunk();
  }

  #onBody(): void {
    const body = this.#body;
    const length = this.#bodyLength - 1;
    this.#reset();
    if (!body) return this.#sink.bigControl(this.#prefix.toString('latin1'), length);
    let message: unknown;
    try {
      message = JSON.parse(body.toString('utf8'));
    } catch {
      return this.#fail('a control frame that is not JSON', body.toString('utf8'));
    }
    if (typeof message !== 'object' || message === null || Array.isArray(message))
      return this.#fail('a control frame that is not an object', message);
    this.#sink.control(message as Record<string, unknown>);
  }

  #endChunk(): void {
    this.#reset();
    this.#sink.chunkEnd();
  }

  #reset(): void {
    this.#state = 'head';
    this.#want = headBytes;
    this.#filled = 0;
    this.#body = undefined;
  }

  #fail(why: string, detail?: unknown): void {
    this.#state = 'broken';
    this.#sink.broken(why, detail);
  }
}
