import { InvalidArgumentError } from 'commander';

export { formatDuration } from '../durations.js';

const sizeUnits: Record<string, number> = {
  '': 1,
  b: 1,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
  tb: 1000 ** 4,
};

/** "4MiB", "64KiB", "2GiB", "1000" (bytes) -> bytes. */
export function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/iu.exec(text.trim());
  const unit = sizeUnits[match?.[2]?.toLowerCase() ?? 'x'];
  if (!match || unit === undefined) throw new InvalidArgumentError(`not a size: ${text} (use e.g. 64KiB, 4MiB, 2GiB)`);
  const bytes = Math.round(Number(match[1]) * unit);
  if (!Number.isSafeInteger(bytes)) throw new InvalidArgumentError(`size out of range: ${text}`);
  return bytes;
}

const durationUnits: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "500ms", "30s", "5m", "1h" -> milliseconds (a bare number is seconds). */
export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/iu.exec(text.trim());
  if (!match) throw new InvalidArgumentError(`not a duration: ${text} (use e.g. 500ms, 30s, 5m)`);
  const ms = Math.round(Number(match[1]) * durationUnits[(match[2] ?? 's').toLowerCase()]!);
  if (!Number.isSafeInteger(ms) || ms < 1) throw new InvalidArgumentError(`duration out of range: ${text}`);
  return ms;
}

export function parseCount(text: string): number {
  if (!/^\d+$/u.test(text.trim())) throw new InvalidArgumentError(`not a whole number: ${text}`);
  return Number(text);
}

export function parsePort(text: string): number {
  const port = parseCount(text);
  if (port > 65535) throw new InvalidArgumentError(`not a port: ${text}`);
  return port;
}

/** "HOST:PORT", "HOST", "[::1]:8888" -> host and port (default 8888). */
export function parseServerAddress(text: string): { host: string; port: number } {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/u.exec(text);
  if (bracketed) return { host: bracketed[1]!, port: bracketed[2] ? parsePort(bracketed[2]) : 8888 };
  const at = text.lastIndexOf(':');
  if (at < 0 || text.indexOf(':') !== at) return { host: text, port: 8888 };
  const host = text.slice(0, at);
  if (!host) throw new InvalidArgumentError(`not a server address: ${text} (use HOST:PORT)`);
  return { host, port: parsePort(text.slice(at + 1)) };
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value >= 100 ? 0 : 1)} ${units[unit]}`;
}
