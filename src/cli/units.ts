import { InvalidArgumentError } from 'commander';
import { defaultPort } from '../protocol/limits.js';
import * as units from '../units.js';

export { formatBytes, formatDuration, formatElapsed, formatLocalTime, formatTransferTime, hostPort } from '../units.js';

/** A parser for a commander option: the shared one, its error as commander's usage error. */
function asOption<T>(parse: (text: string) => T): (text: string) => T {
  return (text) => {
    try {
      return parse(text);
    } catch (error) {
      throw new InvalidArgumentError((error as Error).message);
    }
  };
}

/** "4MiB", "64KiB", "2GiB", "1000" (bytes) -> bytes. */
export const parseSize = asOption(units.parseSize);

/** "500ms", "30s", "5m", "1h", "30d" -> milliseconds (a bare number is seconds). */
export const parseDuration = asOption(units.parseDuration);

export function parseCount(text: string): number {
  if (!/^\d+$/u.test(text.trim())) throw new InvalidArgumentError(`not a whole number: ${text}`);
  return Number(text);
}

export function parsePort(text: string): number {
  const port = parseCount(text);
  if (port > 65535) throw new InvalidArgumentError(`not a port: ${text}`);
  return port;
}

/** Where client commands connect unless told otherwise (`--server`, FERRY_SERVER). */
export const defaultServer = `127.0.0.1:${defaultPort}`;

/** "HOST:PORT", "HOST", "[::1]:8888" -> host and port (default: the default port). */
export function parseServerAddress(text: string): { host: string; port: number } {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/u.exec(text);
  if (bracketed) return { host: bracketed[1]!, port: bracketed[2] ? parsePort(bracketed[2]) : defaultPort };
  const at = text.lastIndexOf(':');
  if (at < 0 || text.indexOf(':') !== at) return { host: text, port: defaultPort };
  const host = text.slice(0, at);
  if (!host) throw new InvalidArgumentError(`not a server address: ${text} (use HOST:PORT)`);
  return { host, port: parsePort(text.slice(at + 1)) };
}
