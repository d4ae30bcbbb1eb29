import { Socket } from 'node:net';

/** Size of the buffer each server connection reads into. */
const readBufferBytes = 64 * 1024;

/**
 * Re-wraps a socket accepted with `pauseOnConnect` (not yet reading) so that it reads into one
 * fixed buffer (`onread`) instead of allocating a 64 KiB Buffer per read. At hundreds of MiB/s
 * those allocations kept V8's major GC busy: the server spent about a quarter less CPU per
 * uploaded GiB with this (docs/perf-notes.md). `net.createServer` has no `onread` option, so the
 * accepted socket's handle is moved to a new Socket; the old Socket object is closed without it.
 * `onData` gets a view that is valid only during the call. Where each read lands is `nextRead`'s
 * choice: the fixed buffer, part of it, or the buffer of the upload chunk being received.
 */
export function readIntoFixedBuffer(accepted: Socket, onData: (bytes: Uint8Array) => void, nextRead: (own: Buffer) => Uint8Array): Socket {
  const internals = accepted as unknown as { _handle: object | null };
  const handle = internals._handle;
  if (!handle) return accepted;
  const readBuffer = Buffer.allocUnsafe(readBufferBytes);
  const socket = new Socket({
    handle,
    allowHalfOpen: false,
    readable: true,
    writable: true,
    onread: {
      // Asked again after every read (Node 20 and 24), before the next one.
      buffer: () => nextRead(readBuffer),
      callback: (bytes: number, buffer: Uint8Array) => {
        onData(buffer.subarray(0, bytes));
        return true;
      },
    },
  } as ConstructorParameters<typeof Socket>[0]);
  internals._handle = null;
  accepted.destroy(); // releases the server's count of it; the handle lives on in `socket`
  return socket;
}
