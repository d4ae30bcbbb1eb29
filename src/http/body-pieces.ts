import type { IncomingMessage } from 'node:http';
import { FerryError } from '../protocol/errors.js';

/**
 * What `take` returns for a piece: nothing when it is done with it, or a promise to wait for
 * before the next piece (reading pauses meanwhile).
 */
export type PieceTaken = Promise<void> | undefined;

/**
 * Feeds a request's body to `take` piece by piece, as the pieces arrive. Plain 'data' events:
 * an async iterator costs a few promises per 64 KiB piece, which at hundreds of MiB/s is a
 * measurable share of the main thread's time and of its garbage. Resolves once the body has
 * ended and the last promise `take` returned has settled; rejects with `take`'s failure, the
 * stream's, or ECONNLOST if the connection closes first. After a failure, reading stops
 * (the request stays paused: the answer to it closes the connection).
 */
export function forEachPiece(body: IncomingMessage, take: (piece: Buffer) => PieceTaken): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let waiting: Promise<void> | undefined;
    let ended = false;
    let settled = false;
    const stop = (): void => {
      settled = true;
      body.off('data', onData).off('end', onEnd).off('error', fail).off('close', onClose);
      body.pause();
    };
    const fail = (error: unknown): void => {
      if (settled) return;
      stop();
      reject(error instanceof Error ? error : new Error(String(error)));
    };
    const finish = (): void => {
      if (settled) return;
      stop();
      resolve();
    };
    const onData = (piece: Buffer): void => {
      let taken: PieceTaken;
      try {
        taken = take(piece);
      } catch (error) {
        return fail(error);
      }
      if (!taken) return;
      body.pause();
      waiting = taken;
      taken.then(() => {
        if (waiting === taken) waiting = undefined;
        if (ended) finish();
        else if (!settled) body.resume();
      }, fail);
    };
    const onEnd = (): void => {
      ended = true;
      if (!waiting) finish();
    };
    const onClose = (): void => {
      if (!ended) fail(new FerryError('ECONNLOST', 'the connection closed before the end of the body'));
    };
    body.on('data', onData).on('end', onEnd).on('error', fail).on('close', onClose);
  });
}
