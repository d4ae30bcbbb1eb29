import type { RequestScope } from '../request-context.js';
import type { SharedCatalog } from '../shared-catalog.js';

/**
 * Runs `handle` once the file records it reads are up to date: on a store several servers share,
 * after `refresh` has brought them in line with the store; on the data directory (the records are
 * the truth there), at once, in the same tick.
 */
export function withFreshRecords<T>(
  scope: RequestScope,
  refresh: (catalog: SharedCatalog) => Promise<void>,
  handle: () => T,
): T | Promise<T> {
  const { catalog } = scope.services;
  return catalog ? refresh(catalog).then(handle) : handle();
}
