/**
 * TickWrites (src/tick-writes.ts): the frames a connection sends in one tick reach the kernel in
 * one write, every byte arrives, and an `end()` in the same tick still sends them all. A real
 * TCP connection on 127.0.0.1; the socket's own write hooks are only counted.
 */
import { once } from 'node:events';
import { buffer } from 'node:stream/consumers';
import { type AddressInfo, type Socket, connect, createServer } from 'node:net';
import t, { type Test } from 'tap';
import { TickWrites } from '../src/tick-writes.js';

/** A connected pair: `sender` on the client side, and everything the server side receives until it ends. */
async function connectedPair(t: Test): Promise<{ sender: Socket; received: Promise<Buffer> }> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const sender = connect((server.address() as AddressInfo).port, '127.0.0.1');
  await once(sender, 'connect');
  t.teardown(() => sender.destroy());
  const [receiver] = await accepted;
  return { sender, received: buffer(receiver) };
}

/** Counts the calls that hand the socket's buffered writes to the kernel. */
function countKernelWrites(socket: Socket): { calls: number } {
  const count = { calls: 0 };
  const internals = socket as unknown as Record<'_write' | '_writev', (...args: unknown[]) => unknown>;
  for (const hook of ['_write', '_writev'] as const) {
    const original = internals[hook].bind(socket);
    internals[hook] = (...args: unknown[]) => {
      count.calls += 1;
      return original(...args);
    };
  }
  return count;
}

t.test("one tick's frames leave in one write; a later tick's leave too; end() in the tick sends everything", async (t) => {
  const { sender, received } = await connectedPair(t);
  const kernelWrites = countKernelWrites(sender);
  const gathering = new TickWrites(sender);
  const frames = ['first frame;', 'second frame;', 'third frame;'].map((text) => Buffer.from(text));

  for (const frame of frames) {
    gathering.gather();
    sender.write(frame);
  }
  t.equal(kernelWrites.calls, 0, 'nothing is written during the tick');
  await new Promise<void>((resolve) => setImmediate(resolve));
  t.equal(kernelWrites.calls, 1, 'the three frames went to the kernel in one write');

  gathering.gather();
  sender.write(Buffer.from('a later tick;'));
  await new Promise<void>((resolve) => setImmediate(resolve));
  t.equal(kernelWrites.calls, 2, 'a later tick gathers again, and sends');

  gathering.gather();
  sender.write(Buffer.from('last, then end'));
  sender.end();
  t.equal((await received).toString(), 'first frame;second frame;third frame;a later tick;last, then end', 'every byte, in order');
});
