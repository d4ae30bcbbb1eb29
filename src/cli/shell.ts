import { readdir } from 'node:fs/promises';
import { type Interface, createInterface } from 'node:readline';
import type { Command } from 'commander';
import { parse as parseWords } from 'shell-quote';
import { type ClientOptions, FerryClient } from '../client/client.js';
import { withLoginHint } from './client-command.js';
import { describeAccount } from './login.js';
import { FerryError } from '../protocol/errors.js';
import { type CompletionSources, completeLine, withHome } from './completion.js';
import { historyLines, loadHistory, saveHistory } from './history.js';
import { type Output, errorLine } from './output.js';
import { buildProgram, runProgram } from './program.js';
import { hostPort } from './units.js';

/** Commands whose words are names on the server (Tab completes them from the server's list). */
const remoteNameCommands = new Set(['download', 'get', 'delete', 'rm', 'stat']);
/** Commands whose words are local paths. */
const localPathCommands = new Set(['upload', 'put']);
/** A second Ctrl-C at the prompt within this long leaves the shell. */
const leaveWithinMs = 1000;

/** A glob's last segment as a regular expression: `*` any run of characters, `?` one (neither matches a leading dot). */
function globPattern(segment: string): RegExp {
  const body = [...segment].map((character) =>
    character === '*' ? '[^/]*' : character === '?' ? '[^/]' : character.replace(/[\\^$.|+()[\]{}]/gu, '\\$&'),
  );
  return new RegExp(`^${segment.startsWith('.') ? '' : '(?!\\.)'}${body.join('')}$`, 'u');
}

/**
 * Splits a shell line into words, with shell quoting (operators are refused), and unquoted `*` and
 * `?` in the local paths of `put`/`upload` expanded as a shell would (in the last segment of the
 * path; sorted; a pattern that matches nothing is an error, as with bash's failglob).
 */
export async function expandLine(line: string): Promise<string[]> {
  const parsed = parseWords(line);
  const command = parsed[0];
  const localPaths = typeof command === 'string' && localPathCommands.has(command);
  const words: string[] = [];
  for (const [position, word] of parsed.entries()) {
    if (typeof word === 'string') {
      // A leading ~/ in a local path is the home directory, as a shell has it (quoted or not: the
      // parser does not say which).
      const before = parsed[position - 1];
      const local = (localPaths && before !== '--as' && before !== '--as-dir') || before === '--out';
      words.push(local && position > 0 ? withHome(word) : word);
      continue;
    }
    if (!('op' in word) || word.op !== 'glob') throw new Error(`unsupported shell syntax in: ${line}`);
    if (!localPaths) throw new FerryError('EUSAGE', `wildcards match local files: ${word.pattern} works with put and upload only`);
    const pattern = withHome(word.pattern);
    const slash = pattern.lastIndexOf('/');
    const folder = slash < 0 ? '' : pattern.slice(0, slash + 1);
    if (/[*?]/u.test(folder)) throw new FerryError('EUSAGE', `wildcards only in the last part of a path: ${word.pattern}`);
    const matcher = globPattern(pattern.slice(slash + 1));
    const entries = await readdir(folder || '.').catch(() => [] as string[]);
    const matches = entries.filter((entry) => matcher.test(entry)).sort();
    if (matches.length === 0) throw new FerryError('ENOENT', `no local files match ${word.pattern}`);
    words.push(...matches.map((entry) => folder + entry));
  }
  return words;
}

/** A command's arguments as its usage shows them: `<path>`, `[prefix]`. */
function argumentsOf(command: Command): string {
  return command.registeredArguments.map((argument) => (argument.required ? `<${argument.name()}>` : `[${argument.name()}]`)).join(' ');
}

/** What `help` prints in the shell: its own commands (no process options such as --version), and how to leave. */
export function shellHelp(program: Command, server: string): string {
  const rows = program.commands
    .filter((command) => command.name() !== 'help')
    .map(
      (command) => [[command.name(), ...command.aliases()].join(', ') + ` ${argumentsOf(command)}`.trimEnd(), command.summary()] as const,
    );
  rows.push(['help [command]', "this list, or a command's options"], ['quit, exit', 'leave the shell (also Ctrl-D)']);
  const width = Math.max(...rows.map(([usage]) => usage.length));
  return [
    `Commands at the ferry> prompt (server ${server}):`,
    ...rows.map(([usage, text]) => `  ${usage.padEnd(width)}  ${text}`),
    'Ctrl-C cancels a transfer (run the same command to resume it).',
    'Tab completes commands, options, names on the server and local paths.',
  ].join('\n');
}

export interface ShellOptions {
  /** Where the shell connects, how it trusts the server and logs in, once, for all its commands (see clientOptionsFor). */
  client: ClientOptions;
  input: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (mode: boolean) => unknown };
  output: Output;
  terminal: boolean;
  /** Stop at the first failed command and exit with its status (as `sftp -b` does). */
  batch?: boolean;
  /** Where history is kept between sessions (terminal only); undefined keeps none. */
  historyFile?: string;
}

/**
 * `ferry shell`: an interactive client on one connection. Each line runs through the same
 * commander program as the one-shot commands; errors are printed and the shell goes on. Returns
 * the exit status: 0, or (input not a terminal) the status of the last command that failed.
 */
export async function runShell(options: ShellOptions): Promise<number> {
  const client = new FerryClient(options.client);
  const server = hostPort(options.client.host, options.client.port);
  let remoteNames: string[] | undefined;
  const programFor = (signal: AbortSignal): Command =>
    buildProgram({ output: options.output, env: {}, shell: { client, onChange: () => (remoteNames = undefined), signal } });
  const reference = programFor(new AbortController().signal);
  const commandNamed = (name: string): Command | undefined =>
    reference.commands.find((command) => command.name() === name || command.aliases().includes(name));
  const sources: CompletionSources = {
    commands: [...reference.commands.flatMap((command) => [command.name(), ...command.aliases()]), 'quit', 'exit'].sort(),
    optionsOf: (name) => commandNamed(name)?.options.flatMap((option) => (option.long ? [option.long] : [])),
    argumentKind: (name) => (remoteNameCommands.has(name) ? 'remote' : localPathCommands.has(name) ? 'local' : 'none'),
    remoteNames: async () => (remoteNames ??= (await client.list()).map((file) => file.name)),
  };
  const history = options.terminal && options.historyFile ? await loadHistory(options.historyFile) : [];
  const readline: Interface = createInterface({
    input: options.input,
    output: options.terminal ? process.stdout : undefined,
    terminal: options.terminal,
    history,
    historySize: historyLines,
    removeHistoryDuplicates: true,
    prompt: 'ferry> ',
    completer: (line: string, callback: (error: null, result: [string[], string]) => void) => {
      completeLine(line, sources).then(
        (result) => callback(null, result),
        () => callback(null, [[], line]),
      );
    },
  });
  if (options.terminal && options.historyFile) {
    const file = options.historyFile;
    // One save at a time, in order: lines pasted together must not land out of order.
    let saving = Promise.resolve();
    readline.on('history', (lines: string[]) => {
      const snapshot = [...lines];
      saving = saving
        .then(() => saveHistory(file, snapshot))
        .catch((error: unknown) => options.output.err(`ferry: history not saved: ${(error as Error).message}`));
    });
  }
  let leaving = false;
  let lastInterrupt = 0;
  // Ctrl-C at the prompt (readline has the terminal in raw mode): the line is dropped and a fresh
  // prompt shown, as bash does; on an empty line it says how to leave, and a second one leaves.
  readline.on('SIGINT', () => {
    const now = Date.now();
    const empty = readline.line === '';
    if (empty && now - lastInterrupt < leaveWithinMs) {
      leaving = true;
      process.stdout.write('\n');
      readline.close();
      return;
    }
    lastInterrupt = empty ? now : 0;
    readline.write(null, { ctrl: true, name: 'e' });
    process.stdout.write(empty ? '^C\n(Ctrl-C again or Ctrl-D to leave)\n' : '^C\n');
    readline.write(null, { ctrl: true, name: 'u' }); // empties the line and draws the prompt again, below
  });
  // Ctrl-D at an empty prompt: leave on a fresh line.
  readline.on('close', () => {
    if (options.terminal && !leaving) process.stdout.write('\n');
  });
  // Start reading before connecting: lines piped in (and the end of input) arrive while we connect.
  const lines = readline[Symbol.asyncIterator]();

  try {
    const account = await client.whoami();
    options.output.err(`connected to ${server} as ${describeAccount(account)}`);
    options.output.err('help lists the commands, quit leaves');
  } catch (error) {
    options.output.err(errorLine(withLoginHint(error, server, options.client.credentials !== undefined)));
    readline.close();
    return 1;
  }
  let status = 0;
  if (options.terminal) readline.prompt();
  for await (const line of { [Symbol.asyncIterator]: () => lines }) {
    const trimmed = line.trim();
    if (trimmed === 'quit' || trimmed === 'exit') break;
    let lineStatus = 0;
    if (trimmed === 'help' || trimmed === '?') options.output.out(shellHelp(reference, server));
    else if (trimmed !== '') {
      // What Ctrl-C aborts while this line runs.
      const running = new AbortController();
      lineStatus = await runLine(trimmed, programFor(running.signal), options, readline, () => {
        running.abort(new FerryError('ECANCELED'));
        client.interrupt(new FerryError('ECANCELED'));
      });
      // Commands piped in: Ctrl-C stops the run as a whole (a terminal's goes back to the prompt).
      if (running.signal.aborted && !options.terminal) {
        status = 130;
        break;
      }
    }
    if (lineStatus !== 0) {
      status = lineStatus;
      if (options.batch) break;
    }
    if (options.terminal) readline.prompt();
  }
  leaving = true;
  readline.close();
  await client.close().catch(() => undefined); // leaving anyway: a connection that will not close cleanly is dropped
  return options.terminal && !options.batch ? 0 : status;
}

/**
 * Runs one line; Ctrl-C (SIGINT) meanwhile calls `cancel`, which cuts the connection under
 * whatever the command waits for. On a terminal, the terminal leaves raw mode while it runs, so
 * that Ctrl-C is a signal (readline, paused, would only see it once the command ends).
 */
async function runLine(line: string, program: Command, options: ShellOptions, readline: Interface, cancel: () => void): Promise<number> {
  let words: string[];
  try {
    words = await expandLine(line);
  } catch (error) {
    options.output.err(errorLine(error));
    return error instanceof FerryError ? error.exitCode : 2;
  }
  const rawTerminal = options.terminal && typeof options.input.setRawMode === 'function';
  if (rawTerminal) {
    readline.pause();
    options.input.setRawMode!(false);
  }
  process.on('SIGINT', cancel);
  try {
    return await runProgram(program, words, options.output);
  } finally {
    process.off('SIGINT', cancel);
    if (rawTerminal) {
      options.input.setRawMode!(true);
      readline.resume();
    }
  }
}
