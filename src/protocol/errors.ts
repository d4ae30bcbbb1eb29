/**
 * The one catalogue of Ferry's error codes. Each code has a stable name that travels on the
 * wire (`code` in an error reply), a default human message, the exit status the CLI uses for
 * it, and whether another attempt on a fresh connection may cure it (a client reconnects and
 * resumes on those). docs/protocol.md carries the same table; test/errors.test.ts fails if they
 * drift. Callers match on `code`, never on message text.
 */
export const errorCatalogue = {
  EBADNAME: { message: 'invalid name', exitCode: 1, retryable: false },
  ENOENT: { message: 'not found', exitCode: 1, retryable: false },
  EEXIST: { message: 'already exists', exitCode: 1, retryable: false },
  ECHECKSUM: { message: 'checksum mismatch', exitCode: 1, retryable: false },
  EPROTO: { message: 'protocol error', exitCode: 1, retryable: false },
  EVERSION: { message: 'unsupported protocol version', exitCode: 1, retryable: false },
  EBUSY: { message: 'busy: in use by another transfer', exitCode: 1, retryable: true },
  ENOSPC: { message: 'no space left on the server', exitCode: 1, retryable: false },
  EQUOTA: { message: "over the server's size limit or storage quota", exitCode: 1, retryable: false },
  ETIMEDOUT: { message: 'timed out', exitCode: 1, retryable: true },
  ESHUTDOWN: { message: 'the server is shutting down', exitCode: 1, retryable: true },
  EINCOMPLETE: { message: 'upload is missing chunks', exitCode: 1, retryable: false },
  ECHANGED: { message: 'the file changed during the transfer', exitCode: 1, retryable: false },
  ECORRUPT: { message: 'the stored file is damaged: its bytes no longer match its record', exitCode: 1, retryable: false },
  ECONFIG: { message: "not possible with the server's current configuration", exitCode: 1, retryable: false },
  EIO: { message: 'I/O error', exitCode: 1, retryable: false },
  EINTERNAL: { message: 'internal server error', exitCode: 1, retryable: false },
  ECONNECT: { message: 'cannot connect to the server', exitCode: 1, retryable: true },
  ECONNLOST: { message: 'connection to the server lost', exitCode: 1, retryable: true },
  ECANCELED: { message: 'cancelled', exitCode: 130, retryable: false },
  ENOTYET: { message: 'not implemented yet', exitCode: 1, retryable: false },
  EAUTH: { message: 'authentication required', exitCode: 1, retryable: false },
  EPERM: { message: "not permitted for this account's role", exitCode: 1, retryable: false },
  EBADCERT: { message: "the server's certificate is not the one trusted for its address", exitCode: 1, retryable: false },
  ERANGE: { message: 'the requested byte range is not in the file', exitCode: 1, retryable: false },
  EUSAGE: { message: 'usage error', exitCode: 2, retryable: false },
} as const satisfies Record<string, { message: string; exitCode: number; retryable: boolean }>;

export type ErrorCode = keyof typeof errorCatalogue;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(errorCatalogue, value);
}

/** An error with a stable catalogue code. The only error type Ferry's own code throws on purpose. */
export class FerryError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string = errorCatalogue[code].message, options?: ErrorOptions) {
    super(message, options);
    this.name = 'FerryError';
    this.code = code;
  }

  get exitCode(): number {
    return errorCatalogue[this.code].exitCode;
  }

  /** Another attempt on a fresh connection may succeed (the transfer then resumes). */
  get retryable(): boolean {
    return errorCatalogue[this.code].retryable;
  }
}

/** Longest message sent on the wire; longer ones are cut. */
const maxWireMessageLength = 1000;

/**
 * Text as one plain line, at most `maxLength` characters: control characters (C0, DEL, C1: a
 * client-supplied name may carry a terminal escape) and the Unicode line and paragraph separators
 * are written as `\uXXXX`; text too long is cut. The one rule for every message Ferry puts on
 * the wire or a terminal.
 */
export function oneLine(text: string, maxLength = maxWireMessageLength): string {
  // eslint-disable-next-line no-control-regex
  const plain = text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/gu, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return plain.length > maxLength ? plain.slice(0, maxLength - 1) + '…' : plain;
}

/** The code and one-line message of an error reply or event. */
export function errorFields(error: FerryError): { code: ErrorCode; message: string } {
  return { code: error.code, message: oneLine(error.message) };
}
