import type { Packing } from '../compression/negotiation.js';
import { type PackTicket, type PolicyPacking, connectionPacking } from '../compression/packing-policy.js';
import type { PackedAs } from '../protocol/frames.js';
import { type ErrorCode, FerryError } from '../protocol/errors.js';
import { type StoredFile, chunkCountOf, chunkLengthOf, hashAt, sameUpload } from '../store/records.js';
import { codeOfSystemError, describeSystemError } from '../system-errors.js';
import type { FileBytes } from './byte-store.js';
import type { ServerServices } from './services.js';
import type { PackedBytes } from '../../workers/tasks.js';

/**
 * What a download needs from where it goes (a Ferry connection, an HTTP response): chunk buffers
 * within that client's share, a way to send a chunk, and 'drain'.
 */
export interface DownloadPort {
  acquireDownloadBuffer(take: (buffer: SharedArrayBuffer) => void): () => void;
  releaseDownloadBuffer(buffer: SharedArrayBuffer): void;
  /**
   * Sends chunk `index` (its bytes, checked against its recorded xxh64: `payload`, compressed if
   * `packed` says so); `flushed` runs once they have left (the buffer is free again then). False
   * when the output is full: the download waits for `whenDrained` before it sends more.
   */
  sendChunk(download: DownloadTransfer, index: number, payload: Buffer, flushed: () => void, packed?: PackedAs): boolean;
  whenDrained(callback: () => void): void;
}

/** The chunks a download sends: from `from` up to (not including) `to`. */
export interface ChunkRange {
  from: number;
  to: number;
}

/**
 * Streams one stored file's chunks to the client, in order, over a range of its chunks. The file is
 * opened once, when the download starts: a delete or a replace meanwhile does not change what it
 * sends (the content the client was promised, by its SHA-256, in the reply to `get`).
 *
 * Backpressure: a chunk is read only while fewer than `downloadReadaheadChunks` are read but
 * unsent, the connection's allowance and the global budget give it a buffer, and the output has
 * room (`sendChunk` returned true or `whenDrained` called back). A buffer returns when its bytes have left.
 */
export class DownloadTransfer {
  readonly stream: number;
  readonly file: StoredFile;
  readonly startedAt = Date.now();
  readonly #services: ServerServices;
  readonly #port: DownloadPort;
  #file: FileBytes | undefined;
  /** The chunk after the last one to send. */
  readonly #endChunk: number;
  #nextRead: number;
  #nextSend: number;
  #reading = 0;
  /** Chunks read and checked, waiting for their turn to be sent: their buffer, and how it holds them. */
  readonly #ready = new Map<number, { buffer: SharedArrayBuffer; packed: PackedBytes | undefined; ticket: PackTicket | undefined }>();
  /** When the client asked for compressed chunks: the codec, and whether to pack the next one. */
  readonly #packing: PolicyPacking | undefined;
  #waitingForDrain = false;
  #cancelBufferWait: (() => void) | undefined;
  #ended = false;
  bytesSent = 0;
  readonly #onEnd: (error?: FerryError) => void;

  constructor(
    services: ServerServices,
    port: DownloadPort,
    stream: number,
    file: StoredFile,
    chunks: ChunkRange,
    onEnd: (error?: FerryError) => void,
    packing?: Packing,
  ) {
    // One policy for every download on the connection: the files of a folder measure its link together.
    this.#packing = connectionPacking(port, packing);
    this.#services = services;
    this.#port = port;
    this.stream = stream;
    this.file = file;
    this.#endChunk = Math.min(chunks.to, chunkCountOf(file.size, file.chunkSize));
    this.#nextRead = chunks.from;
    this.#nextSend = chunks.from;
    this.#onEnd = onEnd;
  }

  /** Opens the file and starts sending; call it once the reply to `get` is on the wire. */
  start(): void {
    // Nothing to send (an empty file, or a resume from its end): done at once, with no file to open.
    if (this.#endIfAllSent()) return;
    const { bytes, descriptors } = this.#services;
    if (!descriptors.take()) return this.stop(new FerryError('EBUSY', 'the server has too many files open; try again later'));
    bytes.openFile(this.file).then(
      (file) => {
        if (this.#ended) return void this.#close(file);
        this.#file = file;
        this.#pump();
      },
      (error: unknown) => {
        descriptors.release();
        if (error instanceof FerryError) return this.stop(error);
        void this.#readFailure(codeOfSystemError(error), `opening: ${describeSystemError(error)}`).then((failure) => this.stop(failure));
      },
    );
  }

  /** Stops at once (the connection closed or the transfer failed); buffers go back to the budget. */
  stop(error?: FerryError): void {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#cancelBufferWait) {
      // The read that was waiting for a buffer will not happen: it no longer holds the file open.
      this.#cancelBufferWait();
      this.#cancelBufferWait = undefined;
      this.#reading -= 1;
    }
    for (const { buffer, ticket } of this.#ready.values()) {
      this.#port.releaseDownloadBuffer(buffer);
      this.#unsent(ticket);
    }
    this.#ready.clear();
    this.#closeWhenIdle();
    this.#onEnd(error);
  }

  /** A chunk decided on and not sent after all: the policy counts it nowhere. */
  #unsent(ticket: PackTicket | undefined): void {
    if (ticket) this.#packing?.policy.unsent(ticket);
  }

  /** Closes the file once no read of it is in flight (a read's descriptor must stay valid until it returns). */
  #closeWhenIdle(): void {
    if (this.#reading > 0 || !this.#file) return;
    const file = this.#file;
    this.#file = undefined;
    this.#close(file);
  }

  #close(file: FileBytes): void {
    file
      .close()
      .catch((error: unknown) => this.#services.logger.warn({ err: error, name: this.file.name }, 'download: closing the file failed'))
      .finally(() => this.#services.descriptors.release());
  }

  #pump(): void {
    const { config } = this.#services;
    while (
      !this.#ended &&
      !this.#waitingForDrain &&
      !this.#cancelBufferWait &&
      this.#nextRead < this.#endChunk &&
      this.#reading + this.#ready.size < config.downloadReadaheadChunks
    ) {
      const index = this.#nextRead;
      this.#nextRead += 1;
      this.#reading += 1;
      let handedOver = false;
      const cancel = this.#port.acquireDownloadBuffer((buffer) => {
        handedOver = true;
        this.#cancelBufferWait = undefined;
        this.#read(index, buffer);
      });
      if (!handedOver) {
        this.#cancelBufferWait = cancel;
        return;
      }
    }
    this.#endIfAllSent();
  }

  /** Ends the download (successfully) once every chunk is handed to the port; true if it has ended. */
  #endIfAllSent(): boolean {
    if (this.#ended || this.#nextSend < this.#endChunk || this.#reading > 0) return this.#ended;
    this.#ended = true;
    this.#closeWhenIdle();
    this.#onEnd();
    return true;
  }

  #read(index: number, buffer: SharedArrayBuffer): void {
    const port = this.#port;
    const { size, chunkSize, hashes } = this.file;
    const offset = index * chunkSize;
    const length = chunkLengthOf(index, size, chunkSize);
    const ticket = this.#packing?.policy.packNext(length);
    const way = ticket?.way ?? 'raw';
    const codec = this.#packing?.codec;
    // A probe is one chunk packed as any other: what that takes and gives is the measure.
    const pack = way === 'raw' ? undefined : codec;
    this.#file!.readChunk({ offset, length, xxh64: hashAt(hashes, index), buffer, pack }).then(
      (result) => {
        this.#reading -= 1;
        if (this.#ended) {
          this.#unsent(ticket);
          this.#closeWhenIdle();
          return port.releaseDownloadBuffer(buffer);
        }
        if (!result.ok) {
          this.#unsent(ticket);
          port.releaseDownloadBuffer(buffer);
          void this.#readFailure(result.code, result.message).then((error) => this.stop(error));
          return;
        }
        if (result.measured) this.#packing?.policy.packed(result.measured);
        this.#ready.set(index, { buffer, packed: result.packed, ticket });
        this.#send();
      },
      (error: unknown) => {
        this.#reading -= 1;
        this.#unsent(ticket);
        port.releaseDownloadBuffer(buffer); // the worker failed: nobody uses the buffer any more
        this.stop(new FerryError('EINTERNAL', `chunk worker failed: ${String(error)}`));
        this.#closeWhenIdle();
      },
    );
  }

  /**
   * Why a chunk could not be served. Bytes missing or not matching their recorded xxh64 mean the
   * file changed under the download (deleted, or replaced by an upload being published) when the
   * record changed or an upload of the name is finishing; otherwise the disk no longer holds what
   * the record says, and the file is flagged damaged (never served again until replaced) before
   * the error is returned.
   */
  async #readFailure(code: ErrorCode, message: string): Promise<FerryError> {
    const { name } = this.file;
    if (code !== 'ENOENT' && code !== 'ECHECKSUM') return new FerryError(code, `${name}: ${message}`);
    const { store, uploads } = this.#services;
    const current = store.fileRecord(name);
    if (!current || !sameUpload(current, this.file) || uploads.isPublishing(name)) {
      return new FerryError('ECHANGED', `${name} was deleted or replaced on the server during the download`);
    }
    const why = code === 'ENOENT' ? 'its bytes are missing from the data directory' : message;
    // Recorded before the client hears of it; best effort: the client is told either way.
    await store.markDamaged(this.file, why).catch((error: unknown) => {
      this.#services.logger.warn({ err: error, name }, 'download: flagging a damaged file failed');
    });
    this.#services.logger.warn({ name, why }, 'download: the stored file is damaged; flagged, not served until replaced');
    return new FerryError('ECORRUPT', `${name} is damaged on the server (${why}); it will not be served until replaced`);
  }

  #send(): void {
    const { size, chunkSize } = this.file;
    let room = true;
    for (let ready = this.#ready.get(this.#nextSend); ready && !this.#ended; ready = this.#ready.get(this.#nextSend)) {
      const index = this.#nextSend;
      const { buffer, packed, ticket } = ready;
      this.#ready.delete(index);
      this.#nextSend += 1;
      const length = chunkLengthOf(index, size, chunkSize);
      const payload = Buffer.from(buffer, 0, packed?.bytes ?? length);
      const flushed = (): void => {
        if (ticket) this.#packing?.policy.flushed(ticket, payload.length);
        this.#port.releaseDownloadBuffer(buffer);
      };
      room = this.#port.sendChunk(this, index, payload, flushed, packed && { codec: packed.codec, rawLength: length });
      if (!room && ticket) this.#packing?.policy.blocked(ticket);
      this.bytesSent += length;
    }
    // Every chunk handed to the port: the download is done, whether or not the client has read it all yet.
    if (this.#endIfAllSent()) return;
    if (!room && !this.#ended) {
      this.#waitingForDrain = true;
      this.#port.whenDrained(() => {
        this.#waitingForDrain = false;
        this.#pump();
      });
      return;
    }
    this.#pump();
  }
}
