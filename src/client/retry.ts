import { setTimeout as sleep } from 'node:timers/promises';
import { FerryError } from '../protocol/errors.js';

/** A failure another attempt on a fresh connection can cure (the catalogue says which): the transfer resumes from where it stopped. */
export function isRetryable(error: unknown): boolean {
  return error instanceof FerryError && error.retryable;
}

export { defaultTransferRetries } from './defaults.js';
const defaultBaseDelayMs = 500;
const defaultMaxDelayMs = 10_000;

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
  /**
   * Asked after a failed attempt: whether it moved the transfer forward. If it did, the count of
   * retries and the backoff start over (a link that drops every few minutes never exhausts a
   * long transfer's retries; one that stays down does).
   */
  madeProgress?: () => boolean;
  /** Stops waiting between attempts: the wait ends with ECANCELED. */
  signal?: AbortSignal;
}

/** The waits before each retry of a link that fails without progress every time (the first lost mid-conversation). */
export function retryDelays(options: RetryOptions, firstFailure: FerryError['code'] = 'ECONNLOST'): number[] {
  const base = options.baseDelayMs ?? defaultBaseDelayMs;
  const max = options.maxDelayMs ?? defaultMaxDelayMs;
  const delays: number[] = [];
  let backoffs = 0;
  for (let retry = 0; retry < options.retries; retry += 1) {
    delays.push(retry === 0 && firstFailure === 'ECONNLOST' ? 0 : Math.min(max, base * 2 ** backoffs++));
  }
  return delays;
}

/** The user's cancel as Ferry's error. */
export function cancelled(signal: AbortSignal): FerryError {
  return signal.reason instanceof FerryError ? signal.reason : new FerryError('ECANCELED');
}

/** Runs `attempt` until it succeeds, fails for good, or runs out of retries (exponential backoff). */
export async function withRetries<T>(attempt: () => Promise<T>, options: RetryOptions): Promise<T> {
  const base = options.baseDelayMs ?? defaultBaseDelayMs;
  const max = options.maxDelayMs ?? defaultMaxDelayMs;
  let backoffs = 0;
  let retry = 0;
  for (;;) {
    if (options.signal?.aborted) throw cancelled(options.signal);
    try {
      return await attempt();
    } catch (error) {
      if (options.signal?.aborted) throw cancelled(options.signal);
      if (!isRetryable(error)) throw error;
      if (options.madeProgress?.()) {
        retry = 0;
        backoffs = 0;
      }
      if (retry >= options.retries) throw error;
      const immediate = retry === 0 && (error as FerryError).code === 'ECONNLOST';
      const delayMs = immediate ? 0 : Math.min(max, base * 2 ** backoffs++);
      retry += 1;
      options.onRetry?.({ attempt: retry + 1, retries: options.retries, error: error as FerryError, delayMs });
      if (delayMs > 0) {
        try {
          await sleep(delayMs, undefined, options.signal ? { signal: options.signal } : {});
        } catch {
          throw cancelled(options.signal!); // only an abort ends the wait early
        }
      }
    }
  }
}
