import { provisionDataDir, rememberServer } from './accounts.js';
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
export async function spawnServer(
  t: Test,
  dataDir: string,
  extraArgs: string[] = [],
  options: { env?: NodeJS.ProcessEnv } = {},
): Promise<ServerProcess> {
  const token = await provisionDataDir(dataDir);
  const child = spawn(
    process.execPath,
    [ferryBin, 'serve', '--host', '127.0.0.1', '--port', '0', '--http-port', '0', '--data', dataDir, '--log-level', 'warn', ...extraArgs],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
      ...(options.env ? { env: { ...process.env, ...options.env } } : {}),
    },
  );
  const exited = once(child, 'exit').then(() => undefined);
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  const port = await servingPort(child, token, exited);
  return { child, port, exited };
}

/**
 * The port a `ferry serve` child listens on, from what it says on stderr once it serves; its
 * certificate's fingerprint (or clear text) and the tester's token are remembered for that port.
 */
export function servingPort(child: ChildProcess, token: string, exited: Promise<unknown>): Promise<number> {
  let stderr = '';
  return new Promise<number>((resolve, reject) => {
    child.stderr!.on('data', (data: Buffer) => {
      stderr += data.toString();
      const serving = /serving .* on [^ ]+:(\d+) (over TLS|in clear text)/u.exec(stderr);
      const fingerprint = /certificate fingerprint (SHA256:\S+)/u.exec(stderr)?.[1];
      if (!serving || (serving[2] === 'over TLS' && fingerprint === undefined)) return;
      const port = Number(serving[1]);
      rememberServer(port, { token, fingerprint });
      resolve(port);
    });
    void exited.then(() => reject(new Error(`server exited before listening: ${stderr}`)));
  });
}
