import cliProgress from 'cli-progress';
import type { ProgressListener } from '../client/progress.js';
import { formatBytes } from './units.js';

/**
 * A progress bar on `stream` (stderr: bytes, rate, ETA) when it is a terminal and output is not
 * JSON. Returns undefined listeners otherwise, so scripts see nothing.
 */
export function progressBar(
  enabled: boolean,
  stream: NodeJS.WritableStream & { isTTY?: boolean } = process.stderr,
): { onProgress: ProgressListener | undefined; stop(): void } {
  if (!enabled || !stream.isTTY) return { onProgress: undefined, stop() {} };
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: '{name} [{bar}] {percentage}% | {done} of {totalText} | {rate}/s | ETA {eta_formatted}',
      hideCursor: true,
      etaBuffer: 50,
      fps: 10,
    },
    cliProgress.Presets.shades_classic,
  );
  const started = Date.now();
  let running = false;
  return {
    onProgress(progress) {
      const seconds = Math.max((Date.now() - started) / 1000, 0.001);
      const payload = {
        name: progress.name,
        done: formatBytes(progress.done),
        totalText: formatBytes(progress.total),
        rate: formatBytes(progress.transferred / seconds),
      };
      if (!running) {
        bar.start(Math.max(progress.total, 1), progress.done, payload);
        running = true;
      } else bar.update(progress.done, payload);
    },
    stop() {
      if (running) bar.stop();
    },
  };
}
