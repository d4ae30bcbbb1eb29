/**
 * Takes entries from `source`, read as needed, while there are at most `limit` of them and their
 * JSON fits in `maxBytes` (at least one, so a page always moves on); `more` tells whether one was
 * left. Pages of `list` and `log` are cut by bytes as well as by count, so no reply grows past what
 * the server budgets for one.
 */
export function takeWithin<T>(source: Iterable<T>, limit: number, maxBytes: number): { taken: T[]; more: boolean } {
  const taken: T[] = [];
  let bytes = 0;
  for (const entry of source) {
    bytes += Buffer.byteLength(JSON.stringify(entry)) + 1;
    if (taken.length === limit || (taken.length > 0 && bytes > maxBytes)) return { taken, more: true };
    taken.push(entry);
  }
  return { taken, more: false };
}
