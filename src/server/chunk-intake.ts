import { FerryError } from '../protocol/errors.js';
import { localCodec } from '../compression/codecs.js';
import { type ChunkHeader, rawLengthOf } from '../protocol/frames.js';
import type { ChunkBuffers } from './chunk-buffers.js';
import type { UploadTransfer } from './upload-transfer.js';

/** What the intake needs of its connection. */
export interface ChunkIntakeHost {
  /** The upload attached to (or joined by) the connection on `stream`, if any, while it takes chunks. */
  upload(stream: number): UploadTransfer | undefined;
  /** `stream` was an upload of this connection that failed after its reply: its late chunks are skipped. */
  isDeadStream(stream: number): boolean;
  /** Reading must wait (true) until there is somewhere to put the chunk's payload, or may go on (false). */
  holdReading(hold: boolean): void;
  /** The client broke the protocol: the connection ends. */
  protocolError(error: FerryError): void;
}

/** The chunk being received: which upload, which index, and the budget buffer it fills. */
interface IncomingChunk {
  header: ChunkHeader;
  /** Undefined when the chunk belongs to an upload that already failed: its payload is skipped. */
  upload: UploadTransfer | undefined;
  index: number;
  buffer: SharedArrayBuffer | undefined;
  filled: number;
  /** When the buffer was handed to this chunk (performance.now()). */
  heldSince: number;
}

/**
 * Receives one connection's upload chunks from its decoder: checks each header against its
 * upload, gets a buffer from the global budget before any payload byte is read (reading is held
 * meanwhile), fills it as the payload arrives, and hands the whole chunk to its upload. At most
 * `maxInflight` of the connection's chunks are being written at once, and an upload whose written
 * bytes are not yet recorded (`lagging`) gets no more until a checkpoint records them.
 */
export class ChunkIntake {
  readonly #buffers: ChunkBuffers;
  readonly #maxInflight: number;
  readonly #host: ChunkIntakeHost;
  #incoming: IncomingChunk | undefined;
  #cancelBufferWait: (() => void) | undefined;
  #chunksInFlight = 0;
  #closed = false;

  constructor(buffers: ChunkBuffers, maxInflight: number, host: ChunkIntakeHost) {
    this.#buffers = buffers;
    this.#maxInflight = maxInflight;
    this.#host = host;
  }

  chunkStart(header: ChunkHeader): void {
    const upload = this.#host.upload(header.stream);
    if (!upload) {
      if (!this.#host.isDeadStream(header.stream)) {
        return this.#host.protocolError(new FerryError('EPROTO', `chunk for unknown stream ${header.stream}`));
      }
      this.#incoming = { header, upload: undefined, index: -1, buffer: undefined, filled: 0, heldSince: 0 };
      return;
    }
    if (header.packed && !localCodec(header.packed.codec)) {
      return this.#host.protocolError(new FerryError('EPROTO', `this server does not take ${header.packed.codec}-compressed chunks`));
    }
    let index: number;
    try {
      index = upload.indexOf(header);
    } catch (error) {
      return this.#host.protocolError(error as FerryError);
    }
    this.#incoming = { header, upload, index, buffer: undefined, filled: 0, heldSince: 0 };
    this.#claimBuffer();
  }

  /**
   * Where the socket may read the next `bytes` of the payload straight into: the chunk's buffer,
   * from where it is filled. The buffer is given up only at the chunk's end (after that read) or
   * once the socket has closed, so no later read of this socket lands in a buffer reused elsewhere.
   */
  payloadTarget(bytes: number): Uint8Array | undefined {
    const incoming = this.#incoming;
    if (!incoming?.buffer) return undefined;
    return new Uint8Array(incoming.buffer, incoming.filled, Math.min(bytes, incoming.buffer.byteLength - incoming.filled));
  }

  chunkData(piece: Uint8Array): void {
    const incoming = this.#incoming;
    if (!incoming?.buffer) return;
    // Read in place (`payloadTarget`), the bytes are where they go already.
    if (piece.buffer !== incoming.buffer || piece.byteOffset !== incoming.filled) {
      new Uint8Array(incoming.buffer, incoming.filled, piece.byteLength).set(piece);
    }
    incoming.filled += piece.byteLength;
  }

  chunkEnd(): void {
    const incoming = this.#incoming;
    this.#incoming = undefined;
    if (!incoming?.upload || !incoming.buffer) return;
    const { upload, index, header, buffer } = incoming;
    // Still the stream's upload, and still taking chunks (a joined stream's upload may have ended meanwhile)?
    if (upload.failed || this.#host.upload(header.stream) !== upload) {
      this.#buffers.release(buffer);
      return;
    }
    this.#chunksInFlight += 1;
    const { offset, xxh64, packed } = header;
    const chunk = { offset, xxh64, length: rawLengthOf(header), packed: packed && { codec: packed.codec, bytes: header.length } };
    void upload.write(index, chunk, buffer).finally(() => {
      this.#chunksInFlight -= 1;
      this.#claimBuffer();
    });
  }

  /**
   * Why the chunk being received should give its buffer up, if it should: it has held it longer
   * than `graceMs` and its payload arrives slower than `minBytesPerSec` (a sender that trickles
   * a chunk byte by byte). Asked only while others wait for a buffer.
   */
  slowness(now: number, graceMs: number, minBytesPerSec: number): string | undefined {
    const incoming = this.#incoming;
    if (!incoming?.buffer) return undefined;
    const heldMs = now - incoming.heldSince;
    if (heldMs <= graceMs || incoming.filled >= (minBytesPerSec * heldMs) / 1000) return undefined;
    return `a chunk arrived at ${Math.round((incoming.filled * 1000) / heldMs)} bytes/s for ${Math.round(heldMs)} ms while others waited for a buffer`;
  }

  /** The connection closed: a buffer held or waited for goes back to the budget. */
  close(): void {
    this.#closed = true;
    this.#cancelBufferWait?.();
    this.#cancelBufferWait = undefined;
    if (this.#incoming?.buffer) this.#buffers.release(this.#incoming.buffer);
    this.#incoming = undefined;
  }

  /**
   * Gets a budget buffer for the incoming chunk. Until it has one, reading is held: no payload
   * byte may arrive before there is somewhere to put it. Called again when one of this
   * connection's chunks completes or its upload records a checkpoint.
   */
  #claimBuffer(): void {
    const incoming = this.#incoming;
    if (!incoming?.upload || incoming.buffer || this.#cancelBufferWait || this.#closed) return;
    this.#host.holdReading(true);
    if (this.#chunksInFlight >= this.#maxInflight) return;
    if (incoming.upload.lagging) {
      // Durability lag: wait until a checkpoint has recorded what is written, so a crash now
      // costs at most about two checkpoints' worth of re-sending.
      incoming.upload.onceRecorded(() => this.#claimBuffer());
      return;
    }
    let granted = false;
    const cancel = this.#buffers.acquire((buffer) => {
      granted = true;
      this.#cancelBufferWait = undefined;
      if (this.#closed) return this.#buffers.release(buffer);
      incoming.buffer = buffer;
      incoming.heldSince = performance.now();
      this.#host.holdReading(false);
    });
    if (!granted) this.#cancelBufferWait = cancel;
  }
}
