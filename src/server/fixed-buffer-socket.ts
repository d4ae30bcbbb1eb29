import { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { placedReads } from '../protocol/read-placement.js';

/**
 * Size of the buffer each server connection reads into: frame heads, control frames, and what a
 * chunk's payload brings before its chunk buffer is there (payloads are read in place). A TLS
 * record (at most 16 KiB) fits whole. 64 KiB before payloads were read in place; at 16 KiB, 256
 * connections hold 12 MiB less (docs/perf-notes.md).
 */
const readBufferBytes = 16 * 1024;

/** Where each read lands, given the connection's own buffer: the whole of it, part of it, or other memory. */
export type NextRead = (own: Buffer) => Uint8Array;

/** Called with the bytes of each read: a view valid only during the call. */
export type OnData = (bytes: Uint8Array) => void;

/**
 * Re-wraps a socket accepted with `pauseOnConnect` (not yet reading) so that it reads into one
 * fixed buffer (`onread`) instead of allocating a 64 KiB Buffer per read. At hundreds of MiB/s
 * those allocations kept V8's major GC busy: the server spent about a quarter less CPU per
 * uploaded GiB with this (docs/perf-notes.md). `net.createServer` has no `onread` option, so the
 * accepted socket's handle is moved to a new Socket; the old Socket object is closed without it.
 * `onData` gets a view that is valid only during the call. Where each read lands is `nextRead`'s
 * choice: the fixed buffer, part of it, or the buffer of the upload chunk being received.
 */
export function readIntoFixedBuffer(accepted: Socket, onData: OnData, nextRead: NextRead): Socket {
  const internals = accepted as unknown as { _handle: object | null };
  const handle = internals._handle;
  if (!handle) return accepted;
  const socket = new Socket({
    handle,
    allowHalfOpen: false,
    readable: true,
    writable: true,
    onread: placedReads(readBufferBytes, nextRead, onData),
  } as ConstructorParameters<typeof Socket>[0]);
  internals._handle = null;
  accepted.destroy(); // releases the server's count of it; the handle lives on in `socket`
  return socket;
}

/**
 * Makes a server's TLS socket, just made over an accepted one and not yet reading, read its
 * decrypted bytes as `readIntoFixedBuffer` does: into memory of `nextRead`'s choice, to `onData`,
 * instead of a fresh Buffer per TLS record (at most 16 KiB) through the stream's 'data' events.
 * Node offers `onread` only to a TLS socket it makes over no socket (`tls.connect`); a server's
 * is made over the accepted one, so this sets on it what `onread` would have set (the three
 * fields Node's socket keeps for it, found by their names, and the handle's user buffer), as
 * Node 20 and 24 do. It must run before the socket's first read (Node starts reading on the next
 * tick). Returns false, changing nothing, where this Node keeps them otherwise: the socket then
 * emits 'data' events as before.
 */
export function readTlsIntoChosenMemory(socket: TLSSocket, onData: OnData, nextRead: NextRead): boolean {
  const fields = new Map(Object.getOwnPropertySymbols(socket).map((symbol) => [symbol.description, symbol]));
  const userBuffer = fields.get('kBuffer');
  const bufferSource = fields.get('kBufferGen');
  const bufferCallback = fields.get('kBufferCb');
  const handle = (socket as unknown as { _handle: { useUserBuffer?: (buffer: Uint8Array) => void } | null })._handle;
  if (!userBuffer || !bufferSource || !bufferCallback || typeof handle?.useUserBuffer !== 'function') return false;
  const record = socket as unknown as Record<symbol, unknown>;
  if (record[userBuffer] !== null || record[bufferSource] !== null || record[bufferCallback] !== null) return false;
  const reads = placedReads(readBufferBytes, nextRead, onData);
  const first = reads.buffer();
  record[userBuffer] = first;
  record[bufferSource] = reads.buffer;
  record[bufferCallback] = reads.callback;
  handle.useUserBuffer(first);
  return true;
}
