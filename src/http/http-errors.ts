import type { ServerResponse } from 'node:http';
import { type ErrorCode, FerryError, errorFields } from '../protocol/errors.js';

/** The HTTP status of each error code: the JSON body carries the same stable code as the Ferry protocol. */
const statusOfCode: Record<ErrorCode, number> = {
  EBADNAME: 400,
  ENOENT: 404,
  EEXIST: 409,
  // tus's checksum extension answers a mismatch with 460.
  ECHECKSUM: 460,
  EPROTO: 400,
  EVERSION: 400,
  EBUSY: 423,
  ENOSPC: 507,
  EQUOTA: 413,
  ETIMEDOUT: 408,
  ESHUTDOWN: 503,
  EINCOMPLETE: 409,
  ECHANGED: 409,
  ECORRUPT: 500,
  ECONFIG: 500,
  EIO: 500,
  EINTERNAL: 500,
  ECONNECT: 502,
  ECONNLOST: 502,
  ECANCELED: 400,
  ENOTYET: 501,
  EAUTH: 401,
  EPERM: 403,
  EBADCERT: 400,
  ERANGE: 416,
  EUSAGE: 400,
};

export function httpStatusOf(code: ErrorCode): number {
  return statusOfCode[code];
}

/** Any failure as a FerryError: what is not one is an internal error (its details stay in the server's log). */
export function asFerryError(error: unknown): FerryError {
  return error instanceof FerryError ? error : new FerryError('EINTERNAL');
}

/** Writes `body` as JSON with `status`; nothing is cached. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
    ...headers,
  });
  res.end(text);
}

/**
 * Answers with an error: `{"error": {"code", "message"}}` and the code's status, with `headers`
 * (a 401's WWW-Authenticate, a 416's Content-Range); `status` where the code's own does not fit (tus's 409 for a wrong offset). Once the head is out (a download failing midway),
 * the response is cut instead, so the client sees an incomplete body, never a wrong one.
 */
export function sendError(
  res: ServerResponse,
  error: FerryError,
  headers: Record<string, string> = {},
  status = httpStatusOf(error.code),
): void {
  if (res.headersSent) return void res.destroy();
  sendJson(res, status, { error: errorFields(error) }, headers);
}
