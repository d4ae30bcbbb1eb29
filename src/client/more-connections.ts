import { FerryError } from '../protocol/errors.js';

/**
 * Opens up to `wanted` more connections with `open`, all at once (over a long link each takes a
 * few round trips), for parallel streams. A server that allows no more from this network (EBUSY)
 * caps them: the ones that opened are used, and `onNotice` says so. Any other failure is the
 * transfer's, after the ones that opened are closed.
 */
export async function openMoreConnections<T>(
  wanted: number,
  open: () => Promise<T>,
  close: (each: T) => void,
  onNotice: ((text: string) => void) | undefined,
): Promise<T[]> {
  const settled = await Promise.allSettled(Array.from({ length: wanted }, () => open()));
  const opened = settled.flatMap((each) => (each.status === 'fulfilled' ? [each.value] : []));
  const failures = settled.flatMap((each) => (each.status === 'rejected' ? [each.reason as Error] : []));
  const other = failures.find((error) => !(error instanceof FerryError && error.code === 'EBUSY'));
  if (other !== undefined) {
    for (const each of opened) close(each);
    throw other;
  }
  if (failures.length > 0) {
    onNotice?.(`the server takes no more connections from this network: ${opened.length + 1} streams instead of ${wanted + 1}`);
  }
  return opened;
}
