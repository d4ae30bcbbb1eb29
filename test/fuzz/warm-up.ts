// Before the fuzz: an ordinary client is served, the transfer log is full, and memory has a baseline.
import type { Test } from 'tap';
import { encodeControl } from '../../src/protocol/encoder.js';
import { chunkSize } from './config.js';
import { FuzzConnection } from './connection.js';
import { type MemoryRecord, gc, mib, settledMemory } from './memory.js';
import { helloFields } from './plan.js';
import { type ServerUnderTest, roundTrip } from './server-under-test.js';

/** Serves an ordinary client and fills the transfer log, then records the memory baseline in `memory`. */
export async function warmUp(t: Test, target: ServerUnderTest, memory: MemoryRecord): Promise<void> {
  t.ok(await roundTrip(target, 'warmup/file.bin', 3 * chunkSize + 17, 1), 'upload + download are exact');
  // A server that has been up for a while has a full transfer log, so a `log` reply is big (about
  // 170 KB for 1000 entries), as it would be in production: what a backlog of replies costs shows.
  t.ok(await roundTrip(target, 'warmup/empty.bin', 0, 4), 'an empty file too');
  const filler = await FuzzConnection.open(target.port, 'log filler');
  await filler.call(helloFields);
  await filler.send(
    Buffer.concat(Array.from({ length: 1000 }, () => encodeControl({ id: filler.nextFloodId(), op: 'get', name: 'warmup/empty.bin' }))),
  );
  const log = await filler.call({ op: 'log', limit: 1000 });
  filler.socket.destroy();
  t.same(filler.problems, [], '1000 downloads of it are answered well');
  t.ok(log?.['ok'] === true, 'the transfer log is full');
  memory.baseline = settledMemory();
  t.comment(
    `baseline: rss ${mib(memory.baseline.rss)}, heapUsed ${mib(memory.baseline.heapUsed)}, external ${mib(memory.baseline.external)}, arrayBuffers ${mib(memory.baseline.arrayBuffers)}${gc ? '' : ' (no gc() available)'}`,
  );
}
