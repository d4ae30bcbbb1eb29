import type { Command } from 'commander';
import { type Output, processOutput } from './output.js';
import { buildProgram, runProgram, shortUsage } from './program.js';
import { addFsckCommand } from './fsck.js';
import { addSessionsCommand } from './sessions.js';
import { addUserCommand } from './user.js';
import { addTrustCommand } from './trust.js';
import { addServeCommand } from './serve.js';
import { type ConnectionFlags, addConnectionOptions, clientOptionsFor } from './client-command.js';

function addShellCommand(program: Command, output: Output, result: { exitCode?: number }): void {
  const command = program.command('shell').description('interactive client: list, upload, download, delete, stat, info, log, help, quit');
  addConnectionOptions(command, process.env)
    .option('--batch', 'stop at the first command that fails, and exit with its status (as sftp -b)')
    .addHelpText(
      'after',
      '\nWith commands piped in, the shell runs them all and exits non-zero if any failed; --batch stops at the first.\nOn a terminal, history is kept in $XDG_STATE_HOME/ferry/history (default ~/.local/state/ferry/history).',
    )
    .action(async (flags: ConnectionFlags & { batch?: boolean }) => {
      const terminal = Boolean(process.stdin.isTTY && process.stdout.isTTY);
      const [{ runShell }, { historyPath }] = await Promise.all([import('./shell.js'), import('./history.js')]);
      result.exitCode = await runShell({
        client: await clientOptionsFor({ output, env: process.env }, flags),
        input: process.stdin,
        output,
        terminal,
        batch: flags.batch ?? false,
        historyFile: historyPath(),
      });
    });
}

/**
 * Exits once everything written to stdout and stderr has been taken by the reader: on a pipe Node
 * writes asynchronously, and exiting at once loses whatever did not fit the pipe's buffer (a
 * `ferry list --json` cut at 64 KiB). A reader that went away (EPIPE) is not waited for.
 */
async function exitWhenFlushed(code: number): Promise<never> {
  const flushed = (stream: NodeJS.WriteStream): Promise<void> =>
    new Promise((resolve) => {
      if (stream.destroyed || stream.writableEnded) return resolve();
      stream.write('', () => resolve());
    });
  await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
  process.exit(code);
}

/** A reader that closed its end early (`ferry list | head`) is not an error of ours. */
function ignoreClosedReader(stream: NodeJS.WriteStream): void {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    stream.destroy();
  });
}

/** Process entry: the one place that calls process.exit. */
export async function main(argv: string[]): Promise<never> {
  ignoreClosedReader(process.stdout);
  ignoreClosedReader(process.stderr);
  const output = processOutput;
  if (argv.length === 0) {
    output.err(shortUsage);
    return exitWhenFlushed(2);
  }
  const program = buildProgram({ output, env: process.env });
  addServeCommand(program, output);
  const commandResult: { exitCode?: number } = {};
  addShellCommand(program, output, commandResult);
  addFsckCommand(program, output, commandResult);
  addSessionsCommand(program, output);
  addUserCommand(program, output);
  addTrustCommand(program, output, process.env);
  const exitCode = await runProgram(program, argv, output);
  return exitWhenFlushed(exitCode !== 0 ? exitCode : (commandResult.exitCode ?? 0));
}
