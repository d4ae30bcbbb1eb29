/**
 * The hashing thread: a plain worker thread (not a piscina pool: piscina's import and its
 * thread's start cost about 100 ms more CPU than a bare `Worker`, which every `ferry` process
 * that hashes more than 64 MiB paid; docs/perf-notes.md). It runs the running SHA-256s of
 * sha256-tasks.ts one request at a time, in the order they came, and answers each with the same
 * id. A SharedArrayBuffer is read in place; an ArrayBuffer is moved here and back.
 */
import { parentPort } from 'node:worker_threads';
import * as tasks from './sha256-tasks.js';
import type { Sha256Reply, Sha256Request, Sha256TaskName } from './tasks.js';

const byName: Record<Sha256TaskName, (task: never) => unknown> = tasks;

/** The ArrayBuffer a result hands back, to be moved rather than copied. */
function movedBack(value: unknown): ArrayBuffer[] {
  const buffer = (value as { buffer?: unknown } | undefined)?.buffer;
  return buffer instanceof ArrayBuffer ? [buffer] : [];
}

async function answer(request: Sha256Request): Promise<void> {
  let reply: Sha256Reply;
  try {
    const value = await byName[request.name](request.task as never);
    reply = { id: request.id, ok: true, value };
  } catch (error) {
    reply = { id: request.id, ok: false, message: error instanceof Error ? error.message : String(error) };
  }
  parentPort!.postMessage(reply, reply.ok ? movedBack(reply.value) : []);
}

// One at a time: a task that awaits (a resumable hash's start) finishes before the next begins.
let turn = Promise.resolve();
parentPort?.on('message', (request: Sha256Request) => {
  turn = turn.then(() => answer(request));
});
