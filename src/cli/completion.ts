import { readdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { quote } from 'shell-quote';

/** The words of a shell line typed so far: those complete, and the one being typed (unquoted) with where it starts. */
export interface TypedLine {
  words: string[];
  partial: string;
  /** Index in the line where the word being typed starts (its opening quote included). */
  partialStart: number;
}

/**
 * Splits a line as the shell's parser (shell-quote) will, tolerating an unclosed quote in the
 * last word: 'single', "double" and backslash escapes (outside single quotes).
 */
export function typedLine(line: string): TypedLine {
  const words: string[] = [];
  let current = '';
  let inWord = false;
  let start = line.length;
  let quote: "'" | '"' | undefined;
  for (let index = 0; index < line.length; index += 1) {
    const character = line[index]!;
    if (!inWord && /\s/u.test(character)) continue;
    if (!inWord) {
      inWord = true;
      start = index;
    }
    if (quote) {
      if (character === quote) quote = undefined;
      else if (character === '\\' && quote === '"' && index + 1 < line.length) current += line[++index];
      else current += character;
    } else if (character === "'" || character === '"') quote = character;
    else if (character === '\\' && index + 1 < line.length) current += line[++index];
    else if (/\s/u.test(character)) {
      words.push(current);
      current = '';
      inWord = false;
      start = line.length;
    } else current += character;
  }
  return inWord ? { words, partial: current, partialStart: start } : { words, partial: '', partialStart: line.length };
}

/**
 * A word as the shell's parser reads it back as one plain word: as it is when it can be, quoted
 * otherwise ("my file" -> 'my file'). A `*` or `?` is put in single quotes, never escaped with a
 * backslash: shell-quote reads `a\*b` back as a wildcard. A leading `~/` stays as it is (the shell
 * expands it).
 */
export function quoteWord(word: string): string {
  if (/^[\w.,:@%+=/~-]+$/u.test(word) && !word.slice(1).includes('~')) return word;
  if (/[*?]/u.test(word)) return `'${word.replaceAll("'", "'\\''")}'`;
  return quote([word]);
}

/** `~/x` as `$HOME/x`, as a shell has it; anything else as it is. */
export function withHome(path: string): string {
  return path === '~' || path.startsWith('~/') ? homedir() + path.slice(1) : path;
}

/** Local paths starting with `partial`: directories end in `/` (so Tab goes on into them). */
export async function localPaths(partial: string): Promise<string[]> {
  const slash = partial.lastIndexOf('/');
  const folder = slash < 0 ? '' : partial.slice(0, slash + 1);
  const start = partial.slice(slash + 1);
  const where = withHome(folder) || '.';
  const entries = await readdir(where, { withFileTypes: true }).catch(() => []);
  return entries
    .filter((entry) => entry.name.startsWith(start) && (start.startsWith('.') || !entry.name.startsWith('.')))
    .map((entry) => folder + entry.name + (entry.isDirectory() ? '/' : ''))
    .sort();
}

/** What completes a word of a command line, by its position. */
export interface CompletionSources {
  commands: string[];
  /** The long options of a command (`--force`), or undefined if there is no such command. */
  optionsOf(command: string): string[] | undefined;
  /** Which kind of argument a command's positional words are. */
  argumentKind(command: string): 'remote' | 'local' | 'none';
  remoteNames(): Promise<string[]>;
}

/** Options whose value is a local path. */
const localPathOptions = new Set(['--out']);

/**
 * Completions for readline: the candidates, quoted so the shell's parser reads each back as one
 * word, and the part of the line they replace.
 */
export async function completeLine(line: string, sources: CompletionSources): Promise<[string[], string]> {
  const typed = typedLine(line);
  const replaced = line.slice(typed.partialStart);
  const [command, ...rest] = typed.words;
  let candidates: string[];
  if (command === undefined) candidates = sources.commands.filter((name) => name.startsWith(typed.partial));
  else if (typed.partial.startsWith('-')) candidates = (sources.optionsOf(command) ?? []).filter((name) => name.startsWith(typed.partial));
  else if (localPathOptions.has(rest.at(-1) ?? '')) candidates = await localPaths(typed.partial);
  else {
    const kind = sources.argumentKind(command);
    if (kind === 'local') candidates = await localPaths(typed.partial);
    else if (kind === 'remote') candidates = (await sources.remoteNames()).filter((name) => name.startsWith(typed.partial));
    else candidates = [];
  }
  // One candidate gets a space after it (the word is done), unless it is a directory to go into.
  const quoted = candidates.map((candidate) => quoteWord(candidate));
  if (quoted.length === 1 && !quoted[0]!.endsWith('/')) quoted[0] += ' ';
  return [quoted, replaced];
}
