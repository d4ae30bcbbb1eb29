import { capability } from '../protocol/capabilities.js';
import { runningSha256 } from '../hashing/running-sha256.js';
import { loadXxh64 } from '../hashing/xxh64.js';
import { FerryError } from '../protocol/errors.js';
import { fromSystemError } from '../system-errors.js';
import type { ClientConnection } from './connection.js';
import type { ProgressListener, StartListener } from './progress.js';
import type { UploadResult } from './upload.js';

export interface StreamUploadOptions {
  /** Remote name (a stream has none of its own). */
  name: string;
  force?: boolean;
  onProgress?: ProgressListener;
  /** Called once the server has accepted the upload, before the first byte is read. */
  onStart?: StartListener;
}

/** Chunk buffers cycled through: one being filled from the input while others are hashed and on the wire. */
const ringSize = 4;
/** While the input gives nothing, a `ping` this often keeps the connection from looking stalled. */
const keepaliveMs = 5000;

/** A chunk slot of the ring: its shared buffer, and what must settle before it is reused. */
interface RingSlot {
  shared: SharedArrayBuffer;
  buffer: Buffer;
  busy: Promise<void>;
}

/**
 * Uploads everything `input` gives until its end (standard input: `tar c . | ferry upload -`),
 * its size unknown until then. Chunks go in order, each a whole chunk but the last, each with its
 * xxh64; the SHA-256 of the whole and the size close it (`putEnd`). Nothing here can resume: the
 * input cannot be read again, so the server keeps nothing of an upload cut short.
 */
export async function uploadStream(
  connection: ClientConnection,
  input: AsyncIterable<Uint8Array | string>,
  options: StreamUploadOptions,
): Promise<UploadResult> {
  if (!connection.hello.capabilities.includes(capability.putUnsized)) {
    throw new FerryError(
      'ENOTYET',
      `this server (${connection.hello.server}) does not take uploads of unknown size: save the data to a file and upload that`,
    );
  }
  const xxh64 = await loadXxh64();
  const { name } = options;
  const put = await connection.request('put', { name, force: options.force ?? false });
  const { stream, chunkSize } = put;
  let aborted: FerryError | undefined;
  connection.openStream(stream, {
    chunkStart() {},
    chunkData() {},
    chunkEnd() {},
    fail: (error) => {
      aborted = error;
    },
  });
  const checkAlive = (): void => {
    const failure = aborted ?? connection.lost;
    if (failure) throw failure;
  };
  let lastSentAt = Date.now();
  const keepalive = setInterval(() => {
    if (Date.now() - lastSentAt < keepaliveMs) return;
    lastSentAt = Date.now();
    connection.request('ping', {}).catch(() => undefined); // a lost link shows in the next send
  }, keepaliveMs).unref();
  const sha256 = runningSha256(Number.MAX_SAFE_INTEGER);
  const ring: RingSlot[] = Array.from({ length: ringSize }, () => {
    const shared = new SharedArrayBuffer(chunkSize);
    return { shared, buffer: Buffer.from(shared), busy: Promise.resolve() };
  });
  let sent = 0;
  let slotIndex = 0;
  let slot = ring[0]!;
  let filled = 0;
  /** Hashes and sends the filled part of the current slot as the chunk at `sent`, then moves to the next slot. */
  const sendSlot = async (): Promise<void> => {
    const bytes = slot.buffer.subarray(0, filled);
    const hashed = sha256.update(slot.shared, filled).then(() => undefined);
    const flushed = new Promise<void>((resolve) =>
      connection.writeChunk({ stream, offset: sent, xxh64: xxh64(bytes), length: filled }, bytes, () => resolve()),
    );
    slot.busy = Promise.all([hashed, flushed]).then(() => undefined);
    slot.busy.catch(() => undefined); // awaited when the slot comes round again
    sent += filled;
    lastSentAt = Date.now();
    options.onProgress?.({ name, done: sent, total: undefined, transferred: sent });
    await connection.drained();
    slotIndex = (slotIndex + 1) % ring.length;
    slot = ring[slotIndex]!;
    await slot.busy;
    filled = 0;
  };
  try {
    options.onStart?.({ name, from: 0, total: undefined });
    for await (const piece of input) {
      checkAlive();
      const bytes = typeof piece === 'string' ? Buffer.from(piece) : piece;
      for (let taken = 0; taken < bytes.byteLength;) {
        const length = Math.min(chunkSize - filled, bytes.byteLength - taken);
        slot.buffer.set(bytes.subarray(taken, taken + length), filled);
        filled += length;
        taken += length;
        if (filled === chunkSize) {
          await sendSlot();
          checkAlive();
        }
      }
      // Slow input (a producer that trickles) shows as it comes, not a chunk at a time.
      if (filled > 0) options.onProgress?.({ name, done: sent + filled, total: undefined, transferred: sent });
    }
    // The last chunk is the short one; input that was a whole number of chunks ends without one.
    if (filled > 0) await sendSlot();
    await Promise.all(ring.map((each) => each.busy));
    checkAlive();
    const digest = await sha256.digest();
    const file = await connection.request('putEnd', { stream, sha256: digest, size: sent }).catch((error: unknown) => {
      throw aborted ?? error;
    });
    return { name: file.name, size: file.size, sha256: file.sha256, bytesSent: sent, wireBytes: sent, resumed: false, file };
  } catch (error) {
    sha256.drop();
    // The server drops what it holds of this upload when the connection ends: it cannot resume.
    if (!connection.lost) connection.destroy();
    throw error instanceof FerryError ? error : fromSystemError(error, 'reading the data to upload');
  } finally {
    clearInterval(keepalive);
    connection.closeStream(stream);
  }
}
