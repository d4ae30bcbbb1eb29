export { formatBytes, parseSize } from '../../src/units.js';

export const MiB = 1024 * 1024;

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
