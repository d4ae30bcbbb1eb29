import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { FerryError } from '../protocol/errors.js';

/** The first line of standard input (`--password-stdin`), without its line ending. */
export async function firstLineOfStdin(): Promise<string> {
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
  try {
    const line = await Promise.race([once(lines, 'line').then(([text]) => text as string), once(lines, 'close').then(() => undefined)]);
    if (line === undefined) throw new FerryError('EUSAGE', '--password-stdin: standard input ended before a line');
    return line;
  } finally {
    lines.close();
  }
}

/** Asks on the terminal without echo (on stderr, so stdout stays the command's). */
export async function promptHidden(prompt: string): Promise<string> {
  if (!process.stdin.isTTY) {
    throw new FerryError(
      'EUSAGE',
      'no terminal to ask for the password on: use --password-stdin (scripts can also set FERRY_USER and FERRY_PASSWORD)',
    );
  }
  const { read } = await import('read'); // only a terminal prompt needs it: not loaded at every start
  const answer = await read({ prompt, silent: true, replace: '', output: process.stderr });
  // Nothing was echoed, the Enter included: end the prompt's line so what follows starts on its own.
  process.stderr.write('\n');
  return answer;
}

/** A password: one line of standard input, or asked on the terminal (twice, when `confirm`, and they must match). */
export async function readPassword(options: { stdin?: boolean; prompt: string; confirm?: boolean }): Promise<string> {
  if (options.stdin) return firstLineOfStdin();
  const password = await promptHidden(options.prompt);
  if (options.confirm && (await promptHidden('again: ')) !== password) throw new FerryError('EUSAGE', 'the two passwords differ');
  return password;
}
