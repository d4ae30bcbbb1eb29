import { provisionDataDir, rememberToken } from './accounts.js';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';

export const ferryBin = fileURLToPath(new URL('../../bin/ferry.js', import.meta.url));

export interface ServerProcess {
  child: ChildProcess;
  port: number;
  /** Resolves when the process has exited. */
  exited: Promise<void>;
}

/**
 * Runs `ferry serve` (the compiled CLI) as a child process on 127.0.0.1 and a free port; killed
 * by its PID when the test ends if still running.
 */
export async function spawnServer(t: Test, dataDir: string, extraArgs: string[] = []): Promise<ServerProcess> {
  const token = await provisionDataDir(dataDir);
  const child = spawn(
    process.execPath,
    [ferryBin, 'serve', '--host', '127.0.0.1', '--port', '0', '--data', dataDir, '--log-level', 'warn', ...extraArgs],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  const exited = once(child, 'exit').then(() => undefined);
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  let stderr = '';
  const port = await new Promise<number>((resolve, reject) => {
    child.stderr.on('data', (data: Buffer) => {
      stderr += data.toString();
      const match = /serving .* on [^ ]+:(\d+)/u.exec(stderr);
      if (match) {
        rememberToken(Number(match[1]), token);
        resolve(Number(match[1]));
      }
    });
    void exited.then(() => reject(new Error(`server exited before listening: ${stderr}`)));
  });
  return { child, port, exited };
}
