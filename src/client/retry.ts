import { setTimeout as sleep } from 'node:timers/promises';
import { FerryError } from '../protocol/errors.js';

/** A failure another attempt on a fresh connection can cure (the catalogue says which): the transfer resumes from where it stopped. */
export function isRetryable(error: unknown): boolean {
  return error instanceof FerryError && error.retryable;
}

export interface RetryOptions {
  /** Further attempts after the first; 0 fails at once. */
  retries: number;
  /**
   * Delay before the first retry; doubled each time, up to `maxDelayMs`. The first retry after a
   * link lost mid-conversation goes at once: the server was there a moment ago, and a transfer
   * waiting on a reconnect is time lost (if the server is gone, that retry fails fast and the
   * backoff follows).
   */
  baseDelayMs?: number;
  maxDelayMs?: number;
  onRetry?: (info: { attempt: number; retries: number; error: FerryError; delayMs: number }) => void;
}

/** Runs `attempt` until it succeeds, fails for good, or runs out of retries (exponential backoff). */
export async function withRetries<T>(attempt: () => Promise<T>, options: RetryOptions): Promise<T> {
  const base = options.baseDelayMs ?? 200;
  const max = options.maxDelayMs ?? 5000;
  let backoffs = 0;
  for (let retry = 0; ; retry += 1) {
    try {
      return await attempt();
    } catch (error) {
      if (!isRetryable(error) || retry >= options.retries) throw error;
      const immediate = retry === 0 && (error as FerryError).code === 'ECONNLOST';
      const delayMs = immediate ? 0 : Math.min(max, base * 2 ** backoffs++);
      options.onRetry?.({ attempt: retry + 2, retries: options.retries, error: error as FerryError, delayMs });
      if (delayMs > 0) await sleep(delayMs);
    }
  }
}
