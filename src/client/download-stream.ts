import { FerryError } from '../protocol/errors.js';
import type { FileInfo } from '../protocol/messages.js';
import { type RunningSha256, runningSha256 } from '../hashing/running-sha256.js';
import { loadXxh64 } from '../hashing/xxh64.js';
import { formatBytes } from '../units.js';
import type { ClientConnection } from './connection.js';
import { packingFor } from '../compression/negotiation.js';
import type { DownloadOptions, DownloadResult } from './download.js';
import { type ChunkWriter, type Received, receiveChunks } from './download-receiver.js';

/**
 * Writes a download's chunks to a stream (standard output), strictly in order, one write at a
 * time, each once the one before it has been taken; counts what has been written.
 */
export class InOrderStreamWriter implements ChunkWriter {
  readonly #stream: NodeJS.WritableStream;
  #tail: Promise<void> = Promise.resolve();
  /** Bytes the stream has taken. */
  written = 0;

  constructor(stream: NodeJS.WritableStream) {
    this.#stream = stream;
  }

  write(bytes: Uint8Array): Promise<void> {
    const next = this.#tail.then(
      () =>
        new Promise<void>((resolve, reject) => {
          this.#stream.write(bytes, (error?: Error | null) => {
            if (error) return reject(new FerryError('EIO', `standard output: ${error.message}`, { cause: error }));
            this.written += bytes.byteLength;
            resolve();
          });
        }),
    );
    this.#tail = next.catch(() => undefined); // the failure is the caller's; the chain goes on for later writes to fail too
    return next;
  }

  /** Resolves once every write asked for so far has ended. */
  settled(): Promise<void> {
    return this.#tail;
  }
}

/** What one download to a stream carries from attempt to attempt: the bytes out cannot be taken back. */
export class StreamDownload {
  readonly writer: InOrderStreamWriter;
  /** The file as the first attempt found it: a later attempt that finds other content fails. */
  info: FileInfo | undefined;
  sha256: RunningSha256 | undefined;

  constructor(stream: NodeJS.WritableStream) {
    this.writer = new InOrderStreamWriter(stream);
  }

  /** Forgets the running hash (when the download ends without a digest). */
  drop(): void {
    this.sha256?.drop();
    this.sha256 = undefined;
  }
}

/**
 * One attempt at downloading `name` to a stream: from where the earlier attempts stopped (the
 * bytes already written), each chunk checked against its xxh64 before it is written, in order.
 * The SHA-256 of all that was written is compared at the end: a mismatch fails with ECHECKSUM
 * (the reader must then discard what it got).
 */
export async function downloadToStream(
  connection: ClientConnection,
  name: string,
  state: StreamDownload,
  options: Pick<DownloadOptions, 'onProgress' | 'onStart' | 'compress'> = {},
): Promise<DownloadResult> {
  const xxh64 = await loadXxh64();
  const info = await connection.request('stat', { name });
  if (state.info && (state.info.sha256 !== info.sha256 || state.info.chunkSize !== info.chunkSize)) {
    throw new FerryError(
      'ECHANGED',
      `${name} changed on the server after ${formatBytes(state.writer.written)} of it had been written to standard output`,
    );
  }
  state.info = info;
  const sha256 = (state.sha256 ??= runningSha256(info.size));
  await state.writer.settled();
  const from = state.writer.written;
  options.onStart?.({ name, from, total: info.size });
  let received: Received = { bytesReceived: 0, wireBytes: 0 };
  if (from < info.size) {
    try {
      const pack = packingFor(options.compress ?? 'auto', connection.hello.capabilities);
      received = await receiveChunks(
        connection,
        { name, sha256: info.sha256, fromChunk: from / info.chunkSize, pack },
        state.writer,
        sha256,
        xxh64,
        options,
      );
    } finally {
      // Whatever this attempt verified is being written: the next one starts after it.
      await state.writer.settled();
    }
  }
  const digest = await sha256.digest();
  state.sha256 = undefined;
  if (digest !== info.sha256) {
    throw new FerryError(
      'ECHECKSUM',
      `${name}: the ${formatBytes(state.writer.written)} written to standard output have sha256 ${digest}, the server lists ${info.sha256}: discard them`,
    );
  }
  return { name, path: '-', size: info.size, sha256: digest, ...received, resumed: from > 0 };
}
