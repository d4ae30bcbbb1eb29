import type { Fields } from './plan.js';

/** What all runs established: files published and deleted, and what was seen, for the final checks and the report. */
export const ledger = {
  /** name -> sha256 of every putEnd that succeeded (the putEnd was ours, unmutated). */
  published: new Map<string, Set<string>>(),
  /** Names a delete was sent for (its reply may never come: the delete happens all the same). */
  deleted: new Set<string>(),
  counts: new Map<string, number>(),
};

/** Adds `by` to the tally of `what` (reported after the fuzz); returns the new total. */
export function count(what: string, by = 1): number {
  const total = (ledger.counts.get(what) ?? 0) + by;
  ledger.counts.set(what, total);
  return total;
}

/** Notes the name a delete is sent for: the file may be gone although no reply says so. */
export function noteDelete(fields: Fields): void {
  if (fields.op === 'delete' && typeof fields['name'] === 'string') ledger.deleted.add(fields['name']);
}
