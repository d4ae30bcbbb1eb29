/**
 * The HTTP side in tests: a running test server's HTTP side started on a free port, and plain
 * requests to it (node:http and node:https, so a test sees every header and status as sent).
 */
import { once } from 'node:events';
import type { IncomingHttpHeaders } from 'node:http';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { readFile } from 'node:fs/promises';
import { type AddressInfo, createServer } from 'node:net';
import { join } from 'node:path';
import type { RunningServer } from './server.js';

export interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** The body as JSON. */
  json<T = Record<string, unknown>>(): T;
}

export interface HttpSideUnderTest {
  /** `http://127.0.0.1:PORT` (or https). */
  base: string;
  port: number;
  /** The server's certificate (PEM), which an HTTPS request trusts. */
  ca: string | undefined;
  /** A request to `path` on it; `headers` may carry credentials (see `bearer`, `basic`). */
  request(path: string, options?: RequestOptions): Promise<HttpAnswer>;
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

/** Starts the HTTP side of `running` on 127.0.0.1 and a free port (HTTPS with `tls`); it closes with the server. */
export async function startHttpSide(running: RunningServer, options: { tls?: boolean } = {}): Promise<HttpSideUnderTest> {
  const { address, secure } = await running.server.listenHttp(0, '127.0.0.1', { tls: options.tls ?? false });
  const base = `${secure ? 'https' : 'http'}://127.0.0.1:${address.port}`;
  const ca = secure ? await readFile(join(running.dataDir, 'tls', 'cert.pem'), 'utf8') : undefined;
  return { base, port: address.port, ca, request: (path, requestOptions) => send(base + path, { ...requestOptions, ca }) };
}

/** One request; the whole answer body is read. */
export function send(url: string, options: RequestOptions & { ca?: string | undefined } = {}): Promise<HttpAnswer> {
  const secure = url.startsWith('https:');
  // The path goes as written: a URL object would resolve `..` segments before they reach the server.
  const [, origin = '', path = '/'] = /^(https?:\/\/[^/]+)(.*)$/u.exec(url) ?? [];
  const { hostname, port } = new URL(origin);
  return new Promise((resolve, reject) => {
    const request = (secure ? httpsRequest : httpRequest)(
      {
        hostname,
        port,
        path,
        method: options.method ?? 'GET',
        headers: options.headers ?? {},
        ...(secure ? { ca: options.ca } : {}),
        agent: false,
      },
      (response) => {
        const pieces: Buffer[] = [];
        response.on('data', (piece: Buffer) => pieces.push(piece));
        response.on('error', reject);
        response.on('end', () => {
          const body = Buffer.concat(pieces);
          const json = <T>(): T => JSON.parse(body.toString('utf8')) as T;
          resolve({ status: response.statusCode ?? 0, headers: response.headers, body, json });
        });
      },
    );
    request.on('error', reject);
    request.end(options.body);
  });
}

export function bearer(token: string): Record<string, string> {
  return { Authorization: `Bearer ${token}` };
}

export function basic(user: string, password: string): Record<string, string> {
  return { Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` };
}

/** A port free on 127.0.0.1 right now (for a `ferry serve --http-port` child). */
export async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
