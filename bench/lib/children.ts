import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

/**
 * Every process the bench starts goes through here, so that an interrupted run can stop exactly
 * those processes, by PID, and nothing else.
 */
const running = new Set<ChildProcess>();
const closed = new WeakMap<ChildProcess, Promise<Exit>>();

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export function spawnTracked(command: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
  const child = spawn(command, args, options);
  running.add(child);
  const done = new Promise<Exit>((resolve, reject) => {
    // 'close' comes after 'exit' and after the child's stdio has ended: nothing more to read.
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => resolve({ code, signal }));
    child.once('error', (error) => reject(new Error(`${command}: ${error.message}`, { cause: error })));
  }).finally(() => running.delete(child));
  done.catch(() => undefined); // observed by exitOf
  closed.set(child, done);
  return child;
}

/** Resolves when the child has exited and its stdio is closed (rejects if it could not start). */
export async function exitOf(child: ChildProcess): Promise<Exit> {
  const done = closed.get(child);
  if (!done) throw new Error('not a child started by spawnTracked');
  return done;
}

/** Sends `signal` to the child's PID and waits for it to exit; SIGKILL after `graceMs`. */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<Exit> {
  const exited = exitOf(child);
  if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  try {
    return await exited;
  } finally {
    clearTimeout(timer);
  }
}

/** Kills what is still running (on an aborted run). Only our own children, by PID. */
export function killTracked(): void {
  for (const child of running) child.kill('SIGKILL');
}

export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  seconds: number;
  stdout: string;
  stderr: string;
}

export interface CommandOptions {
  /** Feed this file to the command's stdin (like `< path`). */
  stdinFile?: string;
  /** Send the command's stdout to this file, created or truncated (like `> path`). */
  stdoutFile?: string;
  env?: NodeJS.ProcessEnv;
}

export interface StartedCommand {
  child: ChildProcess;
  /** Settles once the command has exited and its output is read; `seconds` counts from spawn. */
  finished: Promise<CommandResult>;
}

/** Starts a command without waiting for it (a receiver that must run beside its sender). */
export function startCommand(command: string, args: readonly string[], options: CommandOptions = {}): StartedCommand {
  const stdin = options.stdinFile === undefined ? 'ignore' : openSync(options.stdinFile, 'r');
  let stdout: number | 'pipe' = 'pipe';
  try {
    if (options.stdoutFile !== undefined) stdout = openSync(options.stdoutFile, 'w');
  } catch (error) {
    if (typeof stdin === 'number') closeSync(stdin);
    throw error;
  }
  const closeFds = (): void => {
    if (typeof stdin === 'number') closeSync(stdin);
    if (typeof stdout === 'number') closeSync(stdout);
  };
  const started = performance.now();
  let child: ChildProcess;
  try {
    child = spawnTracked(command, args, { stdio: [stdin, stdout, 'pipe'], env: options.env ?? process.env });
  } catch (error) {
    closeFds();
    throw error;
  }
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (text: string) => (out += text));
  child.stderr?.setEncoding('utf8').on('data', (text: string) => (err += text));
  const finished = exitOf(child)
    .then(({ code, signal }) => ({ code, signal, seconds: (performance.now() - started) / 1000, stdout: out, stderr: err }))
    .finally(closeFds);
  return { child, finished };
}

/** Runs a command to completion; `seconds` is the wall time from spawn to exit. */
export async function runCommand(command: string, args: readonly string[], options: CommandOptions = {}): Promise<CommandResult> {
  return startCommand(command, args, options).finished;
}

/** Throws with the command's stderr unless it exited with status 0. */
export function expectSuccess(what: string, result: CommandResult): CommandResult {
  if (result.code !== 0) {
    const why = result.signal ? `signal ${result.signal}` : `exit status ${result.code}`;
    throw new Error(`${what} failed (${why}): ${result.stderr.trim() || '(no stderr)'}`);
  }
  return result;
}
