import { once } from 'node:events';
import { type AddressInfo, type Socket, createConnection, createServer } from 'node:net';
import type { Test } from 'tap';

export interface CutProxy {
  port: number;
  /** Bytes forwarded client -> server and server -> client, over all connections. */
  readonly upstreamBytes: number;
  readonly downstreamBytes: number;
  /** Cuts every connection (both sides) once this many more bytes have gone in `direction`. */
  cutAfter(bytes: number, direction: 'up' | 'down'): Promise<void>;
}

/**
 * A TCP proxy on 127.0.0.1 in front of `targetPort` that can cut connections after an exact byte
 * count, as a dropped network link would: both sockets are destroyed mid-stream.
 */
export async function startCutProxy(t: Test, targetPort: number): Promise<CutProxy> {
  const pairs = new Set<[Socket, Socket]>();
  let upstreamBytes = 0;
  let downstreamBytes = 0;
  let cut: { direction: 'up' | 'down'; at: number; done: () => void } | undefined;

  function forward(from: Socket, to: Socket, direction: 'up' | 'down'): void {
    from.on('data', (data: Buffer) => {
      let piece = data;
      const counted = direction === 'up' ? upstreamBytes : downstreamBytes;
      if (cut?.direction === direction && counted + piece.length >= cut.at) {
        piece = piece.subarray(0, cut.at - counted);
        to.write(piece);
        if (direction === 'up') upstreamBytes += piece.length;
        else downstreamBytes += piece.length;
        const { done } = cut;
        cut = undefined;
        for (const [a, b] of pairs) {
          a.destroy();
          b.destroy();
        }
        done();
        return;
      }
      if (direction === 'up') upstreamBytes += piece.length;
      else downstreamBytes += piece.length;
      if (!to.write(piece)) {
        from.pause();
        to.once('drain', () => from.resume());
      }
    });
  }

  const server = createServer((client) => {
    const upstream = createConnection({ host: '127.0.0.1', port: targetPort });
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const close = (): void => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    forward(client, upstream, 'up');
    forward(upstream, client, 'down');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(async () => {
    for (const [a, b] of pairs) {
      a.destroy();
      b.destroy();
    }
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return {
    port: (server.address() as AddressInfo).port,
    get upstreamBytes() {
      return upstreamBytes;
    },
    get downstreamBytes() {
      return downstreamBytes;
    },
    cutAfter(bytes, direction) {
      return new Promise((resolve) => {
        cut = { direction, at: (direction === 'up' ? upstreamBytes : downstreamBytes) + bytes, done: resolve };
      });
    },
  };
}
