import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { parse as parseCookies, serialize as serializeCookie } from 'cookie';
import { tokenIdleMs } from '../accounts/accounts.js';
import { isLoopback } from '../net-address.js';
import { FerryError } from '../protocol/errors.js';
import { checkPassword } from '../server/handlers/login.js';
import type { UserRecord } from '../store/records.js';
import type { HttpRequestScope } from './http-scope.js';

/** The cookie the page's login sets: the same session token as `ferry login`'s, kept from scripts (HttpOnly). */
export const sessionCookieName = 'ferry_session';

/** How a request proved who it is. A cookie is what a browser sends by itself, so only it needs the same-origin check. */
export type CredentialKind = 'bearer' | 'basic' | 'cookie';

export interface Credentials {
  user: UserRecord;
  kind: CredentialKind;
  /** The session token (bearer or cookie), for logout. */
  token?: string;
}

/** Whether the request came over TLS. */
export function isSecure(request: IncomingMessage): boolean {
  return (request.socket as Partial<TLSSocket>).encrypted === true;
}

/**
 * The account a request is made as, if it carries credentials: `Authorization: Bearer TOKEN` (a
 * token of `ferry login` or of the page's login), `Authorization: Basic` (a password: only over
 * TLS or from this machine, where it cannot be read on the way), or the page's session cookie.
 * Credentials that do not check out are EAUTH, never a quiet fall back to anonymous.
 */
export async function credentialsOf(scope: HttpRequestScope, request: IncomingMessage): Promise<Credentials | undefined> {
  const authorization = request.headers.authorization;
  if (authorization !== undefined) {
    const [scheme = '', value = ''] = authorization.trim().split(/\s+/u, 2);
    if (/^bearer$/iu.test(scheme)) {
      const user = await userOfToken(scope, value);
      return { user, kind: 'bearer', token: value };
    }
    if (/^basic$/iu.test(scheme)) {
      if (!basicAllowed(request)) {
        throw new FerryError('EAUTH', 'a password (Basic authentication) is accepted only over HTTPS or from this machine; use a token');
      }
      const decoded = Buffer.from(value, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon < 0) throw new FerryError('EAUTH', 'Basic credentials are not user:password');
      return { user: await checkPassword(scope, decoded.slice(0, colon), decoded.slice(colon + 1)), kind: 'basic' };
    }
    throw new FerryError('EAUTH', `unknown authorization scheme ${scheme.slice(0, 20)}: use Bearer or Basic`);
  }
  const token = sessionCookie(request);
  if (token === undefined) return undefined;
  return { user: await userOfToken(scope, token), kind: 'cookie', token };
}

/** The page's session token, if the request carries the cookie. */
export function sessionCookie(request: IncomingMessage): string | undefined {
  const header = request.headers.cookie;
  if (header === undefined) return undefined;
  return parseCookies(header)[sessionCookieName];
}

async function userOfToken(scope: HttpRequestScope, token: string): Promise<UserRecord> {
  const user = /^[A-Za-z0-9_-]{43}$/u.test(token) ? await scope.services.accounts.userOfToken(token) : undefined;
  if (!user) throw new FerryError('EAUTH', 'the session token is not valid (it lapsed, or was logged out): log in again');
  return user;
}

/** Basic sends the password itself: only where no one can read it on the way. */
export function basicAllowed(request: IncomingMessage): boolean {
  return isSecure(request) || isLoopback(request.socket.remoteAddress ?? '');
}

/** What a 401 offers: Basic where a password may be sent (curl -u, wget's challenge), and Bearer always. */
export function challengeFor(request: IncomingMessage): string {
  return basicAllowed(request) ? 'Bearer realm="ferry", Basic realm="ferry", charset="UTF-8"' : 'Bearer realm="ferry"';
}

/**
 * Refuses a request that changes state, made by a browser from another site with the page's
 * cookie (cross-site request forgery): `Sec-Fetch-Site` must be same-origin (or none: the user
 * typed it), and an `Origin` must be this server's. Requests without either come from no
 * browser, and are let through.
 */
export function checkSameOrigin(request: IncomingMessage): void {
  const site = request.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') {
    throw new FerryError('EPERM', `a request from another site (Sec-Fetch-Site: ${site.slice(0, 20)}) may not change anything`);
  }
  const origin = request.headers.origin;
  if (origin === undefined) return;
  const expected = `${isSecure(request) ? 'https' : 'http'}://${request.headers.host ?? ''}`;
  if (origin.toLowerCase() !== expected.toLowerCase()) {
    throw new FerryError('EPERM', `a request from another origin (${origin.slice(0, 100)}) may not change anything`);
  }
}

/** The Set-Cookie of a new page session (`token`), or of its end (no token). */
export function sessionCookieHeader(request: IncomingMessage, token: string | undefined): string {
  return serializeCookie(sessionCookieName, token ?? '', {
    httpOnly: true,
    sameSite: 'strict',
    secure: isSecure(request),
    path: '/',
    maxAge: token === undefined ? 0 : Math.floor(tokenIdleMs / 1000),
  });
}
