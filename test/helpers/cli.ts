import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import type { Test } from 'tap';
import { loginEnv, portOfArgs } from './accounts.js';
import { ferryBin } from './server-process.js';

/**
 * Upper bound for one CLI run; a run that takes longer is killed by its PID and reported. Only a
 * guard against a hang: runs started together on a loaded machine may take many seconds each.
 */
export const runTimeoutMs = 60_000;

export const packageVersion = (JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string })
  .version;

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** True when the run outlived its timeout and was killed. */
  timedOut: boolean;
}

export interface RunOptions {
  /** Variables added to the environment (FERRY_SERVER is never inherited from ours). */
  env?: Record<string, string>;
  cwd?: string;
  timeoutMs?: number;
  /** Bytes piped to the run's standard input (closed after them); without it, standard input is closed. */
  input?: Uint8Array;
  /** Run without the test account's token (a test about refusing anonymous clients). */
  anonymous?: boolean;
}

/**
 * The environment of a CLI run: this process's, without a FERRY_SERVER the caller did not ask
 * for. (Under tap every child also gets tap's process-info loader, whatever its environment says:
 * tap hooks spawn and puts it back into NODE_OPTIONS. So children are measured for coverage,
 * and each node start costs a little more.)
 */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  if (!('FERRY_SERVER' in extra)) delete env['FERRY_SERVER'];
  return env;
}

/** Kills `child` by its PID after `timeoutMs`; returns a function that cancels the timer. */
export function killAfter(child: ChildProcess, timeoutMs: number, onKill: () => void): () => void {
  const timer = setTimeout(() => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      onKill();
      process.kill(child.pid, 'SIGKILL');
    }
  }, timeoutMs);
  return () => clearTimeout(timer);
}

/** Runs `node bin/ferry.js ...args` with stdin closed (or fed `options.input`) and stdout/stderr as pipes; never a shell. */
export function ferry(args: string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [ferryBin, ...args], {
      cwd: options.cwd ?? process.cwd(),
      env: childEnv({ ...(options.anonymous ? {} : loginEnv(portOfArgs(args, options.env))), ...options.env }),
      stdio: [options.input ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
    // A run that stops reading early (a usage error) closes the pipe: EPIPE here is no failure.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(options.input);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout!.setEncoding('utf8').on('data', (text: string) => (stdout += text));
    child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    const cancel = killAfter(child, options.timeoutMs ?? runTimeoutMs, () => (timedOut = true));
    child.on('error', (error) => {
      cancel();
      reject(error);
    });
    child.on('close', (code, signal) => {
      cancel();
      resolvePromise({ code, signal, stdout, stderr, timedOut });
    });
  });
}

export function describe(result: RunResult): string {
  return `exit ${result.code}${result.signal ? ` (${result.signal})` : ''}${result.timedOut ? ' after a timeout' : ''}; stdout ${JSON.stringify(result.stdout.slice(0, 400))}; stderr ${JSON.stringify(result.stderr.slice(0, 400))}`;
}

/** Success with --json: exit 0, nothing on stderr, and stdout is exactly one JSON document. */
export function jsonOf<T = unknown>(t: Test, result: RunResult): T {
  t.equal(result.code, 0, `exit 0 (${describe(result)})`);
  t.equal(result.stderr, '', 'nothing on stderr');
  try {
    return JSON.parse(result.stdout) as T;
  } catch (error) {
    t.fail(`stdout is one JSON document: ${(error as Error).message}; ${describe(result)}`);
    return undefined as T;
  }
}

/** An operation failure: exit 1, nothing on stdout, and one line `ferry: <message> (<code>)` on stderr. */
export function assertFailed(t: Test, result: RunResult, code: string, line?: string): void {
  t.equal(result.code, 1, `exit 1 (${describe(result)})`);
  t.equal(result.stdout, '', 'nothing on stdout');
  const lines = result.stderr.split('\n');
  t.equal(lines.at(-1), '', 'stderr ends with a newline');
  t.equal(lines.length, 2, 'exactly one line on stderr');
  t.match(lines[0], new RegExp(`^ferry: \\S.* \\(${code}\\)$`, 'u'), `the line is "ferry: <message> (${code})"`);
  if (line !== undefined) t.equal(lines[0], line);
}

/** A usage error: exit 2, nothing on stdout, and something said on stderr. */
export function assertUsage(t: Test, result: RunResult, says?: RegExp): void {
  t.equal(result.code, 2, `exit 2 (${describe(result)})`);
  t.equal(result.stdout, '', 'nothing on stdout');
  t.not(result.stderr.trim(), '', 'the usage error is explained on stderr');
  if (says) t.match(result.stderr, says);
}

/** A port on 127.0.0.1 that was just listening and is now closed. */
export async function closedPort(): Promise<number> {
  const server = createNetServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((done) => server.close(() => done()));
  return port;
}

/** What `ferry fsck --json` reports. */
export interface FsckReport {
  dataDir: string;
  servedBy?: string;
  findings: { problem: string; name: string; detail: string; action: string }[];
  filesChecked: number;
  uploadsChecked: number;
}

/** Runs the real `ferry fsck --json` on `dataDir`: its exit code and its report. */
export async function fsck(dataDir: string, ...extra: string[]): Promise<{ code: number | null; report: FsckReport; stderr: string }> {
  const run = await ferry(['fsck', '--data', dataDir, '--json', ...extra]);
  if (run.stdout === '') throw new Error(`ferry fsck printed nothing: ${describe(run)}`);
  return { code: run.code, report: JSON.parse(run.stdout) as FsckReport, stderr: run.stderr };
}
