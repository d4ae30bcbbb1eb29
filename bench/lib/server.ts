import type { ChildProcess } from 'node:child_process';
import { FerryClient } from '../../src/client/client.js';
import { exitOf, spawnTracked, stopChild } from './children.js';
import { ferryBin, nodeArgsFrom } from './paths.js';
import { processCpuSeconds, processPeakRssBytes } from './proc.js';

const tokensByPort = new Map<number, string>();

/** Client credentials for the bench server on `port`. */
export function loginAt(port: number): { credentials?: { token: string } } {
  const token = tokensByPort.get(port);
  return token === undefined ? {} : { credentials: { token } };
}

/** Environment for a `ferry` CLI run whose arguments name a bench server (`--server 127.0.0.1:PORT`): its token. */
export function loginEnvOf(args: readonly string[]): Record<string, string> {
  const at = args.indexOf('--server');
  const port = at >= 0 ? /:(\d+)$/u.exec(args[at + 1] ?? '')?.[1] : undefined;
  const token = port === undefined ? undefined : tokensByPort.get(Number(port));
  return token === undefined ? {} : { FERRY_TOKEN: token };
}

export interface ServerStats {
  /** User + system CPU seconds of the server process (main thread and workers) over its life. */
  cpuSeconds: number;
  /** Peak resident set size (VmHWM) over its life. */
  peakRssBytes: number;
}

/**
 * `ferry serve` as a child process on 127.0.0.1 and a port of its choosing, so that its CPU
 * time and memory are its own and not the bench's.
 */
export class FerryServer {
  readonly child: ChildProcess;
  readonly port: number;
  readonly dataDir: string;
  /** A session token of the data directory's first admin, logged in once at start (clients use it, not the password). */
  readonly token: string;
  #stopped: Promise<ServerStats> | undefined;

  private constructor(child: ChildProcess, port: number, dataDir: string, token: string) {
    this.child = child;
    this.port = port;
    this.dataDir = dataDir;
    this.token = token;
    tokensByPort.set(port, token);
  }

  static async start(dataDir: string, extraArgs: readonly string[] = []): Promise<FerryServer> {
    const args = [
      ...nodeArgsFrom('FERRY_BENCH_SERVER_NODE_ARGS'),
      ferryBin,
      'serve',
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      '--data',
      dataDir,
      '--log-level',
      'warn',
      ...extraArgs,
    ];
    const child = spawnTracked(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    const [port, password] = await new Promise<[number, string]>((resolve, reject) => {
      child.stderr!.setEncoding('utf8').on('data', (text: string) => {
        stderr += text;
        // "ferry: serving DIR on 127.0.0.1:PORT", then (a fresh data directory) the first admin's password.
        const match = /serving .* on [^ ]+:(\d+)\n.*password (\S+) \(kept in/u.exec(stderr);
        if (match) resolve([Number(match[1]), match[2]!]);
      });
      exitOf(child).then(
        (exit) => reject(new Error(`ferry serve exited (${exit.signal ?? exit.code}) before listening: ${stderr.trim()}`)),
        reject,
      );
    });
    const client = new FerryClient({ host: '127.0.0.1', port, credentials: { user: 'admin', password } });
    try {
      return new FerryServer(child, port, dataDir, (await client.login()).token);
    } finally {
      await client.close();
    }
  }

  get pid(): number {
    return this.child.pid!;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  cpuSeconds(): number {
    return processCpuSeconds(this.pid);
  }

  /**
   * Reads the final CPU time and peak RSS, then stops the server (SIGTERM to its PID) and awaits
   * its exit. Calling it again returns the same numbers.
   */
  stop(): Promise<ServerStats> {
    this.#stopped ??= this.#stop();
    return this.#stopped;
  }

  async #stop(): Promise<ServerStats> {
    if (this.child.exitCode !== null || this.child.signalCode !== null)
      throw new Error(`ferry serve (pid ${this.pid}) exited on its own (${this.child.signalCode ?? this.child.exitCode})`);
    const stats = { cpuSeconds: this.cpuSeconds(), peakRssBytes: processPeakRssBytes(this.pid) };
    const exit = await stopChild(this.child, 'SIGTERM');
    if (exit.signal === 'SIGKILL') process.stderr.write(`bench: ferry serve (pid ${this.pid}) ignored SIGTERM and was killed\n`);
    return stats;
  }
}
