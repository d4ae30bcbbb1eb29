import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

/** The process's limit on open files (RLIMIT_NOFILE), where the system tells it (Linux: /proc/self/limits). */
export function openFileLimit(): { soft: number; hard: number } | undefined {
  try {
    const line = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/mu.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (!line) return undefined;
    const value = (text: string): number => (text === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(text));
    return { soft: value(line[1]!), hard: value(line[2]!) };
  } catch {
    return undefined; // not Linux: the limits are not checked
  }
}

/**
 * Raises the soft limit on open files to the hard limit, as `ulimit -n` would: Node has no call
 * for it, so util-linux's prlimit does it for this process. Best effort: without prlimit (or
 * rights), the limit stays and the budget below fits what there is.
 */
export function raiseOpenFileLimit(): void {
  const limit = openFileLimit();
  if (!limit || limit.soft >= limit.hard) return;
  try {
    execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${limit.hard}:${limit.hard}`], { stdio: 'ignore', timeout: 5000 });
  } catch {
    // No prlimit here, or not allowed: the soft limit it is.
  }
}

/**
 * The server's share of the process's file descriptors: every connection's socket and every file
 * a transfer holds open count against it. Connections are refused (`bye EBUSY`) while fewer than
 * `headroom` remain, and a transfer that would open one more file while none remain gets EBUSY,
 * so the table never fills and nothing fails with EMFILE midway.
 */
export class DescriptorBudget {
  /** Descriptors the server may use for sockets and transfer files. */
  readonly limit: number;
  /** Kept free for what must never fail for lack of a descriptor (a transfer's file, LMDB, a sync). */
  readonly headroom: number;
  #inUse = 0;

  constructor(limit: number, headroom: number) {
    this.limit = limit;
    this.headroom = headroom;
  }

  get inUse(): number {
    return this.#inUse;
  }

  /** Whether a new connection may be taken: it leaves the headroom free. */
  roomForConnection(): boolean {
    return this.#inUse + this.headroom < this.limit;
  }

  /** Takes one descriptor (a socket, an open transfer file); false when none is left. */
  take(): boolean {
    if (this.#inUse >= this.limit) return false;
    this.#inUse += 1;
    return true;
  }

  release(): void {
    this.#inUse -= 1;
  }
}

/** How many descriptors the process has open now (Linux: /proc/self/fd), or undefined where the system does not tell. */
export function openDescriptorCount(): number | undefined {
  try {
    return readdirSync('/proc/self/fd').length - 1; // less the one reading the directory
  } catch {
    return undefined;
  }
}

/**
 * Descriptors the process needs besides sockets and transfer files: those open at start (stdio,
 * LMDB, the hashing thread, and whatever the parent process left open to this one), plus room for
 * the worker threads, libuv and directory syncs still to come.
 */
export function reservedDescriptors(workers: number, openNow = openDescriptorCount()): number {
  return (openNow ?? 32) + 32 + 4 * workers;
}
