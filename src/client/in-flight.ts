/** How much of a tree is in flight at once: files, and their bytes (a file bigger than the byte limit goes alone). */
export interface InFlightLimits {
  count: number;
  bytes: number;
}

/**
 * Runs `work` over the items of `source` with up to `limits.count` of them at once, and no more
 * than `limits.bytes` of their `sizeOf` together unless one alone is bigger: many small files
 * share the connection's round trips, big ones go nearly one at a time. Items are pulled from
 * `source` only as there is room, so a lazy source (a walk of a huge tree) is never read ahead
 * further than that. Stops pulling once `work` returns false; resolves when every started item
 * has ended. `work` must not reject (it reports its own failures).
 */
export async function inFlight<T>(
  source: AsyncIterable<T> | Iterable<T>,
  sizeOf: (item: T) => number,
  limits: InFlightLimits,
  work: (item: T) => Promise<boolean>,
): Promise<void> {
  const running = new Set<Promise<void>>();
  let bytes = 0;
  let going = true;
  for await (const item of source) {
    const size = sizeOf(item);
    while (running.size >= limits.count || (running.size > 0 && bytes + size > limits.bytes)) await Promise.race(running);
    if (!going) break;
    bytes += size;
    const started: Promise<void> = work(item).then((goOn) => {
      if (!goOn) going = false;
      bytes -= size;
      running.delete(started);
    });
    running.add(started);
  }
  await Promise.all(running);
}
