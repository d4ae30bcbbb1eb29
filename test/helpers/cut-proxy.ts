import { rememberServer, serverAt } from './accounts.js';
import { once } from 'node:events';
import { type AddressInfo, type Socket, createConnection, createServer } from 'node:net';
import type { Test } from 'tap';

export interface CutProxy {
  port: number;
  /** Bytes forwarded client -> server and server -> client, over all connections. */
  readonly upstreamBytes: number;
  readonly downstreamBytes: number;
  /** Connections accepted so far. */
  readonly connections: number;
  /** Cuts every connection (both sides) once this many more bytes have gone in `direction`. */
  cutAfter(bytes: number, direction: 'up' | 'down'): Promise<void>;
  /**
   * Once this many more bytes have gone in `direction`, stops forwarding on every open connection
   * without closing it, as a dead NAT entry or a frozen peer would. Later connections work.
   */
  freezeAfter(bytes: number, direction: 'up' | 'down'): Promise<void>;
  /** Cuts only the `number`th connection accepted (from 1) once it has carried `bytes` in `direction` (default up); others go on. */
  cutConnectionAfter(number: number, bytes: number, direction?: 'up' | 'down'): Promise<void>;
  /**
   * Flips every bit of the byte that comes `bytes` more bytes from now in `direction`, once, as a
   * faulty link or router would (in clear text: under TLS it would only break the TLS record).
   */
  corruptAfter(bytes: number, direction: 'up' | 'down'): Promise<void>;
}

/**
 * A TCP proxy on 127.0.0.1 in front of `targetPort` that can cut connections after an exact byte
 * count, as a dropped network link would (both sockets are destroyed mid-stream), or freeze them
 * there, as a dead link that never says so would. With `link.bytesPerSecond` it also carries no
 * more than that each way, as a slow link would.
 */
export async function startCutProxy(t: Test, targetPort: number, link: { bytesPerSecond?: number } = {}): Promise<CutProxy> {
  const pairs = new Set<[Socket, Socket]>();
  let upstreamBytes = 0;
  let downstreamBytes = 0;
  let connections = 0;
  let cut: { direction: 'up' | 'down'; at: number; freeze: boolean; done: () => void } | undefined;
  const frozen = new WeakSet<Socket>();
  let cutOne: { number: number; at: number; direction: 'up' | 'down'; done: () => void } | undefined;
  let corrupt: { direction: 'up' | 'down'; at: number; done: () => void } | undefined;

  function forward(from: Socket, to: Socket, direction: 'up' | 'down', number: number): void {
    let ownBytes = 0;
    from.on('data', (data: Buffer) => {
      if (frozen.has(from)) return;
      let piece = data;
      if (cutOne?.direction === direction && cutOne.number === number && ownBytes + piece.length >= cutOne.at) {
        to.write(piece.subarray(0, cutOne.at - ownBytes));
        const { done } = cutOne;
        cutOne = undefined;
        from.destroy();
        to.destroy();
        done();
        return;
      }
      ownBytes += piece.length;
      const counted = direction === 'up' ? upstreamBytes : downstreamBytes;
      if (corrupt?.direction === direction && counted + piece.length > corrupt.at) {
        piece = Buffer.from(piece); // a copy: the socket's buffer is not ours to change
        const at = corrupt.at - counted;
        piece.writeUInt8(piece.readUInt8(at) ^ 0xff, at);
        corrupt.done();
        corrupt = undefined;
      }
      if (cut?.direction === direction && counted + piece.length >= cut.at) {
        piece = piece.subarray(0, cut.at - counted);
        to.write(piece);
        if (direction === 'up') upstreamBytes += piece.length;
        else downstreamBytes += piece.length;
        const { done, freeze } = cut;
        cut = undefined;
        for (const pair of pairs) {
          for (const socket of pair) {
            if (freeze) {
              frozen.add(socket);
              socket.pause();
            } else {
              socket.destroy();
            }
          }
        }
        done();
        return;
      }
      if (direction === 'up') upstreamBytes += piece.length;
      else downstreamBytes += piece.length;
      if (link.bytesPerSecond !== undefined) {
        // A slow link: nothing more is read from this side until these bytes would have crossed it.
        from.pause();
        setTimeout(
          () => {
            if (!frozen.has(from)) from.resume();
          },
          (piece.length * 1000) / link.bytesPerSecond,
        );
      }
      if (!to.write(piece)) {
        from.pause();
        to.once('drain', () => {
          if (!frozen.has(from)) from.resume();
        });
      }
    });
  }

  const server = createServer((client) => {
    connections += 1;
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
    forward(client, upstream, 'up', connections);
    forward(upstream, client, 'down', connections);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  // Clients through the proxy log in as the test account of the server behind it.
  const target = serverAt(targetPort);
  if (target) rememberServer((server.address() as AddressInfo).port, target);
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
    get connections() {
      return connections;
    },
    cutAfter(bytes, direction) {
      return new Promise((resolve) => {
        cut = { direction, at: (direction === 'up' ? upstreamBytes : downstreamBytes) + bytes, freeze: false, done: resolve };
      });
    },
    freezeAfter(bytes, direction) {
      return new Promise((resolve) => {
        cut = { direction, at: (direction === 'up' ? upstreamBytes : downstreamBytes) + bytes, freeze: true, done: resolve };
      });
    },
    corruptAfter(bytes, direction) {
      return new Promise((resolve) => {
        corrupt = { direction, at: (direction === 'up' ? upstreamBytes : downstreamBytes) + bytes, done: resolve };
      });
    },
    cutConnectionAfter(number, bytes, direction = 'up') {
      return new Promise((resolve) => {
        cutOne = { number, at: bytes, direction, done: resolve };
      });
    },
  };
}
