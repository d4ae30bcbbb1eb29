// The driver: plays a connection plan against the live server, step by step.
import { encodeControl } from '../../src/protocol/encoder.js';
import { frameHead } from '../helpers/raw-client.js';
import type { Auditor } from './auditor.js';
import { waitMs } from './config.js';
import { FuzzConnection } from './connection.js';
import { applyByteMutation, applyChunkMutation, chunkCountOf, chunkFrame, mutatedRequest } from './frame-builders.js';
import { noteDelete } from './ledger.js';
import { pseudoRandomBytes, samples, sha256Hex } from './material.js';
import { type Action, type ChunkFlaw, type ConnectionPlan, type Fields, type Greeting, helloFields } from './plan.js';
import { show } from './report.js';

/** What the driver plays against. */
export interface DriverTarget {
  port: number;
  /** The connection that watches the server: a burst waits on its round trips to know the server has read the burst. */
  auditor: Pick<Auditor, 'ping'>;
  /** Takes a memory sample now (a burst's cost shows right after the server has read it). */
  sampleMemory(): void;
}

async function greet(connection: FuzzConnection, greeting: Greeting): Promise<void> {
  if (greeting === 'await') {
    const reply = await connection.call(helloFields);
    if (reply === undefined || reply['ok'] !== true)
      connection.problem(`a good hello on a fresh connection was not accepted: ${show(reply)}`);
  } else if (greeting === 'pipelined') {
    await connection.request(helloFields);
  } else if (greeting !== 'none') {
    await connection.send(mutatedRequest(connection.nextMutatedId(), helloFields, greeting.mutation));
  }
}

async function perform(connection: FuzzConnection, step: Action, target: DriverTarget): Promise<void> {
  switch (step.kind) {
    case 'request':
      await connection.request(step.fields, step.split);
      return;
    case 'mutated':
      noteDelete(step.fields);
      await connection.send(mutatedRequest(connection.nextMutatedId(), step.fields, step.mutation), step.split);
      return;
    case 'chunk': {
      const sample = samples[step.sample]!;
      const frame = chunkFrame(step.stream, sample, step.index % (chunkCountOf(sample.size) + 1));
      await connection.send(step.mutation ? applyChunkMutation(frame, step.mutation) : frame, step.split);
      return;
    }
    case 'random': {
      const body = pseudoRandomBytes(step.seed, step.length);
      await connection.send(step.type === null ? body : Buffer.concat([frameHead(body.length + 1, step.type), body]), step.split);
      return;
    }
    case 'flood': {
      const frames = Array.from({ length: step.count }, () => encodeControl({ id: connection.nextFloodId(), ...step.fields }));
      await connection.send(Buffer.concat(frames));
      return;
    }
    case 'burst': {
      // A client that writes many requests in one go, never reads a reply, and vanishes. Whatever
      // the server does with the replies meanwhile shows in the memory sampled right after it
      // has read them (two round trips of the auditor, whose requests it reads after these).
      connection.stall();
      const frames = Array.from({ length: step.count }, () => encodeControl({ id: connection.nextFloodId(), ...step.fields }));
      await connection.send(Buffer.concat(frames));
      await target.auditor.ping();
      await target.auditor.ping();
      target.sampleMemory();
      connection.vanish();
      return;
    }
    case 'upload':
      await upload(connection, step);
      return;
    case 'download': {
      const fields: Fields = { op: 'get', name: step.name };
      if (step.sha256 !== null) fields['sha256'] = step.sha256;
      if (step.fromChunk !== null) fields['fromChunk'] = step.fromChunk;
      const reply = await connection.call(fields);
      const stream = (reply?.['result'] as { stream?: unknown } | undefined)?.stream;
      if (reply?.['ok'] === true && step.readAll && typeof stream === 'number') {
        if ((await connection.waitFor(() => connection.downloadSettled(stream))) === undefined) {
          connection.problem(`the download on stream ${stream} neither completed nor aborted within ${waitMs} ms`);
        }
      }
      return;
    }
    case 'roundTrip':
      await connection.call({ op: 'ping' });
      return;
    case 'stall':
      connection.stall();
      return;
  }
}

/** put, chunks (all in order, or a chosen few with flaws), putEnd with the right or a wrong SHA-256. */
async function upload(connection: FuzzConnection, step: Extract<Action, { kind: 'upload' }>): Promise<void> {
  const sample = samples[step.sample]!;
  const fingerprint = step.fingerprint === 'reference' ? sample.fingerprint : step.fingerprint;
  const put = await connection.call(
    { op: 'put', name: step.name, size: sample.size, fingerprint, ...(step.force ? { force: true } : {}) },
    step.split,
  );
  if (put?.['ok'] !== true) return;
  const stream = (put['result'] as { stream: number }).stream;
  const chunkCount = chunkCountOf(sample.size);
  const plan =
    step.chunks === 'all'
      ? Array.from({ length: chunkCount }, (_, index): { index: number; flaw: ChunkFlaw } => ({ index, flaw: 'none' }))
      : step.chunks;
  let badHashSent = false;
  for (const { index, flaw } of plan) {
    const at = index % (chunkCount + 1);
    if (flaw === 'badHash') badHashSent ||= at < chunkCount;
    const frame = chunkFrame(stream, sample, at, flaw === 'badHash' ? (sample.chunkHashes[at] ?? 0n) ^ 0x5a5an : undefined);
    await connection.send(flaw === 'none' || flaw === 'badHash' ? frame : applyByteMutation(frame, flaw), step.split);
  }
  if (step.end === 'none') return;
  const sha256 = step.end === 'right' ? sample.sha256 : sha256Hex(Buffer.concat([sample.bytes, Buffer.from('x')]));
  if (!step.awaitEnd) {
    await connection.request({ op: 'putEnd', stream, sha256 });
    return;
  }
  const end = await connection.call({ op: 'putEnd', stream, sha256 });
  if (end?.['ok'] !== true) return;
  const file = end['result'] as { name?: unknown; size?: unknown; sha256?: unknown };
  if (step.end === 'wrong') connection.problem(`putEnd accepted a wrong SHA-256 for ${show(step.name)}: ${show(end)}`);
  if (badHashSent) connection.problem(`putEnd succeeded although a chunk with a wrong xxh64 was sent on its stream: ${show(end)}`);
  if (file.sha256 !== sample.sha256 || file.size !== sample.size)
    connection.problem(`putEnd published other content than was sent: ${show(end)}`);
}

/** Opens a connection and plays `plan` on it; resolves once the connection is over and judged. */
export async function runConnection(plan: ConnectionPlan, label: string, target: DriverTarget): Promise<FuzzConnection> {
  const connection = await FuzzConnection.open(target.port, label);
  try {
    await greet(connection, plan.greet);
    for (const step of plan.actions) {
      if (connection.closed || connection.serverClosedFirst || connection.socket.destroyed) break;
      await perform(connection, step, target);
    }
    await connection.finish(plan.ending);
  } catch (error) {
    connection.problem(`the test itself failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  } finally {
    connection.socket.destroy();
  }
  connection.verdict();
  return connection;
}
