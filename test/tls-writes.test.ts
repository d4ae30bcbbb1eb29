/**
 * writeLargeBuffersAlone (src/tls/large-writes-alone.ts): over a real TLS connection on
 * 127.0.0.1, a corked batch of frames reaches Node's TLS layer with each large buffer in a write
 * of its own (which it encrypts where it lies) and the small ones between them together, and every
 * byte arrives in order. The TLS handle's write methods are only counted.
 */
import { once } from 'node:events';
import { buffer } from 'node:stream/consumers';
import type { AddressInfo } from 'node:net';
import { type TLSSocket, connect, createServer } from 'node:tls';
import t, { type Test } from 'tap';
import { largeTlsWriteBytes, writeLargeBuffersAlone } from '../src/tls/large-writes-alone.js';
import { certificatePair } from './helpers/certificates.js';

/** A connected TLS pair: `sender` on the client side, and everything the server side receives until it ends. */
async function connectedPair(t: Test): Promise<{ sender: TLSSocket; received: Promise<Buffer> }> {
  const { cert, key } = await certificatePair();
  const server = createServer({ cert, key });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  const accepted = once(server, 'secureConnection') as Promise<[TLSSocket]>;
  const sender = connect({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', rejectUnauthorized: false });
  await once(sender, 'secureConnect');
  t.teardown(() => sender.destroy());
  const [receiver] = await accepted;
  return { sender, received: buffer(receiver) };
}

/** The sizes of the buffers of each write the TLS layer is handed, one list per write. */
function recordTlsWrites(socket: TLSSocket): number[][] {
  const writes: number[][] = [];
  type TlsHandle = {
    writev(request: unknown, chunks: unknown[], allBuffers: boolean): unknown;
    writeBuffer(request: unknown, buffer: Buffer): unknown;
  };
  const handle = (socket as unknown as { _handle: TlsHandle })._handle;
  const writev = handle.writev.bind(handle);
  const writeBuffer = handle.writeBuffer.bind(handle);
  handle.writev = (request, chunks, allBuffers) => {
    // Without allBuffers, the list alternates each chunk with its encoding.
    const buffers = allBuffers ? chunks : chunks.filter((_, index) => index % 2 === 0);
    writes.push(buffers.map((chunk) => (chunk as Buffer).length));
    return writev(request, chunks, allBuffers);
  };
  handle.writeBuffer = (request, buffer) => {
    writes.push([buffer.length]);
    return writeBuffer(request, buffer);
  };
  return writes;
}

t.test('a batch of writes reaches TLS with each large buffer alone and the small ones together, every byte in order', async (t) => {
  const { sender, received } = await connectedPair(t);
  writeLargeBuffersAlone(sender);
  const writes = recordTlsWrites(sender);
  const large = largeTlsWriteBytes;
  // Two chunk frames as a connection sends them in one tick: head, payload, head, payload, a control frame.
  const frames = [40, 4 * large, 40, 2 * large, 30, 20].map((length, index) => Buffer.alloc(length, index + 1));
  sender.cork(); // as TickWrites does for the frames of one tick
  const written = frames.map(
    (frame) => new Promise<void>((resolve, reject) => sender.write(frame, (error) => (error ? reject(error) : resolve()))),
  );
  sender.uncork();
  await Promise.all(written);
  sender.end();

  t.same(Buffer.compare(await received, Buffer.concat(frames)), 0, 'every byte arrives, in order');
  t.same(
    writes.flat(),
    frames.map((frame) => frame.length),
    'each buffer is written once',
  );
  const mixed = writes.filter((sizes) => sizes.length > 1 && sizes.some((size) => size >= large));
  t.same(mixed, [], 'no large buffer shares a write');
  t.ok(
    writes.some((sizes) => sizes.length > 1),
    'small buffers still share writes',
  );
});
