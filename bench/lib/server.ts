import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FerryClient } from '../../src/client/client.js';
import type { ClientTls } from '../../src/client/server-trust.js';
import { exitOf, spawnTracked, stopChild } from './children.js';
import { ferryBin, nodeArgsFrom } from './paths.js';
import { processCpuSeconds, processPeakRssBytes } from './proc.js';

/** A bench server's admin token and its certificate's fingerprint (undefined: --no-tls). */
interface BenchServerIdentity {
  token: string;
  fingerprint: string | undefined;
}

const serversByPort = new Map<number, BenchServerIdentity>();

/** Client credentials and trust (its certificate pinned, or clear text) for the bench server on `port`. */
export function loginAt(port: number): { credentials?: { token: string }; tls?: ClientTls | false } {
  const server = serversByPort.get(port);
  if (!server) return {};
  return { credentials: { token: server.token }, tls: server.fingerprint === undefined ? false : { fingerprint: server.fingerprint } };
}

/** The bench's own client configuration folder (XDG_CONFIG_HOME of its CLI runs, and XDG_CACHE_HOME inside it): never the user's. */
const cliConfigHome = mkdtempSync(join(tmpdir(), 'ferry-bench-config-'));
process.once('exit', () => rmSync(cliConfigHome, { recursive: true, force: true }));
/** Where the bench's CLI runs keep their hash cache (`upload -r`, `download -r`). */
export const cliCacheHome = join(cliConfigHome, 'cache');

/**
 * Environment for a `ferry` CLI run whose arguments name a bench server (`--server
 * HOST:PORT`): its token, its certificate already known (as after a first connection), or
 * FERRY_NO_TLS for one in clear text.
 */
export function loginEnvOf(args: readonly string[]): Record<string, string> {
  const at = args.indexOf('--server');
  const address = at >= 0 ? /^(.*):(\d+)$/u.exec(args[at + 1] ?? '') : undefined;
  const port = address?.[2];
  const server = port === undefined ? undefined : serversByPort.get(Number(port));
  const homes = { XDG_CONFIG_HOME: cliConfigHome, XDG_CACHE_HOME: cliCacheHome };
  if (!server) return homes;
  if (server.fingerprint === undefined) return { ...homes, FERRY_TOKEN: server.token, FERRY_NO_TLS: '1' };
  mkdirSync(join(cliConfigHome, 'ferry'), { recursive: true, mode: 0o700 });
  writeFileSync(join(cliConfigHome, 'ferry', 'known_servers'), `${address![1]}:${port} ${server.fingerprint}\n`, { mode: 0o600 });
  return { ...homes, FERRY_TOKEN: server.token };
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
  /** Its certificate's fingerprint; undefined when it serves clear text (--no-tls). */
  readonly fingerprint: string | undefined;
  /** The address it listens on: 127.0.0.1, or its own in another network namespace. */
  readonly host: string;
  #stopped: Promise<ServerStats> | undefined;

  private constructor(child: ChildProcess, host: string, port: number, dataDir: string, identity: BenchServerIdentity) {
    this.child = child;
    this.host = host;
    this.port = port;
    this.dataDir = dataDir;
    this.token = identity.token;
    this.fingerprint = identity.fingerprint;
    serversByPort.set(port, identity);
  }

  /** Whether it serves TLS. */
  get tls(): boolean {
    return this.fingerprint !== undefined;
  }

  /**
   * Starts `ferry serve` on a fresh data directory: over TLS (its default), or with `--no-tls` in
   * `extraArgs`; on 127.0.0.1, or on `at.host` inside the network namespace `at.netns`; this
   * checkout's `bin/ferry.js`, or another build's (`bin`).
   */
  static async start(
    dataDir: string,
    extraArgs: readonly string[] = [],
    at: { host: string; netns: string } | undefined = undefined,
    bin: string = ferryBin,
  ): Promise<FerryServer> {
    const host = at?.host ?? '127.0.0.1';
    const args = [
      ...nodeArgsFrom('FERRY_BENCH_SERVER_NODE_ARGS'),
      bin,
      'serve',
      '--host',
      host,
      '--port',
      '0',
      '--http-port',
      '0',
      '--data',
      dataDir,
      '--log-level',
      'warn',
      ...extraArgs,
    ];
    // `ip netns exec` execs node in place: the child's PID is the server's, for its CPU time and memory.
    const child = at
      ? spawnTracked('ip', ['netns', 'exec', at.netns, process.execPath, ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
      : spawnTracked(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    const [port, password, fingerprint] = await new Promise<[number, string, string | undefined]>((resolve, reject) => {
      child.stderr!.setEncoding('utf8').on('data', (text: string) => {
        stderr += text;
        // "ferry: serving DIR on 127.0.0.1:PORT over TLS", its certificate's fingerprint, then (a
        // fresh data directory) the first admin's password.
        const serving = /serving .* on [^ ]+:(\d+) (over TLS|in clear text)/u.exec(stderr);
        const password = /password (\S+) \(kept in/u.exec(stderr)?.[1];
        const fingerprint = /certificate fingerprint (SHA256:\S+)/u.exec(stderr)?.[1];
        if (serving && password !== undefined && (serving[2] !== 'over TLS' || fingerprint !== undefined))
          resolve([Number(serving[1]), password, fingerprint]);
      });
      exitOf(child).then(
        (exit) => reject(new Error(`ferry serve exited (${exit.signal ?? exit.code}) before listening: ${stderr.trim()}`)),
        reject,
      );
    });
    const tls = fingerprint === undefined ? false : { fingerprint };
    const client = new FerryClient({ host, port, tls, credentials: { user: 'admin', password } });
    try {
      return new FerryServer(child, host, port, dataDir, { token: (await client.login()).token, fingerprint });
    } finally {
      await client.close();
    }
  }

  get pid(): number {
    return this.child.pid!;
  }

  get address(): string {
    return `${this.host}:${this.port}`;
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

/**
 * `ferry serve` options for a server that `clients` clients connect to at once, all from
 * 127.0.0.1: the per-address limits (64 established, 8 still logging in) lifted to that.
 */
export function roomForClients(clients: number): string[] {
  const room = String(Math.max(64, clients + 8));
  return ['--max-connections-per-address', room, '--max-unauthenticated-per-address', room, '--max-unauthenticated', room];
}
