import { once } from 'node:events';
import { type IncomingMessage, type Server, type ServerResponse, createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket, TlsOptions } from 'node:tls';
import { FerryError } from '../protocol/errors.js';
import { checkAccess } from '../server/account-view.js';
import type { ServerServices } from '../server/services.js';
import { serveApi, decodeName } from './http-api.js';
import { challengeFor, checkSameOrigin, credentialsOf } from './http-auth.js';
import { serveFile } from './http-download.js';
import { asFerryError, sendError } from './http-errors.js';
import { HttpRequestScope } from './http-scope.js';
import { writeLargeBuffersAlone } from '../tls/large-writes-alone.js';
import { TusUploads } from './tus.js';
import { isPageAsset, servePageAsset } from './page-assets.js';

/** The HTTP side of a Ferry server: the web page, the JSON API, downloads and tus uploads. */
export interface HttpSide {
  /** Starts listening; resolves with the bound address. */
  listen(port: number, host: string): Promise<AddressInfo>;
  /** Whether it serves HTTPS. */
  readonly secure: boolean;
  /** Stops accepting and closes every connection (responses in progress are cut). */
  close(): Promise<void>;
}

/**
 * Serves HTTP (or HTTPS with `tls`: the same certificate as the Ferry side) in the server's own
 * process, on its services: the same store, accounts, worker pool, chunk budget and limits.
 */
export function createHttpSide(services: ServerServices, tls: TlsOptions | undefined): HttpSide {
  const { config } = services;
  const tus = new TusUploads(services);
  const handler = (request: IncomingMessage, response: ServerResponse): void => void route(services, tus, request, response);
  const options = {
    // A request's head must arrive in full within the handshake timeout (a client trickling it is dropped).
    headersTimeout: config.handshakeTimeoutMs,
    // A body (a tus PATCH) may take as long as it keeps moving: the socket's inactivity timeout judges that.
    requestTimeout: 0,
    keepAliveTimeout: 5_000,
    connectionsCheckingInterval: Math.min(1_000, config.handshakeTimeoutMs),
    maxHeaderSize: 16 * 1024,
  };
  const server: Server = tls ? createHttpsServer({ ...options, ...tls }, handler) : createHttpServer(options, handler);
  // A download's chunks, written to the response as they come, reach TLS one by one: never copied into one.
  if (tls) server.on('secureConnection', (socket: TLSSocket) => writeLargeBuffersAlone(socket));
  // A connection on which nothing moves either way for this long is closed (a download the client stopped reading).
  server.setTimeout(config.stallTimeoutMs);
  server.maxConnections = config.maxConnections;
  server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
    services.logger.debug({ err: error }, 'http: bad request');
    if (socket.writable && !socket.destroyed && error.code !== 'ECONNRESET') {
      const status = error.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    }
    socket.destroy();
  });
  return {
    secure: tls !== undefined,
    async listen(port, host) {
      server.listen(port, host);
      await once(server, 'listening');
      return server.address() as AddressInfo;
    },
    async close() {
      if (!server.listening) return;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      await tus.close();
    },
  };
}

/** Splits `/path?query` without normalizing the path: `..` segments are the name guard's to refuse, not the URL parser's to resolve. */
function splitUrl(url: string): { path: string; query: URLSearchParams } {
  const mark = url.indexOf('?');
  return mark < 0
    ? { path: url, query: new URLSearchParams() }
    : { path: url.slice(0, mark), query: new URLSearchParams(url.slice(mark + 1)) };
}

async function route(services: ServerServices, tus: TusUploads, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const scope = new HttpRequestScope(services, request);
  response.setHeader('X-Content-Type-Options', 'nosniff');
  response.setHeader('Referrer-Policy', 'no-referrer');
  try {
    const { path, query } = splitUrl(request.url ?? '/');
    // A login carries a password in its body: a stale cookie beside it must not stand in its way.
    const credentials = path === '/api/login' ? undefined : await credentialsOf(scope, request);
    if (credentials) scope.actAs(credentials.user);
    if (path.startsWith('/api/')) return await serveApi({ scope, request, response, path: path.slice('/api/'.length), query, credentials });
    if (path.startsWith('/files/')) {
      if (request.method !== 'GET' && request.method !== 'HEAD') {
        response.setHeader('Allow', 'GET, HEAD');
        throw new FerryError('EPROTO', `${request.method ?? '?'} is not allowed on /files/: use GET or HEAD (uploads go to /tus/)`);
      }
      if (!credentials) throw new FerryError('EAUTH', 'authentication required: log in first');
      checkAccess('get', scope.account);
      return serveFile(scope, request, response, decodeName(path.slice('/files/'.length)));
    }
    if (path === '/tus' || path.startsWith('/tus/')) {
      if (request.method !== 'OPTIONS') {
        if (!credentials) throw new FerryError('EAUTH', 'authentication required: log in first');
        if (credentials.kind === 'cookie' && request.method !== 'HEAD') checkSameOrigin(request);
      }
      return await tus.serve(scope, request, response, path.slice('/tus/'.length));
    }
    if (isPageAsset(path) && (request.method === 'GET' || request.method === 'HEAD')) {
      return await servePageAsset(path, request.method === 'HEAD', response);
    }
    throw new FerryError('ENOENT', 'nothing here: the API is under /api/, files under /files/ (docs/http.md)');
  } catch (error) {
    const failure = asFerryError(error);
    if (failure.code === 'EINTERNAL') scope.log.error({ err: error }, 'http request failed');
    // Whatever the client sent and did not get read (a refused body) is not read: the connection closes after the answer.
    if (!request.complete) response.setHeader('Connection', 'close');
    sendError(response, failure, failure.code === 'EAUTH' ? { 'WWW-Authenticate': challengeFor(request) } : {});
  }
}
