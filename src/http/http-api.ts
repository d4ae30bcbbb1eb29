import type { IncomingMessage, ServerResponse } from 'node:http';
import { FerryError } from '../protocol/errors.js';
import { type Op, type RequestOf, parseRequest } from '../protocol/messages.js';
import { accountOf, checkAccess } from '../server/account-view.js';
import { deleteFile } from '../server/handlers/delete.js';
import { info } from '../server/handlers/info.js';
import { list } from '../server/handlers/list.js';
import { log } from '../server/handlers/log.js';
import { checkPassword, whoami } from '../server/handlers/login.js';
import { stat } from '../server/handlers/stat.js';
import type { ScopedHandler } from '../server/handlers/types.js';
import { type Credentials, checkSameOrigin, sessionCookieHeader } from './http-auth.js';
import { sendJson } from './http-errors.js';
import type { HttpRequestScope } from './http-scope.js';

/** Largest JSON body the API reads (a login). */
const maxJsonBodyBytes = 8 * 1024;

/** One API request: where it goes, its query, and the credentials it carried (checked already). */
export interface ApiRequest {
  scope: HttpRequestScope;
  request: IncomingMessage;
  response: ServerResponse;
  /** The path after `/api/`, still percent-encoded. */
  path: string;
  query: URLSearchParams;
  credentials: Credentials | undefined;
}

/**
 * The JSON API (docs/http.md): the same handlers as the Ferry protocol's requests, with the same
 * checks (the request schema, the account's role and root) and the same error codes.
 */
export async function serveApi(api: ApiRequest): Promise<void> {
  const { request, response, path, query } = api;
  const method = request.method ?? 'GET';
  if (path === 'login') return allow(method, ['POST'], () => login(api));
  if (path === 'logout') return allow(method, ['POST'], () => logout(api));
  if (path === 'me') return allow(method, ['GET'], () => run(api, whoami, { op: 'whoami' }));
  if (path === 'info') return allow(method, ['GET'], () => run(api, info, { op: 'info' }));
  if (path === 'log') return allow(method, ['GET'], () => run(api, log, { op: 'log', ...numberParam(query, 'limit') }));
  if (path === 'files') {
    const prefix = query.get('prefix') ?? undefined;
    const after = query.get('after') ?? undefined;
    return allow(method, ['GET'], () => run(api, list, { op: 'list', prefix, after, ...numberParam(query, 'limit') }));
  }
  if (path.startsWith('files/')) {
    const name = decodeName(path.slice('files/'.length));
    if (method === 'DELETE') return run(api, deleteFile, { op: 'delete', name });
    return allow(method, ['GET', 'DELETE'], () => run(api, stat, { op: 'stat', name }));
  }
  throw new FerryError('ENOENT', `no API at /api/${path.slice(0, 100)} (see docs/http.md)`);

  async function allow(actual: string, allowed: string[], serve: () => Promise<void>): Promise<void> {
    if (allowed.includes(actual) || (actual === 'HEAD' && allowed.includes('GET'))) return serve();
    response.setHeader('Allow', allowed.join(', '));
    throw new FerryError('EPROTO', `${actual} is not allowed on /api/${path}: use ${allowed.join(' or ')}`);
  }
}

/**
 * Runs a shared handler for the request's account: the request is checked by the protocol's own
 * schema, the role by `checkAccess`; a cookie-carried request that changes something must be same-origin.
 */
async function run<O extends Op>(api: ApiRequest, handler: ScopedHandler<O>, fields: Omit<RequestOf<O>, 'id'>): Promise<void> {
  const { scope, request, response, credentials } = api;
  const parsed = parseRequest({ id: 0, ...fields }) as RequestOf<O>;
  if (!credentials) throw new FerryError('EAUTH', 'authentication required: log in first');
  checkAccess(parsed.op, scope.account);
  if (credentials.kind === 'cookie' && request.method !== 'GET' && request.method !== 'HEAD') checkSameOrigin(request);
  const { result } = await handler(parsed, scope);
  sendJson(response, 200, result);
}

/** `POST /api/login` with `{"user", "password"}`: a login session in an HttpOnly cookie (the page's). */
async function login(api: ApiRequest): Promise<void> {
  const { scope, request, response } = api;
  checkSameOrigin(request);
  const body = await readJson(request);
  const user = typeof body['user'] === 'string' ? body['user'].slice(0, 64) : '';
  const password = typeof body['password'] === 'string' ? body['password'].slice(0, 4096) : '';
  const record = await checkPassword(scope, user, password);
  const { token, expires } = await scope.services.accounts.issueToken(record);
  const account = scope.actAs(record);
  scope.log.info('logged in over HTTP');
  sendJson(
    response,
    200,
    { ...account.info, expires: new Date(expires).toISOString() },
    { 'Set-Cookie': sessionCookieHeader(request, token) },
  );
}

/** `POST /api/logout`: the session (cookie or bearer token) is revoked and the cookie cleared. */
async function logout(api: ApiRequest): Promise<void> {
  const { scope, request, response, credentials } = api;
  if (!credentials) throw new FerryError('EAUTH', 'authentication required: log in first');
  if (credentials.kind === 'cookie') checkSameOrigin(request);
  accountOf(scope);
  if (credentials.token !== undefined) await scope.services.accounts.revokeToken(credentials.token);
  sendJson(response, 200, {}, { 'Set-Cookie': sessionCookieHeader(request, undefined) });
}

/** A name from a URL path: percent-decoded (a malformed escape is EBADNAME); the name guard checks it next. */
export function decodeName(encoded: string): string {
  try {
    return decodeURIComponent(encoded);
  } catch {
    throw new FerryError('EBADNAME', 'the name in the URL is not valid percent-encoded UTF-8');
  }
}

/** A numeric query parameter, as the request schema expects it (a bad one fails there, with its name). */
function numberParam(query: URLSearchParams, key: 'limit'): { limit?: number } {
  const value = query.get(key);
  return value === null ? {} : { [key]: /^\d{1,9}$/u.test(value) ? Number(value) : Number.NaN };
}

/** A small JSON object body (a login): at most 8 KiB. */
async function readJson(request: IncomingMessage): Promise<Record<string, unknown>> {
  const pieces: Buffer[] = [];
  let length = 0;
  for await (const piece of request as AsyncIterable<Buffer>) {
    length += piece.length;
    if (length > maxJsonBodyBytes) throw new FerryError('EPROTO', `the request body is over ${maxJsonBodyBytes} bytes`);
    pieces.push(piece);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(pieces).toString('utf8'));
  } catch {
    throw new FerryError('EPROTO', 'the request body is not JSON');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new FerryError('EPROTO', 'the request body is not a JSON object');
  return body as Record<string, unknown>;
}
