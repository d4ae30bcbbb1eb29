// Watching the server between runs and after the fuzz: connections released, info agreeing with list.
import type { FerryServer } from '../../src/server/server.js';
import { MiB, waitMs } from './config.js';
import { FuzzConnection } from './connection.js';
import { helloFields } from './plan.js';
import { show } from './report.js';

/** The server's open connections: a count, and a 'close' event when one has released what it held. */
type ConnectionRegistry = FerryServer['connections'];

/**
 * Resolves with the number of connections the server holds once it is down to `most`, or with
 * the number then after `timeoutMs` (a connection that is never released fails, it does not hang).
 */
export function connectionCountDownTo(registry: ConnectionRegistry, most: number, timeoutMs: number): Promise<number> {
  if (registry.count <= most) return Promise.resolve(registry.count);
  return new Promise((resolve) => {
    const settle = (): void => {
      clearTimeout(timer);
      registry.off('close', check);
      resolve(registry.count);
    };
    const check = (): void => {
      if (registry.count <= most) settle();
    };
    const timer = setTimeout(settle, timeoutMs);
    registry.on('close', check);
  });
}

export interface Drift {
  files: number;
  bytes: number;
}

export function sameDrift(a: Drift, b: Drift): boolean {
  return a.files === b.files && a.bytes === b.bytes;
}

/**
 * Watches the server between runs over a connection of its own: every fuzzing connection must be
 * released, and `info` (files, bytes) must stay as far from what `list` shows as it was before
 * the run. Compared with the state before the run rather than with zero: the server's state
 * outlives a run, and fast-check replays shrunk runs against it, so only the run that adds a
 * drift is to blame.
 */
export class Auditor {
  readonly #port: number;
  readonly #registry: ConnectionRegistry;
  #connection: FuzzConnection | undefined;
  #closed = false;

  constructor(port: number, registry: ConnectionRegistry) {
    this.#port = port;
    this.#registry = registry;
  }

  async #open(): Promise<FuzzConnection> {
    if (this.#closed) throw new Error('the auditor was used after the fuzz ended (a run outlived fc.assert)');
    if (!this.#connection || this.#connection.closed || this.#connection.problems.length > 0) {
      this.#connection?.socket.destroy();
      this.#connection = await FuzzConnection.open(this.#port, 'auditor', 64 * MiB);
      await this.#connection.call(helloFields);
    }
    return this.#connection;
  }

  /**
   * Waits until the server holds no connection but this one, for at most `waitMs`. It frees a
   * connection asynchronously (its uploads' chunks land and are recorded first); its connection
   * registry says when, with a 'close' event.
   */
  async released(): Promise<string | undefined> {
    const connection = await this.#open();
    // A round trip first: a connection the run opened and dropped at once may not be accepted by
    // the server yet (the client's 'connect' does not wait for that), and the registry counts
    // only what the server accepted. The server sees the pending accept before this request.
    await connection.call({ op: 'ping' });
    const clients = await connectionCountDownTo(this.#registry, 1, waitMs);
    if (clients === 1) return undefined;
    return `${waitMs} ms after its connections closed, the server still counts ${clients} connections (1 expected)`;
  }

  /** One round trip. */
  async ping(): Promise<void> {
    await (await this.#open()).call({ op: 'ping' });
  }

  /**
   * Reads the drift until it is back at `target`, for at most 2 s: a delete or publish of a
   * closed connection may still be finishing (its record is written before `info` counts it).
   */
  async driftBack(target: Drift): Promise<Drift | string> {
    const deadline = Date.now() + 2000;
    for (;;) {
      const drift = await this.drift();
      if (typeof drift === 'string' || sameDrift(drift, target) || Date.now() > deadline) return drift;
    }
  }

  /** info minus list (files, bytes), once three readings in a row agree. */
  async drift(): Promise<Drift | string> {
    const connection = await this.#open();
    let last = '';
    let same = 0;
    for (let attempt = 0; attempt < 50; attempt += 1) {
      const listed = await connection.call({ op: 'list' });
      const info = await connection.call({ op: 'info' });
      const files = (listed?.['result'] as { files?: { size: number }[] } | undefined)?.files;
      const stats = info?.['result'] as { files?: number; bytes?: number } | undefined;
      if (!files || stats?.files === undefined || stats.bytes === undefined) return `list or info failed: ${show(listed)} ${show(info)}`;
      const drift = { files: stats.files - files.length, bytes: stats.bytes - files.reduce((total, file) => total + file.size, 0) };
      const key = `${drift.files}/${drift.bytes}`;
      same = key === last ? same + 1 : 1;
      last = key;
      if (same === 3) return drift;
    }
    return 'info and list did not settle';
  }

  close(): void {
    this.#closed = true;
    this.#connection?.socket.destroy();
  }
}
