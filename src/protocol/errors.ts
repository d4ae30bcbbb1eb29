/**
 * The one catalogue of Ferry's error codes. Each code has a stable name that travels on the
 * wire (`code` in an error reply), a default human message, and the exit status the CLI
 * uses for it. docs/protocol.md carries the same table; test/errors.test.ts fails if they drift.
 * Callers match on `code`, never on message text.
 */
export const errorCatalogue = {
  EBADNAME: { message: 'invalid name', exitCode: 1 },
  ENOENT: { message: 'not found', exitCode: 1 },
  EEXIST: { message: 'already exists', exitCode: 1 },
  ECHECKSUM: { message: 'checksum mismatch', exitCode: 1 },
  EPROTO: { message: 'protocol error', exitCode: 1 },
  EVERSION: { message: 'unsupported protocol version', exitCode: 1 },
  EBUSY: { message: 'busy: in use by another transfer', exitCode: 1 },
  ENOSPC: { message: 'no space left on the server', exitCode: 1 },
  EQUOTA: { message: 'over the server\'s size limit or storage quota', exitCode: 1 },
  ETIMEDOUT: { message: 'timed out', exitCode: 1 },
  ESHUTDOWN: { message: 'the server is shutting down', exitCode: 1 },
  EINCOMPLETE: { message: 'upload is missing chunks', exitCode: 1 },
  ECHANGED: { message: 'the file changed during the transfer', exitCode: 1 },
  ECORRUPT: { message: 'the stored file is damaged: its bytes no longer match its record', exitCode: 1 },
  EIO: { message: 'I/O error', exitCode: 1 },
  EINTERNAL: { message: 'internal server error', exitCode: 1 },
  ECONNECT: { message: 'cannot connect to the server', exitCode: 1 },
  ECONNLOST: { message: 'connection to the server lost', exitCode: 1 },
  ENOTYET: { message: 'not implemented yet', exitCode: 1 },
  EUSAGE: { message: 'usage error', exitCode: 2 },
} as const satisfies Record<string, { message: string; exitCode: number }>;

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
}

/** Longest message sent on the wire; longer ones are cut. */
const maxWireMessageLength = 1000;

/**
 * An error message as it goes on the wire: one plain line. Control characters (C0, DEL, C1: a
 * client-supplied name may carry a terminal escape) and the Unicode line and paragraph separators
 * are written as `\uXXXX`; a message too long is cut.
 */
export function wireMessage(text: string): string {
  // eslint-disable-next-line no-control-regex
  const plain = text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/gu, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return plain.length > maxWireMessageLength ? plain.slice(0, maxWireMessageLength - 1) + '…' : plain;
}

/** The code and one-line message of an error reply or event. */
export function errorFields(error: FerryError): { code: ErrorCode; message: string } {
  return { code: error.code, message: wireMessage(error.message) };
}

/** Maps a Node.js system error (from fs) onto the catalogue, keeping the cause. */
export function fromSystemError(error: unknown, what: string): FerryError {
  if (error instanceof FerryError) return error;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const detail = error instanceof Error ? error.message : String(error);
  if (code === 'ENOSPC' || code === 'EDQUOT') return new FerryError('ENOSPC', `${what}: no space left on device`, { cause: error });
  if (code === 'ENOENT') return new FerryError('ENOENT', `${what}: not found`, { cause: error });
  if (code === 'EEXIST') return new FerryError('EEXIST', `${what}: already exists`, { cause: error });
  return new FerryError('EIO', `${what}: ${detail}`, { cause: error });
}
