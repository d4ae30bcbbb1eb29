import { constants } from 'node:os';
import { FerryError } from './protocol/errors.js';

const errnoNames = new Map(Object.entries(constants.errno).map(([name, number]) => [number, name]));

/** The errno name of a failed system call ('ENOSPC'), also where a library reports the number (lmdb-js: 28). */
export function errnoOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  if (typeof code === 'number') return errnoNames.get(code);
  return typeof code === 'string' ? code : undefined;
}

/**
 * The catalogue code of a failed system call, the one mapping every layer uses: no space (ENOSPC,
 * EDQUOT) is ENOSPC, ENOENT and EEXIST keep theirs, anything else is EIO.
 */
export function codeOfSystemError(error: unknown): 'ENOSPC' | 'ENOENT' | 'EEXIST' | 'EIO' {
  const errno = errnoOf(error);
  if (errno === 'ENOSPC' || errno === 'EDQUOT') return 'ENOSPC';
  if (errno === 'ENOENT' || errno === 'EEXIST') return errno;
  return 'EIO';
}

/**
 * What went wrong, without the paths Node puts in a system error's message (`open '/srv/...'`):
 * a message may travel to a client, which has no business knowing the server's directories.
 */
export function describeSystemError(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.replace(/,? '[^']*'(?: -> '[^']*')?/gu, '');
}

/** A failed system call as a FerryError: `${what}: ${why}`, the cause kept for logs. */
export function fromSystemError(error: unknown, what: string): FerryError {
  if (error instanceof FerryError) return error;
  const code = codeOfSystemError(error);
  const why =
    code === 'EIO'
      ? describeSystemError(error)
      : code === 'ENOSPC'
        ? 'no space left on device'
        : code === 'ENOENT'
          ? 'not found'
          : 'already exists';
  return new FerryError(code, `${what}: ${why}`, { cause: error });
}
