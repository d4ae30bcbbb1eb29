import { FerryError } from '../protocol/errors.js';

/** The most an object store's response head (status line and headers) may take: S3's are well under 4 KiB. */
export const maxResponseHeadBytes = 64 * 1024;

/** What a response head says about the body that follows. */
export interface ResponseHead {
  status: number;
  /** Header names in lower case; a repeated header keeps its last value. */
  headers: Map<string, string>;
  /** The Content-Length, if one was sent. */
  bodyBytes: number | undefined;
  /** The connection may carry another request once the body is in (HTTP/1.1 without `Connection: close`). */
  keepAlive: boolean;
}

const headEnd = Buffer.from('\r\n\r\n');

/**
 * Splits the bytes of one HTTP/1.1 response to a GET into its head and its body, as they come:
 * bytes in, `onHead` once, then `onBody` with each piece of the body (views of the bytes pushed,
 * valid during the call), up to the Content-Length the handler accepts. No sockets here.
 * Malformed input is EIO, as is a body going past its length (the caller closes the connection).
 */
export class RangeResponseParser {
  readonly #onHead: (head: ResponseHead) => number;
  readonly #onBody: (piece: Uint8Array) => void;
  /** The head's bytes so far, until its blank line. */
  #headBytes: Buffer[] = [];
  #headLength = 0;
  /** Body bytes still to come, once the head is in. */
  #bodyLeft: number | undefined;

  /** `onHead` answers with how many body bytes to expect (its Content-Length, or 0 to take none). */
  constructor(onHead: (head: ResponseHead) => number, onBody: (piece: Uint8Array) => void) {
    this.#onHead = onHead;
    this.#onBody = onBody;
  }

  /** Whether the whole response is in. */
  get complete(): boolean {
    return this.#bodyLeft === 0;
  }

  /** Whether any byte of the response came. */
  get started(): boolean {
    return this.#headLength > 0 || this.#bodyLeft !== undefined;
  }

  push(bytes: Uint8Array): void {
    if (this.#bodyLeft === undefined) {
      const before = this.#headLength;
      this.#headBytes.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      this.#headLength += bytes.byteLength;
      // The blank line may straddle the pieces: search from 3 bytes before the new one.
      const soFar = this.#headBytes.length === 1 ? this.#headBytes[0]! : Buffer.concat(this.#headBytes);
      this.#headBytes = [soFar];
      const end = soFar.indexOf(headEnd, Math.max(0, before - 3));
      if (end < 0) {
        if (this.#headLength > maxResponseHeadBytes)
          throw new FerryError('EIO', `the store sent a response head over ${maxResponseHeadBytes} bytes`);
        this.#headBytes = [Buffer.from(soFar)]; // a copy: the bytes pushed are only lent
        return;
      }
      this.#headBytes = [];
      this.#bodyLeft = this.#onHead(parseHead(soFar.toString('latin1', 0, end)));
      const rest = bytes.subarray(bytes.byteLength - (soFar.length - end - headEnd.length));
      if (rest.byteLength > 0) this.#body(rest);
      return;
    }
    this.#body(bytes);
  }

  #body(piece: Uint8Array): void {
    if (piece.byteLength > this.#bodyLeft!) throw new FerryError('EIO', 'the store sent more than the response said it would');
    this.#bodyLeft! -= piece.byteLength;
    this.#onBody(piece);
  }
}

/** The status line and headers of a response (without the blank line ending them). */
export function parseHead(text: string): ResponseHead {
  const [statusLine = '', ...lines] = text.split('\r\n');
  const status = /^HTTP\/1\.([01]) (\d{3})(?: |$)/u.exec(statusLine);
  if (!status)
    throw new FerryError('EIO', `the store answered with something else than HTTP/1.x: ${JSON.stringify(statusLine.slice(0, 40))}`);
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw new FerryError('EIO', `the store sent a malformed header line: ${JSON.stringify(line.slice(0, 40))}`);
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  const length = headers.get('content-length');
  if (length !== undefined && !/^\d{1,15}$/u.test(length))
    throw new FerryError('EIO', `the store sent a Content-Length of ${JSON.stringify(length)}`);
  const connection = headers.get('connection')?.toLowerCase();
  return {
    status: Number(status[2]),
    headers,
    bodyBytes: length === undefined ? undefined : Number(length),
    keepAlive: status[1] === '1' ? connection !== 'close' : connection === 'keep-alive',
  };
}
