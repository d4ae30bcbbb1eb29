/** The read after a payload read in place: a chunk's head (25 or 30 bytes) or a reply, and a little more. */
const readAfterPayloadBytes = 4096;

/**
 * Where each read lands, for a socket that reads into memory of its choosing (`onread` with a
 * function for `buffer`, asked before every read): straight in the memory the current chunk's
 * payload goes to, when the next bytes are that payload's and its receiver offers it (a copy
 * fewer); right after such a payload, a short read of the socket's own buffer (the next frame is
 * most likely the next chunk: its head comes alone, and its payload is read in place from its
 * first bytes, not from the end of a full buffer); else the socket's own buffer.
 *
 * A receiver that offered memory must not give it to anyone else until the socket has read again
 * or closed: the read it was offered for may still land there.
 */
export class ReadPlacement {
  #lastInPlace = false;

  /** `payloadBytesAhead`: the decoder's (0 when the next bytes are not a payload's). */
  next(own: Buffer, payloadBytesAhead: number, payloadTarget: (bytes: number) => Uint8Array | undefined): Uint8Array {
    const target = payloadBytesAhead > 0 ? payloadTarget(payloadBytesAhead) : undefined;
    if (target) {
      this.#lastInPlace = true;
      return target;
    }
    if (!this.#lastInPlace) return own;
    this.#lastInPlace = false;
    return own.subarray(0, readAfterPayloadBytes);
  }
}

/** Node's `onread` option: where each read lands, and what takes its bytes. */
export interface PlacedReads {
  buffer: () => Uint8Array;
  callback: (bytes: number, buffer: Uint8Array) => boolean;
}

/**
 * The `onread` of a socket whose reads land where `nextRead` says, given the socket's own buffer
 * (`ownBytes` long, made here and reused), each read's bytes handed to `onData` as a view valid
 * only during the call.
 */
export function placedReads(ownBytes: number, nextRead: (own: Buffer) => Uint8Array, onData: (bytes: Uint8Array) => void): PlacedReads {
  const own = Buffer.allocUnsafe(ownBytes);
  return {
    // Asked again after every read (Node 20 and 24, clear text and TLS), before the next one.
    buffer: () => nextRead(own),
    callback: (bytes, buffer) => {
      onData(buffer.subarray(0, bytes));
      return true;
    },
  };
}
