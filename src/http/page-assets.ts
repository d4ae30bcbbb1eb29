import { readFile } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { FerryError } from '../protocol/errors.js';

/** The page's files, as `npm run build` puts them in `dist/page/` (bundled by esbuild from `page/`). */
const assets: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/app.js.map': { file: 'app.js.map', type: 'application/json; charset=utf-8' },
  '/hash-worker.js': { file: 'hash-worker.js', type: 'text/javascript; charset=utf-8' },
  '/hash-worker.js.map': { file: 'hash-worker.js.map', type: 'application/json; charset=utf-8' },
  '/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
};

/**
 * Only this server's own files run in the page; nothing loads from elsewhere, and no other site
 * may frame it. 'wasm-unsafe-eval' lets the hashing worker compile its WebAssembly SHA-256 (it
 * allows no eval of JavaScript).
 */
const contentSecurityPolicy =
  "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/** `dist/page/` of the package this module belongs to (it runs from `src/http/` in tests, `dist/src/http/` when built). */
const pageDir = new URL(import.meta.url.includes('/dist/src/') ? '../../page/' : '../../dist/page/', import.meta.url);

/** Whether `path` is one of the page's files. */
export function isPageAsset(path: string): boolean {
  return Object.hasOwn(assets, path);
}

/** Serves one of the page's files (GET or HEAD). */
export async function servePageAsset(path: string, head: boolean, response: ServerResponse): Promise<void> {
  const asset = assets[path]!;
  let body: Buffer;
  try {
    body = await readFile(new URL(asset.file, pageDir));
  } catch {
    throw new FerryError('ENOTYET', 'the web page is not built in this copy of Ferry: run npm run build');
  }
  response.writeHead(200, {
    'Content-Type': asset.type,
    'Content-Length': body.length,
    'Cache-Control': 'no-cache',
    'Content-Security-Policy': contentSecurityPolicy,
    'X-Frame-Options': 'DENY',
  });
  response.end(head ? undefined : body);
}
