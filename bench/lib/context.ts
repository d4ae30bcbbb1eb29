import { availableParallelism, cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { type SourceFile, makeTempDir, removeDir, writeRandomFile, writeTextFile } from './files.js';
import type { BenchOptions } from './options.js';
import { formatBytes } from './units.js';

export interface Machine {
  node: string;
  cpuModel: string;
  cores: number;
  memoryBytes: number;
  kernel: string;
  date: string;
}

export function describeMachine(): Machine {
  return {
    node: process.version,
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    cores: availableParallelism(),
    memoryBytes: totalmem(),
    kernel: release(),
    date: new Date().toISOString(),
  };
}

/** What scenarios share: options, the machine, a scratch dir on disk and the source files (made once). */
export class BenchContext {
  readonly options: BenchOptions;
  readonly machine: Machine;
  readonly workDir: string;
  readonly #sources = new Map<string, Promise<SourceFile>>();

  private constructor(options: BenchOptions, machine: Machine, workDir: string) {
    this.options = options;
    this.machine = machine;
    this.workDir = workDir;
  }

  static async create(options: BenchOptions): Promise<BenchContext> {
    return new BenchContext(options, describeMachine(), await makeTempDir('disk', 'work'));
  }

  /** A random file of `size` bytes on disk (page cache, after it is written), with its SHA-256. */
  async source(size: number): Promise<SourceFile> {
    return this.#made('random', size, writeRandomFile);
  }

  /** A file of `size` bytes of log-like text (it compresses), like `source`. */
  async textSource(size: number): Promise<SourceFile> {
    return this.#made('text', size, writeTextFile);
  }

  #made(kind: 'random' | 'text', size: number, write: (path: string, size: number) => Promise<SourceFile>): Promise<SourceFile> {
    const key = `${kind}-${size}`;
    let made = this.#sources.get(key);
    if (!made) {
      log(`writing a ${formatBytes(size)} ${kind} source file`);
      made = write(join(this.workDir, `source-${key}.${kind === 'text' ? 'txt' : 'bin'}`), size);
      this.#sources.set(key, made);
    }
    return made;
  }

  async dispose(): Promise<void> {
    await removeDir(this.workDir);
  }
}

/** Progress lines go to stderr; stdout carries only the report. */
export function log(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}
