/**
 * End-to-end tests of the `ferry` command line, continued: output through a slow pipe, the
 * FERRY_SERVER variable, and the interactive shell driven through pipes (see cli.test.ts).
 */
import { loginEnv, portOfArgs } from './helpers/accounts.js';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, constants, openSync } from 'node:fs';
import { join } from 'node:path';
import { Socket } from 'node:net';
import t, { type Test } from 'tap';
import { makeFile } from './helpers/files.js';
import { startServer } from './helpers/server.js';
import { ferryBin } from './helpers/server-process.js';
import { tempDir } from './helpers/temp-dir.js';
import {
  type RunOptions,
  type RunResult,
  childEnv,
  closedPort,
  describe,
  ferry,
  killAfter,
  packageVersion,
  runTimeoutMs,
  jsonOf,
  assertFailed,
} from './helpers/cli.js';

const KiB = 1024;

/**
 * Runs the CLI with its stdout on a real pipe (a FIFO: a child's stdio pipes are socket pairs,
 * whose buffers hold far more) whose reader takes nothing for up to `holdMs` (or until the CLI
 * exits, if it does so first), then reads everything. A CLI that exits while its output waits
 * in a full pipe loses whatever did not fit the pipe's 64 KiB.
 */
async function ferryIntoSlowReader(
  t: Test,
  args: string[],
  holdMs: number,
): Promise<{ code: number | null; stdout: string; exitedWhileHeld: boolean }> {
  const fifo = join(tempDir(t, 'ferry-fifo'), 'stdout');
  execFileSync('mkfifo', [fifo]);
  const readerFd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  const writerFd = openSync(fifo, constants.O_WRONLY);
  const child = spawn(process.execPath, [ferryBin, ...args], {
    env: childEnv(loginEnv(portOfArgs(args, undefined))),
    stdio: ['ignore', writerFd, 'ignore'],
  });
  closeSync(writerFd);
  const cancel = killAfter(child, runTimeoutMs, () => {});
  const exited = once(child, 'exit');
  let timer: NodeJS.Timeout | undefined;
  const held = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), holdMs);
  });
  const exitedWhileHeld = await Promise.race([exited.then(() => true), held]);
  clearTimeout(timer);
  const reader = new Socket({ fd: readerFd, readable: true, writable: false });
  let stdout = '';
  reader.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  await Promise.all([once(reader, 'end'), exited]);
  cancel();
  return { code: child.exitCode, stdout, exitedWhileHeld };
}

t.test('output longer than a pipe holds reaches a slow reader whole', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: 64 * KiB });
  const server = ['--server', `127.0.0.1:${running.port}`];
  const local = await makeFile(tempDir(t, 'ferry-cli'), 'tiny.bin', 10);
  const names = Array.from(
    { length: 150 },
    (_, index) => `long/${String(index).padStart(4, '0')}-${'n'.repeat(240)}/${'m'.repeat(250)}/${'o'.repeat(250)}/${'p'.repeat(200)}`,
  );
  const clients = Array.from({ length: 4 }, () => running.client());
  await Promise.all(
    clients.map(async (client, which) => {
      for (let index = which; index < names.length; index += clients.length) await client.upload(local.path, { name: names[index]! });
    }),
  );
  await Promise.all(clients.map((client) => client.close()));

  const json = await ferryIntoSlowReader(t, ['list', '--json', ...server], 1500);
  t.ok(json.stdout.length > 128 * KiB, `more than two pipe buffers of output (${json.stdout.length} bytes)`);
  t.equal(json.code, 0);
  t.notOk(json.exitedWhileHeld, 'the CLI waits for its reader instead of exiting with output unwritten');
  let listed: { name: string }[] = [];
  try {
    listed = JSON.parse(json.stdout) as { name: string }[];
  } catch (error) {
    t.fail(`list --json is one JSON document (${(error as Error).message}; ${json.stdout.length} bytes)`);
  }
  t.same(
    listed.map((file) => file.name),
    names,
    'every file is listed',
  );

  const plain = await ferryIntoSlowReader(t, ['list', ...server], 1500);
  t.equal(plain.code, 0);
  t.equal(plain.stdout.trimEnd().split('\n').length, names.length, 'list prints every line');
  t.ok(plain.stdout.endsWith(`${names.at(-1)}\n`), 'down to the last one');
});

t.test('FERRY_SERVER works instead of --server', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: 64 * KiB });
  const live = `127.0.0.1:${running.port}`;
  const dead = `127.0.0.1:${await closedPort()}`;
  const local = await makeFile(tempDir(t, 'ferry-cli'), 'env.bin', 70 * KiB);

  const up = await ferry(['upload', local.path, '--json'], { env: { FERRY_SERVER: live } });
  t.match(jsonOf(t, up), { name: 'env.bin', sha256: local.sha256 }, 'upload goes to FERRY_SERVER');
  const [listed, override, deadEnv] = await Promise.all([
    ferry(['list', '--json'], { env: { FERRY_SERVER: live } }),
    ferry(['stat', 'env.bin', '--server', live, '--json'], { env: { FERRY_SERVER: dead } }),
    ferry(['stat', 'env.bin'], { env: { FERRY_SERVER: dead } }),
  ]);
  t.match(jsonOf(t, listed), [{ name: 'env.bin', sha256: local.sha256 }], 'list reads FERRY_SERVER');
  t.match(jsonOf(t, override), { name: 'env.bin', sha256: local.sha256 }, '--server wins over FERRY_SERVER');
  assertFailed(t, deadEnv, 'ECONNECT');
  t.match(deadEnv.stderr, dead, 'the FERRY_SERVER address is the one tried');
});

interface ShellRun {
  child: ChildProcess;
  /** Resolves once `pattern` has appeared on stderr; rejects if the shell exits first. */
  stderrShows(pattern: RegExp): Promise<void>;
  exited: Promise<RunResult>;
}

/** `ferry shell` with stdin, stdout and stderr as pipes; killed by its PID after `timeoutMs`. */
function startShell(t: Test, args: string[], options: RunOptions = {}): ShellRun {
  const child = spawn(process.execPath, [ferryBin, 'shell', ...args], {
    cwd: options.cwd ?? process.cwd(),
    env: childEnv({ ...loginEnv(portOfArgs(args, options.env)), ...options.env }),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let timedOut = false;
  const watchers = new Set<() => void>();
  child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => {
    stderr += text;
    for (const check of watchers) check();
  });
  child.stdin.on('error', () => {}); // EPIPE if it has died: reported by the exit status
  const cancel = killAfter(child, options.timeoutMs ?? runTimeoutMs, () => (timedOut = true));
  const exited = new Promise<RunResult>((resolvePromise, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      cancel();
      resolvePromise({ code, signal, stdout, stderr, timedOut });
    });
  });
  t.teardown(async () => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      process.kill(child.pid, 'SIGKILL');
      await exited.catch(() => {});
    }
  });
  return {
    child,
    exited,
    stderrShows(pattern) {
      return new Promise((resolvePromise, reject) => {
        const check = (): void => {
          if (!pattern.test(stderr)) return;
          watchers.delete(check);
          resolvePromise();
        };
        watchers.add(check);
        check();
        void exited.then((result) => reject(new Error(`the shell exited before printing ${pattern}: ${describe(result)}`)), reject);
      });
    },
  };
}

t.test('ferry shell', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: 64 * KiB });
  const address = `127.0.0.1:${running.port}`;
  const dir = tempDir(t, 'ferry-cli');
  const local = await makeFile(dir, 'shell.bin', 300 * KiB + 1);
  const greeting = new RegExp(
    `connected to 127\\.0\\.0\\.1:${running.port} as tester \\(admin, root the whole store\\)\\nhelp lists the commands, quit leaves`,
    'u',
  );
  // Commands written before the shell has even started, with EOF right after, as
  // `printf 'stat nope\ninfo\n' | ferry shell` does. Started first so that its time limit runs
  // alongside the other shell tests; checked in the last one.
  const piped = startShell(t, ['--server', address], { timeoutMs: 60_000 });
  piped.child.stdin!.end('stat nope\ninfo\n');

  t.test("piped in, it runs every command, reports errors and goes on, and exits with the last failure's status", async (t) => {
    const shell = startShell(t, ['--server', address], { cwd: dir });
    await shell.stderrShows(greeting);
    const lines = ['list', `upload ${local.path}`, 'list', 'stat shell.bin', 'stat nope', 'bogus', 'info', 'stat shell.bin --json', 'quit'];
    shell.child.stdin!.write(lines.map((line) => line + '\n').join(''));
    const result = await shell.exited;
    t.equal(result.code, 2, `exit 2 after quit: the last failure was a usage error (${describe(result)})`);
    t.match(result.stderr, greeting, 'the greeting is on stderr');
    t.notMatch(result.stdout, /connected to/u, 'and not on stdout');
    t.match(result.stderr, /^ferry: nope: not found on the server \(ENOENT\)$/mu, 'stat nope prints the error');
    t.match(result.stderr, /unknown command 'bogus'/u, 'bogus prints a usage error');
    const out = result.stdout;
    const order = [
      out.indexOf('(no files)'),
      out.indexOf(`uploaded shell.bin: 300 KiB, sha256 ${local.sha256}`),
      out.indexOf('  shell.bin\n'),
      out.indexOf(`sha256:    ${local.sha256}`),
      out.indexOf(`server:        ferry ${packageVersion}`),
      out.indexOf(`"sha256": "${local.sha256}"`),
    ];
    t.ok(
      order.every((at) => at >= 0),
      `every command printed its result (${JSON.stringify(order)}): ${out}`,
    );
    t.same(
      order,
      [...order].sort((a, b) => a - b),
      'in the order the commands were given',
    );
    t.equal((await running.client().stat('shell.bin')).sha256, local.sha256, 'the shell uploaded the file');
  });

  t.test('upload - in the shell is refused: standard input is where the commands come from', async (t) => {
    const shell = startShell(t, ['--server', address]);
    await shell.stderrShows(greeting);
    shell.child.stdin!.end('upload - --as from-stdin.bin\nnot a file name, but the next command\n');
    const result = await shell.exited;
    t.match(result.stderr, /^ferry: upload - reads standard input, which the shell is reading: run it as a command .*\(EUSAGE\)$/mu);
    t.match(result.stderr, /unknown command 'not'/u, 'the next line was read as a command, not uploaded');
    await t.rejects(running.client().stat('from-stdin.bin'), { code: 'ENOENT' });
  });

  t.test('EOF on stdin ends the shell with exit 0', async (t) => {
    const shell = startShell(t, ['--server', address]);
    await shell.stderrShows(greeting);
    shell.child.stdin!.end('list\n');
    const result = await shell.exited;
    t.equal(result.code, 0, `exit 0 at EOF (${describe(result)})`);
    t.match(result.stdout, '  shell.bin\n', 'the last command ran before the shell ended');
  });

  t.test('--batch stops at the first command that fails and exits with its status', async (t) => {
    const shell = startShell(t, ['--server', address, '--batch']);
    await shell.stderrShows(greeting);
    shell.child.stdin!.end('list\nstat nope\ninfo\n');
    const result = await shell.exited;
    t.equal(result.code, 1, describe(result));
    t.match(result.stdout, '  shell.bin\n', 'the command before the failure ran');
    t.notMatch(result.stdout, /server: +ferry/u, 'the one after it did not');
  });

  t.test('FERRY_SERVER picks the shell server', async (t) => {
    const shell = startShell(t, [], { env: { FERRY_SERVER: address } });
    await shell.stderrShows(greeting);
    shell.child.stdin!.end('quit\n');
    t.equal((await shell.exited).code, 0);
  });

  t.test('a server that is not listening: ECONNECT, exit 1', async (t) => {
    const shell = startShell(t, ['--server', `127.0.0.1:${await closedPort()}`]);
    shell.child.stdin!.end();
    const result = await shell.exited;
    t.equal(result.code, 1, describe(result));
    t.match(result.stderr, /^ferry: .* \(ECONNECT\)\n$/u, 'one line on stderr');
  });

  t.test('commands piped in at once, as `printf ... | ferry shell` does, all run and EOF ends the shell', async (t) => {
    const result = await piped.exited;
    t.equal(result.timedOut, false, `the shell ends at EOF by itself (${describe(result)})`);
    if (result.timedOut) return;
    t.equal(result.code, 1, 'exit 1: a command failed (as sftp -b)');
    t.match(result.stderr, /^ferry: nope: not found on the server \(ENOENT\)$/mu, 'the first piped command ran');
    t.match(result.stdout, `server:        ferry ${packageVersion}`, 'the second piped command ran');
  });
});
