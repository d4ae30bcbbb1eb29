import type { Command } from 'commander';
import { type Output, processOutput } from './output.js';
import { buildProgram, runProgram } from './program.js';
import { addFsckCommand } from './fsck.js';
import { addServeCommand } from './serve.js';
import { runShell } from './shell.js';
import { parseServerAddress } from './units.js';

function addShellCommand(program: Command, output: Output, result: { exitCode?: number }): void {
  program
    .command('shell')
    .description('interactive client: list, upload, download, delete, stat, info, log, help, quit')
    .option('--server <host:port>', 'server to talk to', process.env['FERRY_SERVER'] ?? '127.0.0.1:8888')
    .action(async (flags: { server: string }) => {
      result.exitCode = await runShell({ ...parseServerAddress(flags.server), input: process.stdin, output, terminal: Boolean(process.stdin.isTTY) });
    });
}

/** Process entry: the one place that calls process.exit. */
export async function main(argv: string[]): Promise<never> {
  const output = processOutput;
  const program = buildProgram({ output, env: process.env });
  addServeCommand(program, output);
  const commandResult: { exitCode?: number } = {};
  addShellCommand(program, output, commandResult);
  addFsckCommand(program, output, commandResult);
  const exitCode = await runProgram(program, argv, output);
  process.exit(exitCode !== 0 ? exitCode : (commandResult.exitCode ?? 0));
}
