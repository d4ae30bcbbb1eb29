/** Sizes and durations as people write them, one implementation for the CLI and the bench. */

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

/** "4MiB", "64KiB", "2GiB", "1.5GB", "1000" (bytes) -> bytes; a RangeError that says why otherwise. */
export function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/iu.exec(text.trim());
  const unit = sizeUnits[match?.[2]?.toLowerCase() ?? 'x'];
  if (!match || unit === undefined) throw new RangeError(`not a size: ${text} (use e.g. 64KiB, 4MiB, 2GiB)`);
  const bytes = Math.round(Number(match[1]) * unit);
  if (!Number.isSafeInteger(bytes)) throw new RangeError(`size out of range: ${text}`);
  return bytes;
}

/** 1000 -> "1000 B", 65536 -> "64 KiB", 1572864 -> "1.5 MiB", 200 MiB + 1 -> "200 MiB". */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const shown = Number.isInteger(value) || value >= 100 ? Math.round(value).toString() : value.toFixed(1);
  return `${shown} ${units[unit]}`;
}

const durationUnits: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "500ms", "30s", "5m", "1h", "30d" -> milliseconds (a bare number is seconds); a RangeError otherwise. */
export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/iu.exec(text.trim());
  if (!match) throw new RangeError(`not a duration: ${text} (use e.g. 500ms, 30s, 5m, 30d)`);
  const ms = Math.round(Number(match[1]) * durationUnits[(match[2] ?? 's').toLowerCase()]!);
  if (!Number.isSafeInteger(ms) || ms < 1) throw new RangeError(`duration out of range: ${text}`);
  return ms;
}

/** 30000 -> "30s", 300000 -> "5m", 86400000 -> "1d", 1500 -> "1500ms": the units `parseDuration` accepts. */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

const twoDigits = (value: number): string => String(value).padStart(2, '0');

/** 42 -> "42s", 954 -> "15m 54s", 3720 -> "1h 02m", 277200 -> "3d 05h": an elapsed time for people (seconds, rounded). */
export function formatElapsed(seconds: number): string {
  const whole = Math.max(0, Math.round(seconds));
  if (whole < 60) return `${whole}s`;
  if (whole < 3600) return `${Math.floor(whole / 60)}m ${twoDigits(whole % 60)}s`;
  if (whole < 86_400) return `${Math.floor(whole / 3600)}h ${twoDigits(Math.floor((whole % 3600) / 60))}m`;
  return `${Math.floor(whole / 86_400)}d ${twoDigits(Math.floor((whole % 86_400) / 3600))}h`;
}

/** A transfer's duration: 350 -> "350 ms", 4240 -> "4.2 s", longer as `formatElapsed`. */
export function formatTransferTime(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return formatElapsed(ms / 1000);
}

/**
 * A moment in this machine's local time with its offset from UTC, as `date '+%F %T %z'` prints
 * it ("2026-12-02 11:58:46 +0100"): the one way the CLI shows times to people (--json keeps ISO 8601 UTC).
 */
export function formatLocalTime(time: string | number | Date): string {
  const moment = new Date(time);
  const offsetMinutes = -moment.getTimezoneOffset();
  const sign = offsetMinutes < 0 ? '-' : '+';
  const offset = `${sign}${twoDigits(Math.floor(Math.abs(offsetMinutes) / 60))}${twoDigits(Math.abs(offsetMinutes) % 60)}`;
  const date = `${moment.getFullYear()}-${twoDigits(moment.getMonth() + 1)}-${twoDigits(moment.getDate())}`;
  return `${date} ${twoDigits(moment.getHours())}:${twoDigits(moment.getMinutes())}:${twoDigits(moment.getSeconds())} ${offset}`;
}

/** "127.0.0.1:8888", "[::1]:8888": a host and port as people type them (an IPv6 address in brackets). */
export function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}
