/**
 * A real pseudo-terminal for tests of what people see: the command runs in a tmux session of a
 * given size (on a tmux server of its own, on a socket in a temporary directory), keys are sent
 * to it, and the screen is read back as tmux renders it. Every screen a test asserts on can be
 * saved under `artifacts/screens/` (git-ignored) for a person to look at.
 */
import { loginEnv, portOfArgs } from './accounts.js';
import { execFile, execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { quote } from 'shell-quote';
import type { Test } from 'tap';
import { childEnv } from './cli.js';
import { ferryBin } from './server-process.js';
import { tempDir } from './temp-dir.js';

const run = promisify(execFile);
const screensDir = new URL('../../artifacts/screens/', import.meta.url);
/** The whole session (the command and the pause after it for the last screen) ends by itself after this. */
const sessionLimitSeconds = 120;
/** Only a guard against a hang: a loaded CI machine runs a whole CLI transfer well within it. */
const defaultWaitMs = 60_000;

function tmuxInstalled(): boolean {
  try {
    execFileSync('tmux', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Options for a test that needs tmux: on a machine without it the test is skipped, saying how to
 * get it (so `npm install && npm test` holds on a fresh machine); in CI (`CI` set) it always runs,
 * and fails there if tmux is missing (`.ci/run` installs it).
 */
export const needsTmux: { skip: string | false } = {
  skip: tmuxInstalled() || process.env['CI'] ? false : 'tmux is not installed (apt-get install tmux): terminal tests skipped',
};

export interface TerminalOptions {
  columns?: number;
  rows?: number;
  cwd?: string;
  env?: Record<string, string>;
  /** Sends the command's stdout to this file (stderr stays on the terminal). */
  stdoutTo?: string;
}

export class Terminal {
  readonly #socket: string;
  readonly #t: Test;

  private constructor(t: Test, socket: string) {
    this.#t = t;
    this.#socket = socket;
  }

  /**
   * Starts `ferry ...args` in a terminal of `columns` x `rows`. When it ends, the terminal shows
   * `[exit N]` below its output and stays for a while so the last screen can be read.
   */
  static async ferry(t: Test, args: string[], options: TerminalOptions = {}): Promise<Terminal> {
    const socket = join(tempDir(t, 'ferry-tty'), 'tmux.sock');
    // The shell outlives a Ctrl-C meant for the command (a trap, not an ignore: the command gets
    // the default back), to print its exit status. The whole session is bounded by `timeout`, in
    // the terminal's foreground process group (--foreground) so that Ctrl-C reaches the command;
    // when it ends, the terminal hangs up on whatever is left.
    const redirect = options.stdoutTo === undefined ? '' : ` > ${quote([options.stdoutTo])}`;
    const command = `trap : INT; ${quote([process.execPath, ferryBin, ...args])}${redirect}; printf '[exit %d]\\n' $?; sleep 20`;
    const terminal = new Terminal(t, socket);
    t.teardown(() => terminal.#tmux('kill-server').catch(() => undefined)); // gone already if the session ended
    await run(
      'tmux',
      [
        '-S',
        socket,
        '-f',
        '/dev/null',
        'new-session',
        '-d',
        '-x',
        String(options.columns ?? 80),
        '-y',
        String(options.rows ?? 24),
        '-c',
        options.cwd ?? process.cwd(),
        // No --kill-after: timeout arms it on any signal it passes on, Ctrl-C's SIGINT included.
        `timeout --foreground ${sessionLimitSeconds} sh -c ${quote([command])}`,
      ],
      { env: childEnv({ TERM: 'xterm-256color', ...loginEnv(portOfArgs(args, options.env)), ...options.env }) },
    );
    return terminal;
  }

  /**
   * The screen as lines of text: a line the terminal wrapped is joined back into one (so a line
   * longer than the width shows as such), trailing blanks trimmed, empty rows at the bottom dropped.
   */
  async screen(): Promise<string[]> {
    const { stdout } = await this.#tmux('capture-pane', '-p', '-J');
    const rows = stdout.split('\n').map((row) => row.trimEnd());
    while (rows.length > 0 && rows.at(-1) === '') rows.pop();
    return rows;
  }

  /** Waits until the screen's text matches (polling what tmux renders); fails the wait with the screen it saw last. */
  async waitFor(pattern: RegExp, timeoutMs = defaultWaitMs): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const rows = await this.screen();
      if (pattern.test(rows.join('\n'))) return rows;
      if (Date.now() > deadline) throw new Error(`the screen never showed ${pattern}; it shows:\n${rows.join('\n')}`);
      await sleep(50); // polling the rendered screen: tmux has no event for "the screen changed"
    }
  }

  /** Named keys as tmux spells them: 'Enter', 'C-c', 'C-d', 'Tab', 'Up'. */
  async keys(...keys: string[]): Promise<void> {
    await this.#tmux('send-keys', ...keys);
  }

  /** Text typed as it is (sent apart from any key, so readline does not take it for a paste). */
  async type(text: string): Promise<void> {
    await this.#tmux('send-keys', '-l', text);
  }

  async resize(columns: number, rows = 24): Promise<void> {
    await this.#tmux('resize-window', '-x', String(columns), '-y', String(rows));
  }

  /** The exit status the command ended with, once it has. */
  async exitCode(timeoutMs = defaultWaitMs): Promise<number> {
    const rows = await this.waitFor(/^\[exit \d+\]$/mu, timeoutMs);
    return Number(/^\[exit (\d+)\]$/mu.exec(rows.join('\n'))![1]);
  }

  /** Saves the screen as `artifacts/screens/<name>.txt`; returns its rows. */
  async save(name: string): Promise<string[]> {
    const rows = await this.screen();
    await mkdir(screensDir, { recursive: true });
    await writeFile(new URL(`${name}.txt`, screensDir), rows.join('\n') + '\n');
    this.#t.comment(`screen ${name}:\n${rows.join('\n')}`);
    return rows;
  }

  #tmux(...args: string[]): Promise<{ stdout: string }> {
    return run('tmux', ['-S', this.#socket, ...args]);
  }
}
