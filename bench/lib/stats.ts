/** Small, dependency-free statistics for benchmark samples. */

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Nearest-rank percentile (p in 0..100): the smallest sample with at least p% of samples at or below it. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1]!;
}

export function sum(values: readonly number[]): number {
  let total = 0;
  for (const value of values) total += value;
  return total;
}

export function max(values: readonly number[]): number {
  return values.length === 0 ? Number.NaN : Math.max(...values);
}

/**
 * The order `members` run in, in round `round` (counted from 0): the list rotated one place per
 * round, so that over `members.length` rounds each member runs once in every position. (Reversing
 * the order every other round, as for pairs, would leave the middle one of three in the middle
 * every round, always right after another transfer has freed the memory it wrote.)
 */
export function roundOrder<T>(members: readonly T[], round: number): T[] {
  const shift = round % members.length;
  return [...members.slice(shift), ...members.slice(0, shift)];
}
