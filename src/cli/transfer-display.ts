import { clearScreenDown, cursorTo, moveCursor } from 'node:readline';
import cliProgress from 'cli-progress';
import type { TransferProgress, TransferStart } from '../client/progress.js';
import { displayWidth, percentOf, progressLine } from './progress-line.js';
import { formatBytes, formatDuration } from './units.js';
import type { RetryOptions } from '../client/retry.js';

type Stream = NodeJS.WritableStream & {
  isTTY?: boolean;
  columns?: number;
  on?(event: 'resize', listener: () => void): unknown;
  off?(event: 'resize', listener: () => void): unknown;
};

/** Shows the terminal's cursor again (a live progress line hides it), for a process about to end abruptly. */
export function showCursor(stream: Stream = process.stderr): void {
  if (stream.isTTY) stream.write('\x1b[?25h');
}

/** The rate is measured over this much recent time, so it follows the link rather than the run's average. */
const rateWindowMs = 5000;

/**
 * Bytes per second over the last few seconds, from samples of a growing byte count, as of now: a
 * transfer that stalls shows its rate falling to 0 as time passes, even though no sample comes
 * (a rate measured only between samples stayed at its last value, or unknown for good when the
 * first burst filled the socket buffers within 200 ms).
 */
export class RateMeter {
  readonly #samples: { at: number; bytes: number }[] = [];

  add(bytes: number, at = Date.now()): void {
    this.#samples.push({ at, bytes });
    this.#forget(at);
  }

  /** Forgets samples that ended before the window: the last one before it stays, as its start. */
  #forget(now: number): void {
    while (this.#samples.length > 1 && now - this.#samples[1]!.at >= rateWindowMs) this.#samples.shift();
  }

  /** Undefined until 200 ms after the first sample. */
  rate(now = Date.now()): number | undefined {
    this.#forget(now);
    const first = this.#samples[0];
    const last = this.#samples.at(-1);
    if (!first || !last || now - first.at < 200) return undefined;
    return ((last.bytes - first.bytes) * 1000) / (now - first.at);
  }
}

/** The average rate of a whole run: bytes moved since `startedAt`. */
function averageRate(bytes: number, startedAt: number, now = Date.now()): number {
  return (bytes * 1000) / Math.max(now - startedAt, 1);
}

/**
 * What a transfer shows on the terminal: a progress line on stderr that fits the terminal's width
 * (and follows resizes), and notices (resuming, reconnecting) printed above it without tearing
 * it. Off a terminal there is no bar; notices are plain lines on stderr.
 */
export class TransferDisplay {
  readonly #stream: Stream;
  readonly #live: boolean;
  #bars: cliProgress.MultiBar | undefined;
  #bar: cliProgress.SingleBar | undefined;
  readonly #rate = new RateMeter();
  readonly #startedAt = Date.now();
  /** Set once the transfer is over: the last line shows the whole run's average rate. */
  #finished = false;
  #latest: (TransferProgress & { counter?: string }) | undefined;
  /** Width of the line last drawn, to clean up after a resize. */
  #drawnWidth = 0;
  readonly #onResize = (): void => this.#resized();

  /** Whether a resume is announced: always on a terminal; off one, not for --json (its result says `resumed`). */
  readonly #announceResume: boolean;

  constructor(stream: Stream = process.stderr, options: { json?: boolean } = {}) {
    this.#stream = stream;
    this.#live = Boolean(stream.isTTY);
    this.#announceResume = this.#live || !options.json;
  }

  /** Whether an attempt got as far as starting (the server answered): a rerun has something to resume. */
  began = false;

  /** An attempt begins; a resume says where from, before the bar starts. */
  readonly onStart = (start: TransferStart): void => {
    this.began = true;
    if (start.from <= 0 || start.total === undefined || !this.#announceResume) return;
    this.notice(`resuming ${start.name} from ${formatBytes(start.from)} (${percentOf(start.from, start.total)})`);
  };

  /** `counter`: shown whole before the name (see `progressLine`). */
  readonly onProgress = (progress: TransferProgress & { counter?: string }): void => {
    this.#latest = progress;
    this.#rate.add(progress.transferred);
    if (!this.#live) return;
    if (!this.#bar) {
      this.#bars = new cliProgress.MultiBar({
        stream: this.#stream,
        hideCursor: true,
        fps: 10,
        // Keep the terminal's own wrapping: a notice longer than the width wraps instead of being
        // cut (the progress line itself is drawn narrower than the width).
        linewrap: true,
        format: () => this.#line(),
      });
      this.#bar = this.#bars.create(Math.max(progress.total ?? progress.done, 1), progress.done);
      this.#stream.on?.('resize', this.#onResize);
    } else this.#bar.update(progress.done);
  };

  /** A line for the user: above a live bar, else on its own. */
  notice(text: string): void {
    if (this.#bars) {
      this.#bars.log(`${text}\n`);
      this.#bars.update();
    } else this.#stream.write(`${text}\n`);
  }

  /** Leaves the last state of the bar on screen and the cursor below it. */
  stop(): void {
    if (!this.#bars) return;
    this.#finished = true;
    this.#bars.update();
    this.#bars.stop();
    this.#stream.off?.('resize', this.#onResize);
    this.#bars = undefined;
    this.#bar = undefined;
  }

  #line(): string {
    const progress = this.#latest;
    if (!progress) return '';
    const rate = this.#finished ? averageRate(progress.transferred, this.#startedAt) : this.#rate.rate();
    const { name, counter, done, total } = progress;
    const line = progressLine({ name, counter, done, total, rate }, this.#columns());
    this.#drawnWidth = displayWidth(line);
    return line;
  }

  #columns(): number {
    return this.#stream.columns ?? 80;
  }

  /**
   * The terminal got narrower or wider. A terminal that reflows (tmux, VTE, iTerm2, kitty) has
   * split the line drawn for the old width over several rows, with the cursor on the last: go
   * back to the first, clear them, and draw the line for the new width there.
   */
  #resized(): void {
    if (!this.#bars) return;
    const rows = Math.ceil(this.#drawnWidth / Math.max(1, this.#columns()));
    if (rows > 1) moveCursor(this.#stream, 0, -(rows - 1));
    cursorTo(this.#stream, 0);
    clearScreenDown(this.#stream);
    this.#bars.update();
  }
}

/** A transfer's --retries, each reconnect announced on `display` (above its progress line). */
export function retriesShownOn(display: TransferDisplay, retries: number): Pick<RetryOptions, 'retries' | 'onRetry'> {
  return {
    retries,
    onRetry: ({ attempt, retries: allowed, error, delayMs }) =>
      display.notice(
        `ferry: ${error.message}, reconnecting ${delayMs > 0 ? `in ${formatDuration(delayMs)}` : 'now'} (retry ${attempt - 1} of ${allowed})`,
      ),
  };
}
