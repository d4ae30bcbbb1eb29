import { capability } from '../protocol/capabilities.js';
import { createHash } from 'node:crypto';
import { type Stats, closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { FerryError } from '../protocol/errors.js';
import { fromSystemError } from '../system-errors.js';
import { wholePutMaxBytes } from '../protocol/limits.js';
import type { FileInfo, HelloResult } from '../protocol/messages.js';
import type { ChunkHeader, CodecName } from '../protocol/frames.js';
import { localCodec, timedPack } from '../compression/codecs.js';
import type { PackTicket, PolicyPacking } from '../compression/packing-policy.js';
import type { ClientConnection } from './connection.js';
import type { ProgressListener, StartListener } from './progress.js';

/** Whether a file of `size` bytes goes to this server in one `putWhole`: one request, one reply, no session. */
export function goesWhole(hello: HelloResult, size: number): boolean {
  return hello.capabilities.includes(capability.putWhole) && size <= wholePutMaxBytes(hello.chunkSize);
}

/**
 * The local file at `path` whole, with its stats, if it is a regular file small enough to go in
 * one `putWhole` to this server; undefined if it is bigger. Read with blocking calls, as
 * `readFileSync` does: a few microseconds for a file this small in the page cache, where four
 * trips through libuv's thread pool (open, stat, read, close) cost each file of a big tree far
 * more CPU than the reading.
 */
export function readWholeFile(path: string, hello: HelloResult): { stats: Stats; bytes: Buffer } | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (error) {
    throw fromSystemError(error, `local file ${path}`);
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) throw new FerryError('EBADNAME', `${path}: not a regular file`);
    if (!goesWhole(hello, stats.size)) return undefined;
    const bytes = Buffer.allocUnsafe(stats.size);
    let done = 0;
    for (let got = -1; done < stats.size && got !== 0; done += got) got = readSync(fd, bytes, done, stats.size - done, done);
    if (done !== stats.size) throw new FerryError('ECHANGED', `${path} shrank while it was being uploaded`);
    return { stats, bytes };
  } catch (error) {
    throw error instanceof FerryError ? error : fromSystemError(error, `local file ${path}`);
  } finally {
    closeSync(fd);
  }
}

export interface WholePut {
  name: string;
  force: boolean;
  attributes: { mode?: number; mtime?: number };
  onStart?: StartListener | undefined;
  onProgress?: ProgressListener | undefined;
  /** Called with the file's SHA-256 just before the request is sent (see UploadOptions.onFinishing). */
  onFinishing?: ((sha256: string) => void) | undefined;
  /** How the upload packs its chunks, if at all: the file's bytes go packed when the policy says so and they shrink. */
  packing?: PolicyPacking | undefined;
}

/** What a whole put stored, and the bytes it took on the wire. */
export interface WholePutResult {
  file: FileInfo;
  wireBytes: number;
}

/**
 * Sends a whole small file (`bytes`, from `readWholeFile`) in one round trip: `putWhole` with its
 * SHA-256, and right after it, one CHUNK frame on stream 0 with its bytes and their xxh64 (packed
 * where `put.packing` says so, the server takes it, and they shrink). Nothing is left on the
 * server if it fails: a retry sends it again (at most one chunk's worth).
 */
export async function putWhole(
  connection: ClientConnection,
  bytes: Uint8Array,
  put: WholePut,
  xxh64: (bytes: Uint8Array) => bigint,
): Promise<WholePutResult> {
  const { name } = put;
  const size = bytes.byteLength;
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  put.onStart?.({ name, from: 0, total: size });
  put.onFinishing?.(sha256);
  const data = size > 0 ? wholeData(connection, bytes, put.packing) : undefined;
  // The request and its data leave together: nothing may come between them on the connection.
  const stored = connection.request('putWhole', { name, size, sha256, force: put.force, ...put.attributes });
  if (data) {
    const { payload, packed, ticket } = data;
    const header: ChunkHeader = { stream: 0, offset: 0, xxh64: xxh64(bytes), length: payload.byteLength, ...(packed ? { packed } : {}) };
    const policy = put.packing?.policy;
    const room = connection.writeChunk(header, payload, () => ticket && policy?.flushed(ticket, payload.byteLength));
    if (!room && ticket) policy?.blocked(ticket);
  }
  const file = await stored;
  put.onProgress?.({ name, done: size, total: size, transferred: size });
  return { file, wireBytes: data?.payload.byteLength ?? 0 };
}

/** A whole put's bytes as they go on the wire: packed if the policy says so and they shrink by 1/16, else as they are. */
function wholeData(
  connection: ClientConnection,
  bytes: Uint8Array,
  packing: WholePut['packing'],
): { payload: Uint8Array; packed?: { codec: CodecName; rawLength: number }; ticket?: PackTicket } {
  if (!packing || !connection.hello.capabilities.includes(capability.putWholePacked)) return { payload: bytes };
  const { codec, policy } = packing;
  const ticket = policy.packNext(bytes.byteLength);
  if (ticket.way === 'raw') return { payload: bytes, ticket };
  // No more than one chunk's worth: packed here, at once, rather than in a codec thread (a probe too).
  const { packed, measure } = timedPack(localCodec(codec)!, bytes);
  policy.packed(measure);
  return packed ? { payload: packed, packed: { codec, rawLength: bytes.byteLength }, ticket } : { payload: bytes, ticket };
}
