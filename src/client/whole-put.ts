import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { FerryError } from '../protocol/errors.js';
import { wholePutMaxBytes } from '../protocol/limits.js';
import type { FileInfo, HelloResult } from '../protocol/messages.js';
import type { ClientConnection } from './connection.js';
import type { ProgressListener, StartListener } from './progress.js';

/** Servers with it take a whole small file in one `putWhole` (docs/protocol.md, "putWhole"). */
export const wholePutCapability = 'put-whole';

/** Whether a file of `size` bytes goes to this server in one `putWhole`: one request, one reply, no session. */
export function goesWhole(hello: HelloResult, size: number): boolean {
  return hello.capabilities.includes(wholePutCapability) && size <= wholePutMaxBytes(hello.chunkSize);
}

export interface WholePut {
  name: string;
  size: number;
  force: boolean;
  attributes: { mode?: number; mtime?: number };
  onStart?: StartListener | undefined;
  onProgress?: ProgressListener | undefined;
  /** Called with the file's SHA-256 just before the request is sent (see UploadOptions.onFinishing). */
  onFinishing?: ((sha256: string) => void) | undefined;
}

/**
 * Sends a whole small file in one round trip: `putWhole` with its SHA-256, and right after it,
 * one CHUNK frame on stream 0 with its bytes and their xxh64. Nothing is left on the server if it
 * fails: a retry sends it again (at most one chunk's worth).
 */
export async function putWhole(
  connection: ClientConnection,
  handle: FileHandle,
  path: string,
  put: WholePut,
  xxh64: (bytes: Uint8Array) => bigint,
): Promise<FileInfo> {
  const { name, size } = put;
  const bytes = Buffer.allocUnsafe(size);
  const { bytesRead } = size === 0 ? { bytesRead: 0 } : await handle.read(bytes, 0, size, 0);
  if (bytesRead !== size) throw new FerryError('ECHANGED', `${path} shrank while it was being uploaded`);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  put.onStart?.({ name, from: 0, total: size });
  put.onFinishing?.(sha256);
  // The request and its data leave together: nothing may come between them on the connection.
  const stored = connection.request('putWhole', { name, size, sha256, force: put.force, ...put.attributes });
  if (size > 0) connection.writeChunk({ stream: 0, offset: 0, xxh64: xxh64(bytes), length: size }, bytes, () => {});
  const file = await stored;
  put.onProgress?.({ name, done: size, total: size, transferred: size });
  return file;
}
