import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';

/** Failures counted per address and per user name within this window. */
const windowMs = 10 * 60_000;
/** Failures allowed in a window before further attempts are slowed. */
const freeFailures = 5;
const firstDelayMs = 1000;
const maxDelayMs = 30_000;
/** Addresses and names tracked at most: the oldest windows go first (memory stays bounded under a spray of names). */
const maxTracked = 10_000;

interface Failures {
  count: number;
  windowStart: number;
  /** Whether this window's slowing was logged (once per window). */
  logged: boolean;
}

/**
 * Slows password guessing: after 5 failed logins from one address or for one user name within
 * 10 minutes, each further attempt waits (1 s, doubling, at most 30 s) before its password is
 * checked, and the first slowed attempt of a window is logged.
 */
export class LoginThrottle {
  readonly #failures = new Map<string, Failures>();
  readonly #log: Logger;

  constructor(logger: Logger) {
    this.#log = logger;
  }

  /** How long an attempt from `address` for `user` must wait now. */
  delayMs(address: string, user: string, now = Date.now()): number {
    let most = 0;
    for (const key of [`address ${address}`, `user ${user}`]) {
      const entry = this.#current(key, now);
      if (!entry || entry.count < freeFailures) continue;
      most = Math.max(most, Math.min(maxDelayMs, firstDelayMs * 2 ** (entry.count - freeFailures)));
      if (!entry.logged) {
        entry.logged = true;
        this.#log.warn({ key, failures: entry.count }, `repeated failed logins (${key}): further attempts are slowed`);
      }
    }
    return most;
  }

  /** Waits as long as `delayMs` says. */
  async wait(address: string, user: string): Promise<void> {
    const delay = this.delayMs(address, user);
    if (delay > 0) await sleep(delay);
  }

  failed(address: string, user: string, now = Date.now()): void {
    for (const key of [`address ${address}`, `user ${user}`]) {
      const entry = this.#current(key, now) ?? { count: 0, windowStart: now, logged: false };
      entry.count += 1;
      this.#failures.delete(key); // re-inserted last: the map stays in order of last failure
      this.#failures.set(key, entry);
    }
    while (this.#failures.size > maxTracked) this.#failures.delete(this.#failures.keys().next().value!);
  }

  /** The window of `key` if it is still open. */
  #current(key: string, now: number): Failures | undefined {
    const entry = this.#failures.get(key);
    if (entry && now - entry.windowStart > windowMs) {
      this.#failures.delete(key);
      return undefined;
    }
    return entry;
  }
}
