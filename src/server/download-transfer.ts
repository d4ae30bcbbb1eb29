import type { Socket } from 'node:net';
import { FerryError } from '../protocol/errors.js';
import { encodeChunkHead } from '../protocol/encoder.js';
import { type StoredFile, chunkCountOf, chunkLengthOf, hashAt } from '../store/records.js';
import type { ServerServices } from './services.js';

/**
 * Streams one stored file's chunks to the client, in order, from `fromChunk` on.
 *
 * Backpressure: a chunk is read only while fewer than `downloadReadaheadChunks` are read but
 * unsent, a buffer is free in the global budget, and the socket has room (`write()` returned
 * true or 'drain' fired). A buffer returns to the budget when the socket has flushed it.
 */
export class DownloadTransfer {
  readonly stream: number;
  readonly file: StoredFile;
  readonly startedAt = Date.now();
  readonly #services: ServerServices;
  readonly #socket: Socket;
  readonly #path: string;
  readonly #chunkCount: number;
  #nextRead: number;
  #nextSend: number;
  #reading = 0;
  readonly #ready = new Map<number, ArrayBuffer>();
  #waitingForDrain = false;
  #cancelBufferWait: (() => void) | undefined;
  #ended = false;
  bytesSent = 0;
  readonly #onEnd: (error?: FerryError) => void;

  constructor(services: ServerServices, socket: Socket, stream: number, file: StoredFile, fromChunk: number, onEnd: (error?: FerryError) => void) {
    this.#services = services;
    this.#socket = socket;
    this.stream = stream;
    this.file = file;
    this.#path = services.layout.filePath(file.name);
    this.#chunkCount = chunkCountOf(file.size, file.chunkSize);
    this.#nextRead = fromChunk;
    this.#nextSend = fromChunk;
    this.#onEnd = onEnd;
  }

  start(): void {
    this.#pump();
  }

  /** Stops at once (the connection closed or the transfer failed); buffers go back to the budget. */
  stop(error?: FerryError): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#cancelBufferWait?.();
    for (const buffer of this.#ready.values()) this.#services.buffers.release(buffer);
    this.#ready.clear();
    this.#onEnd(error);
  }

  #pump(): void {
    const { config, buffers } = this.#services;
    while (
      !this.#ended &&
      !this.#waitingForDrain &&
      !this.#cancelBufferWait &&
      this.#nextRead < this.#chunkCount &&
      this.#reading + this.#ready.size < config.downloadReadaheadChunks
    ) {
      const index = this.#nextRead;
      this.#nextRead += 1;
      this.#reading += 1;
      let handedOver = false;
      const cancel = buffers.acquire((buffer) => {
        handedOver = true;
        this.#cancelBufferWait = undefined;
        this.#read(index, buffer);
      });
      if (!handedOver) {
        this.#cancelBufferWait = cancel;
        return;
      }
    }
    if (!this.#ended && this.#nextSend === this.#chunkCount && this.#reading === 0) {
      this.#ended = true;
      this.#onEnd();
    }
  }

  #read(index: number, buffer: ArrayBuffer): void {
    const { workers, buffers } = this.#services;
    const { size, chunkSize, hashes } = this.file;
    const offset = index * chunkSize;
    workers
      .readChunk({ path: this.#path, offset, length: chunkLengthOf(index, size, chunkSize), xxh64: hashAt(hashes, index), buffer })
      .then(
        (result) => {
          this.#reading -= 1;
          if (this.#ended) return buffers.release(result.buffer);
          if (!result.ok) {
            buffers.release(result.buffer);
            const code = result.code === 'ENOENT' || result.code === 'ECHECKSUM' ? 'ECHANGED' : result.code;
            return this.stop(new FerryError(code, `${this.file.name}: ${result.message}`));
          }
          this.#ready.set(index, result.buffer);
          this.#send();
        },
        (error: unknown) => {
          this.#reading -= 1;
          buffers.release(new ArrayBuffer(buffers.bufferBytes));
          this.stop(new FerryError('EINTERNAL', `chunk worker failed: ${String(error)}`));
        },
      );
  }

  #send(): void {
    const { buffers } = this.#services;
    const { size, chunkSize, hashes } = this.file;
    let room = true;
    for (let buffer = this.#ready.get(this.#nextSend); buffer && !this.#ended; buffer = this.#ready.get(this.#nextSend)) {
      const index = this.#nextSend;
      this.#ready.delete(index);
      this.#nextSend += 1;
      const length = chunkLengthOf(index, size, chunkSize);
      const payload = Buffer.from(buffer, 0, length);
      this.#socket.cork();
      this.#socket.write(encodeChunkHead({ stream: this.stream, offset: index * chunkSize, xxh64: hashAt(hashes, index), length }));
      room = this.#socket.write(payload, () => buffers.release(buffer));
      this.#socket.uncork();
      this.bytesSent += length;
    }
    if (!room && !this.#ended) {
      this.#waitingForDrain = true;
      this.#socket.once('drain', () => {
        this.#waitingForDrain = false;
        this.#pump();
      });
      return;
    }
    this.#pump();
  }
}
