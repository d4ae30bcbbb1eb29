import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

/** Lines of shell history kept from one `ferry shell` to the next. */
export const historyLines = 1000;

/** `$XDG_STATE_HOME/ferry/history`, or `~/.local/state/ferry/history` (the XDG default). */
export function historyPath(env: NodeJS.ProcessEnv = process.env): string {
  const stateHome = env['XDG_STATE_HOME'] || join(homedir(), '.local', 'state');
  return join(stateHome, 'ferry', 'history');
}

/** The saved history, newest first (as readline takes it); empty if there is none or it cannot be read. */
export async function loadHistory(path: string): Promise<string[]> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .slice(-historyLines)
    .reverse();
}

/** Saves `history` (newest first, as readline keeps it), at most `historyLines`, readable by its owner only. */
export async function saveHistory(path: string, history: readonly string[]): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const lines = history.slice(0, historyLines).reverse();
  // Written beside it and renamed over it: a shell that stops mid-write leaves the old history whole.
  const next = `${path}.${process.pid}.tmp`;
  await writeFile(next, lines.map((line) => line + '\n').join(''), { mode: 0o600 });
  await chmod(next, 0o600); // the mode is the owner's only, whatever the umask
  await rename(next, path);
}
