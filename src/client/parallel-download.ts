import { capability } from '../protocol/capabilities.js';
import type { RunningSha256 } from '../hashing/running-sha256.js';
import type { Packing } from '../compression/negotiation.js';
import { FerryError } from '../protocol/errors.js';
import type { FileInfo } from '../protocol/messages.js';
import type { ClientConnection } from './connection.js';
import {
  type ChunkWriter,
  type DownloadReceiver,
  type Received,
  type ReceiverOptions,
  completeBytes,
  receiveChunks,
} from './download-receiver.js';
import { isRetryable } from './retry.js';
import { openMoreConnections } from './more-connections.js';
import type { PartFile } from './part-file.js';

/** Fewer chunks than this per stream and parallel streams are not worth their connections. */
const minChunksPerStream = 2;

/** How many streams a download of chunks [fromChunk, chunkCount) uses: as asked, if the server and the file allow. */
export function streamsFor(asked: number | undefined, connection: ClientConnection, info: FileInfo, fromChunk: number): number {
  if (asked === undefined || asked <= 1 || !connection.hello.capabilities.includes(capability.getRange)) return 1;
  return Math.max(1, Math.min(asked, Math.floor((info.chunkCount - fromChunk) / minChunksPerStream)));
}

/** A SHA-256 that is fed nothing: parallel streams land out of order, so the file is hashed in order apart (`InOrderHashing`). */
const notHashed: RunningSha256 = {
  update: (buffer) => Promise.resolve(buffer),
  digest: () => Promise.reject(new Error('not hashed')),
  drop: () => {},
};

/**
 * Ranges of chunks still to fetch, handed to the connections one at a time; a connection cut
 * part-way gives back what it had not fetched, for another to take.
 */
class RangeQueue {
  readonly #ranges: ChunkRange[];
  #working = 0;
  #waiters: (() => void)[] = [];
  #closed = false;

  constructor(ranges: ChunkRange[]) {
    this.#ranges = ranges;
  }

  /** The next range to fetch; undefined once none is left nor can come back (every fetch ended), or the queue is closed. */
  async next(): Promise<ChunkRange | undefined> {
    for (;;) {
      if (this.#closed) return undefined;
      const range = this.#ranges.shift();
      if (range) {
        this.#working += 1;
        return range;
      }
      if (this.#working === 0) return undefined;
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  /** A range taken is done with; `left` is what of it was not fetched (a cut connection's). */
  ended(left?: ChunkRange): void {
    this.#working -= 1;
    if (left && left.from < left.to) this.#ranges.push(left);
    for (const waiter of this.#waiters.splice(0)) waiter();
  }

  /** The transfer failed: nothing more is handed out, and whoever waits for a range hears so. */
  close(): void {
    this.#closed = true;
    for (const waiter of this.#waiters.splice(0)) waiter();
  }

  /** Ranges no connection took: the connections were all cut first. */
  get left(): number {
    return this.#ranges.length;
  }
}

interface ChunkRange {
  from: number;
  to: number;
}

/**
 * Fetches chunks [fromChunk, chunkCount) of `info` over `streams` connections at once (`connection`
 * and more from `openConnection`), in ranges of a few chunks that each connection takes as it is
 * done with the one before (so the last ones to finish are short), into `writer` at their offsets, each
 * chunk checked against its xxh64 as it lands. The SHA-256 is not fed here (see `InOrderHashing`).
 * A connection that is cut (lost, stalled) gives back the chunks it had not landed and is done;
 * another one fetches them once its own range is in, so a cut stream costs at most about the
 * chunk it was receiving. Any other failure cuts every connection (what landed stays, and a rerun
 * resumes from the verified prefix) and is what it throws; so is the first cut, if every
 * connection was cut before the file was in.
 */
export async function receiveInParallel(
  connection: ClientConnection,
  openConnection: () => Promise<ClientConnection>,
  streams: number,
  wanted: { info: FileInfo; fromChunk: number; pack: Packing | undefined },
  writer: ChunkWriter,
  xxh64: (bytes: Uint8Array) => bigint,
  options: ReceiverOptions & { onNotice?: ((text: string) => void) | undefined },
): Promise<Received> {
  const { info, fromChunk, pack } = wanted;
  const connections = [connection];
  const base = completeBytes(fromChunk, info);
  const received: Received = { bytesReceived: 0, wireBytes: 0 };
  /** Bytes received by each fetch under way, for progress. */
  const underWay = new Map<object, number>();
  const report = (): void => {
    let total = received.bytesReceived;
    for (const bytes of underWay.values()) total += bytes;
    options.onProgress?.({ name: info.name, done: base + total, total: info.size, transferred: total });
  };
  let failure: Error | undefined;
  let firstCut: unknown;
  let work: RangeQueue | undefined;
  const cutAll = (error: unknown): void => {
    failure ??= error instanceof Error ? error : new FerryError('EINTERNAL', String(error));
    work?.close();
    for (const each of connections) each.destroy();
  };
  try {
    connections.push(...(await openMoreConnections(streams - 1, openConnection, (extra) => extra.destroy(), options.onNotice)));
    const queue = new RangeQueue(splitChunks(fromChunk, info.chunkCount, rangesFor(info.chunkCount - fromChunk, connections.length)));
    work = queue;
    const fetchOn = async (each: ClientConnection): Promise<void> => {
      for (let range = await queue.next(); range; range = await queue.next()) {
        const fetch = {};
        let receiver: DownloadReceiver | undefined;
        try {
          const got = await receiveChunks(
            each,
            { name: info.name, sha256: info.sha256, fromChunk: range.from, toChunk: range.to, pack },
            writer,
            notHashed,
            xxh64,
            {
              onProgress: (progress) => {
                underWay.set(fetch, progress.transferred);
                report();
              },
              onReceiver: (made) => (receiver = made),
            },
          );
          received.bytesReceived += got.bytesReceived;
          received.wireBytes += got.wireBytes;
          queue.ended();
        } catch (error) {
          if (!isRetryable(error) || failure !== undefined) {
            queue.ended();
            cutAll(error);
            return;
          }
          // Cut: what it landed stays; the rest of its range goes back for another connection.
          const stopped = receiver ? await receiver.stoppedAt() : { completeUpTo: 0, bytesReceived: 0, wireBytes: 0 };
          received.bytesReceived += stopped.bytesReceived;
          received.wireBytes += stopped.wireBytes;
          firstCut ??= error;
          each.destroy();
          const rangeEnd = completeBytes(range.to, info);
          const from =
            stopped.completeUpTo >= rangeEnd ? range.to : Math.max(range.from, Math.floor(stopped.completeUpTo / info.chunkSize));
          queue.ended({ from, to: range.to });
          return;
        } finally {
          underWay.delete(fetch);
        }
      }
    };
    await Promise.all(connections.map(fetchOn));
    if (failure !== undefined) throw failure;
    if (queue.left > 0) throw firstCut;
    return received;
  } catch (error) {
    cutAll(error);
    throw failure instanceof FerryError ? failure : error;
  } finally {
    for (const extra of connections.slice(1)) extra.destroy();
  }
}

/** Chunks in one range of a parallel download, at most: a connection done with its own takes the next, so none is left with a long tail. */
const chunksPerRange = 4;

/** How many ranges `chunks` chunks are fetched in over `connections` connections: at least one each, and none bigger than `chunksPerRange`. */
function rangesFor(chunks: number, connections: number): number {
  return Math.min(chunks, Math.max(connections, Math.ceil(chunks / chunksPerRange)));
}

/** `streams` contiguous ranges covering chunks [from, to), as even as whole chunks allow. */
export function splitChunks(from: number, to: number, streams: number): { from: number; to: number }[] {
  const ranges: { from: number; to: number }[] = [];
  for (let index = 0; index < streams; index += 1) {
    ranges.push({ from: from + Math.floor(((to - from) * index) / streams), to: from + Math.floor(((to - from) * (index + 1)) / streams) });
  }
  return ranges;
}

/**
 * The SHA-256 of a download whose chunks land out of order (parallel streams), fed in order as
 * they land: each chunk written through `writer` is marked, and the run of chunks from
 * `fromChunk` on that has no gap is read back from the part (just written: from the page cache)
 * and fed as it grows, one chunk buffer at a time. So the hashing goes on beside the transfer,
 * not after it (it once read the whole part back at the end: about 0.75 s per GiB of wall
 * time added to every parallel download here). The chunks before `fromChunk` were fed as they
 * were verified.
 */
export class InOrderHashing {
  readonly #landed = new Set<number>();
  readonly #chunkSize: number;
  #wake: (() => void) | undefined;
  #stopped = false;
  #allWritten = false;
  readonly #done: Promise<void>;

  constructor(handle: PartFile, sha256: RunningSha256, info: FileInfo, fromChunk: number) {
    this.#chunkSize = info.chunkSize;
    this.#done = this.#feed(handle, sha256, info, fromChunk);
    this.#done.catch(() => undefined); // taken up by `finish`
  }

  /** `inner`, telling this of each chunk once it is written. */
  writer(inner: ChunkWriter): ChunkWriter {
    return {
      write: async (bytes, offset) => {
        const written = await inner.write(bytes, offset);
        this.#landed.add(offset / this.#chunkSize);
        this.#wakeUp();
        return written;
      },
      ...(inner.sync && { sync: inner.sync.bind(inner) }),
    };
  }

  /** Every chunk is written: settles once every chunk is fed, or with what failed. */
  finish(): Promise<void> {
    this.#allWritten = true;
    this.#wakeUp();
    return this.#done;
  }

  /** The download failed: feeds nothing more; settles once nothing is being read or hashed. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#wakeUp();
    await this.#done.catch(() => undefined);
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async #feed(handle: PartFile, sha256: RunningSha256, info: FileInfo, fromChunk: number): Promise<void> {
    const shared = new SharedArrayBuffer(Math.max(1, Math.min(info.chunkSize, info.size)));
    const buffer = Buffer.from(shared);
    for (let index = fromChunk; index < info.chunkCount; index += 1) {
      while (!this.#landed.has(index)) {
        if (this.#stopped) return;
        if (this.#allWritten) throw new FerryError('EINTERNAL', `${info.name}: chunk ${index} was received but never written`);
        await new Promise<void>((resolve) => (this.#wake = resolve));
      }
      if (this.#stopped) return;
      this.#landed.delete(index);
      const offset = index * info.chunkSize;
      const length = Math.min(info.chunkSize, info.size - offset);
      const { bytesRead } = await handle.read(buffer, 0, length, offset);
      if (bytesRead !== length) throw new FerryError('EIO', `${info.name}: the part file is shorter than what was received`);
      await sha256.update(shared, length);
    }
  }
}
