const sizeUnits: Record<string, number> = {
  '': 1,
  b: 1,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
};

export const MiB = 1024 * 1024;

/** "64KiB", "16MiB", "1GiB", "1000" (bytes) -> bytes. Throws on anything else. */
export function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/iu.exec(text.trim());
  const unit = sizeUnits[match?.[2]?.toLowerCase() ?? 'x'];
  if (!match || unit === undefined) throw new Error(`not a size: ${text} (use e.g. 64KiB, 16MiB, 1GiB)`);
  const bytes = Math.round(Number(match[1]) * unit);
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new Error(`size out of range: ${text}`);
  return bytes;
}

/** 65536 -> "64 KiB", 16777216 -> "16 MiB", 1073741824 -> "1 GiB". */
export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${Number.isInteger(value) ? value : value.toFixed(1)} ${units[unit]}`;
}

export function mibPerSecond(bytes: number, seconds: number): number {
  return seconds > 0 ? bytes / MiB / seconds : 0;
}

/** Fixed decimals, chosen by magnitude: 1234 -> "1,234", 12.3 -> "12.3", 0.123 -> "0.12". */
export function formatNumber(value: number | undefined): string {
  if (value === undefined || !Number.isFinite(value)) return '–';
  const abs = Math.abs(value);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : 2;
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
