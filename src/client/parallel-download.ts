import type { FileHandle } from 'node:fs/promises';
import type { RunningSha256 } from '../hashing/running-sha256.js';
import type { Packing } from '../compression/negotiation.js';
import { FerryError } from '../protocol/errors.js';
import type { FileInfo } from '../protocol/messages.js';
import type { ClientConnection } from './connection.js';
import { type ChunkWriter, type Received, type ReceiverOptions, completeBytes, receiveChunks } from './download-receiver.js';
import { openMoreConnections } from './upload-lanes.js';

/** Servers with it take `toChunk` in `get`: a range of a file's chunks, for parallel streams. */
export const rangeCapability = 'get-range';

/** Fewer chunks than this per stream and parallel streams are not worth their connections. */
const minChunksPerStream = 2;

/** How many streams a download of chunks [fromChunk, chunkCount) uses: as asked, if the server and the file allow. */
export function streamsFor(asked: number | undefined, connection: ClientConnection, info: FileInfo, fromChunk: number): number {
  if (asked === undefined || asked <= 1 || !connection.hello.capabilities.includes(rangeCapability)) return 1;
  return Math.max(1, Math.min(asked, Math.floor((info.chunkCount - fromChunk) / minChunksPerStream)));
}

/** A SHA-256 that is fed nothing: parallel streams land out of order, so the file is hashed once they are all in (`hashInOrder`). */
const notHashed: RunningSha256 = {
  update: (buffer) => Promise.resolve(buffer),
  digest: () => Promise.reject(new Error('not hashed')),
  drop: () => {},
};

/**
 * Fetches chunks [fromChunk, chunkCount) of `info` over `streams` connections at once (`connection`
 * and more from `openConnection`), each a contiguous range, into `writer` at their offsets, each
 * chunk checked against its xxh64 as it lands. The SHA-256 is not fed here (see `hashInOrder`).
 * If any stream fails, every connection is cut (what landed stays, and a rerun resumes from the
 * verified prefix) and the first failure is what it throws.
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
  const progressOf =
    (index: number, transferred: number[]): ReceiverOptions['onProgress'] =>
    (progress) => {
      transferred[index] = progress.transferred;
      const total = transferred.reduce((sum, each) => sum + each, 0);
      options.onProgress?.({ name: info.name, done: base + total, total: info.size, transferred: total });
    };
  let failure: Error | undefined;
  const cutAll = (error: unknown): void => {
    failure ??= error instanceof Error ? error : new FerryError('EINTERNAL', String(error));
    for (const each of connections) each.destroy();
  };
  try {
    connections.push(...(await openMoreConnections(streams - 1, openConnection, (extra) => extra.destroy(), options.onNotice)));
    const ranges = splitChunks(fromChunk, info.chunkCount, connections.length);
    const transferred = ranges.map(() => 0);
    const results = await Promise.allSettled(
      ranges.map((range, index) =>
        receiveChunks(
          connections[index]!,
          { name: info.name, sha256: info.sha256, fromChunk: range.from, toChunk: range.to, pack },
          writer,
          notHashed,
          xxh64,
          { onProgress: progressOf(index, transferred) },
        ).catch((error: unknown) => {
          cutAll(error);
          throw error;
        }),
      ),
    );
    if (failure !== undefined) throw failure;
    return results.reduce(
      (sum, result) => {
        const received = (result as PromiseFulfilledResult<Received>).value;
        return { bytesReceived: sum.bytesReceived + received.bytesReceived, wireBytes: sum.wireBytes + received.wireBytes };
      },
      { bytesReceived: 0, wireBytes: 0 },
    );
  } catch (error) {
    cutAll(error);
    throw failure instanceof FerryError ? failure : error;
  } finally {
    for (const extra of connections.slice(1)) extra.destroy();
  }
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
 * Feeds `sha256` the file's bytes from chunk `fromChunk` to its end, read back from `handle` in
 * order (what parallel streams wrote out of order); the chunks before were fed as they were verified.
 */
export async function hashInOrder(handle: FileHandle, sha256: RunningSha256, info: FileInfo, fromChunk: number): Promise<void> {
  const shared = new SharedArrayBuffer(Math.max(1, Math.min(info.chunkSize, info.size)));
  const buffer = Buffer.from(shared);
  for (let offset = fromChunk * info.chunkSize; offset < info.size; offset += info.chunkSize) {
    const length = Math.min(info.chunkSize, info.size - offset);
    const { bytesRead } = await handle.read(buffer, 0, length, offset);
    if (bytesRead !== length) throw new FerryError('EIO', `${info.name}: the part file is shorter than what was received`);
    await sha256.update(shared, length);
  }
}
