import { type Interface, createInterface } from 'node:readline';
import { parse as parseWords } from 'shell-quote';
import { FerryClient } from '../client/client.js';
import { type Output, errorLine } from './output.js';
import { buildProgram, runProgram } from './program.js';
import { hostPort } from './units.js';

const shellCommands = ['list', 'ls', 'upload', 'put', 'download', 'get', 'delete', 'rm', 'stat', 'info', 'log', 'help', 'quit', 'exit'];
/** Commands whose first argument is a remote name: tab completes it from the server's list. */
const remoteNameCommands = new Set(['download', 'get', 'delete', 'rm', 'stat']);

/** Splits a shell line into words, with shell quoting; operators and globs are refused. */
export function splitWords(line: string): string[] {
  return parseWords(line).map((word) => {
    if (typeof word !== 'string') throw new Error(`unsupported shell syntax in: ${line}`);
    return word;
  });
}

/**
 * `ferry shell`: an interactive client on one connection. Each line runs through the same
 * commander program as the one-shot commands; errors are printed and the shell goes on.
 */
export async function runShell(options: {
  host: string;
  port: number;
  input: NodeJS.ReadableStream;
  output: Output;
  terminal: boolean;
}): Promise<number> {
  const client = new FerryClient({ host: options.host, port: options.port, retry: { retries: 5 } });
  let remoteNames: string[] | undefined;
  const refreshNames = (): void => {
    remoteNames = undefined;
  };
  const readline: Interface = createInterface({
    input: options.input,
    output: options.terminal ? process.stdout : undefined,
    terminal: options.terminal,
    historySize: 1000,
    prompt: 'ferry> ',
    completer: (line: string, callback: (error: null, result: [string[], string]) => void) => {
      void complete(line).then(
        (result) => callback(null, result),
        () => callback(null, [[], line]),
      );
    },
  });
  // Start reading before connecting: lines piped in (and the end of input) arrive while we connect.
  const lines = readline[Symbol.asyncIterator]();
  async function complete(line: string): Promise<[string[], string]> {
    const words = line.split(/\s+/u);
    if (words.length <= 1) {
      const hits = shellCommands.filter((command) => command.startsWith(line));
      return [hits, line];
    }
    if (!remoteNameCommands.has(words[0]!)) return [[], line];
    remoteNames ??= (await client.list()).map((file) => file.name);
    const partial = words.at(-1)!;
    return [remoteNames.filter((name) => name.startsWith(partial)), partial];
  }

  try {
    const info = await client.connection();
    options.output.err(
      `connected to ${hostPort(options.host, options.port)} (${info.hello.server}); type help for commands, quit to leave`,
    );
  } catch (error) {
    options.output.err(errorLine(error));
    readline.close();
    return 1;
  }
  if (options.terminal) readline.prompt();
  for await (const line of { [Symbol.asyncIterator]: () => lines }) {
    const trimmed = line.trim();
    if (trimmed === 'quit' || trimmed === 'exit') break;
    if (trimmed !== '') {
      let words: string[] | undefined;
      try {
        words = splitWords(trimmed);
      } catch (error) {
        options.output.err(errorLine(error));
      }
      if (words) {
        const program = buildProgram({ output: options.output, env: {}, shell: { client, onChange: refreshNames } });
        await runProgram(program, words, options.output);
      }
    }
    if (options.terminal) readline.prompt();
  }
  readline.close();
  await client.close().catch(() => undefined); // leaving anyway: a connection that will not close cleanly is dropped
  return 0;
}
