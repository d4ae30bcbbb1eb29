import type { ChildProcess } from 'node:child_process';
import { exitOf, spawnTracked, stopChild } from './children.js';
import { ferryBin, nodeArgsFrom } from './paths.js';
import { processCpuSeconds, processPeakRssBytes } from './proc.js';

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
  #stopped: Promise<ServerStats> | undefined;

  private constructor(child: ChildProcess, port: number, dataDir: string) {
    this.child = child;
    this.port = port;
    this.dataDir = dataDir;
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
    const port = await new Promise<number>((resolve, reject) => {
      child.stderr!.setEncoding('utf8').on('data', (text: string) => {
        stderr += text;
        // "ferry: serving DIR on 127.0.0.1:PORT", printed once it listens.
        const match = /serving .* on [^ ]+:(\d+)/u.exec(stderr);
        if (match) resolve(Number(match[1]));
      });
      exitOf(child).then(
        (exit) => reject(new Error(`ferry serve exited (${exit.signal ?? exit.code}) before listening: ${stderr.trim()}`)),
        reject,
      );
    });
    return new FerryServer(child, port, dataDir);
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
