import type { CliContext } from './client-command.js';
import { showCursor } from './transfer-display.js';

/**
 * What cancels a batch of transfers: the shell's Ctrl-C, or for a one-shot command the first
 * SIGINT (a transfer then says how to resume); a second SIGINT ends the process at once, with the
 * cursor a progress line hid shown again. `dispose` takes the handlers off when the batch ends.
 */
export function interruptSignal(context: CliContext): { signal: AbortSignal; dispose: () => void } {
  if (context.shell) return { signal: context.shell.signal, dispose: () => {} };
  const handlers: (() => void)[] = [];
  const interrupts = new AbortController();
  const forced = (): void => {
    showCursor();
    process.exit(130);
  };
  const first = (): void => {
    interrupts.abort();
    handlers.push(forced);
    process.once('SIGINT', forced);
  };
  handlers.push(first);
  process.once('SIGINT', first);
  return {
    signal: interrupts.signal,
    dispose: () => {
      for (const handler of handlers) process.off('SIGINT', handler);
    },
  };
}
