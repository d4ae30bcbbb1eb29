// A server's TLS socket reads its decrypted bytes into memory of the server's choosing (as a
// clear-text socket does with `onread`): not into a fresh Buffer per TLS record. What the server
// chooses is where the bytes land, every byte comes once and in order, also across a pause.
import { type AddressInfo, type Socket, createServer } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { TLSSocket, connect, createSecureContext } from 'node:tls';
import t, { type Test } from 'tap';
import { readTlsIntoChosenMemory } from '../src/server/fixed-buffer-socket.js';
import { certificatePair } from './helpers/certificates.js';

const KiB = 1024;

interface Received {
  /** Every read's bytes, copied, in order. */
  bytes: Buffer[];
  /** Reads that landed in memory `nextRead` gave other than the socket's own buffer. */
  readsInChosenMemory: number;
  reads: number;
}

/**
 * A TLS server for one connection whose socket is set up as the Ferry server sets up its own;
 * `choose` picks where each read lands (given the socket's own buffer). Resolves once the client
 * has sent `payload` and the server has read all of it.
 */
async function sendThroughTls(
  t: Test,
  payload: Buffer,
  choose: (own: Buffer) => Uint8Array,
  afterRead: (socket: TLSSocket, received: Received) => void = () => {},
): Promise<{ received: Received; wired: boolean }> {
  const secureContext = createSecureContext(await certificatePair());
  const received: Received = { bytes: [], readsInChosenMemory: 0, reads: 0 };
  let total = 0;
  let wired = false;
  let chosen: Uint8Array | undefined;
  let own: Buffer | undefined;
  const done = new Promise<void>((resolve) => {
    const server = createServer({ pauseOnConnect: true }, (accepted: Socket) => {
      const socket = new TLSSocket(accepted, { isServer: true, secureContext });
      /** One read's bytes, valid only during the call: kept (copied), and the end seen. */
      const take = (bytes: Uint8Array): void => {
        received.reads += 1;
        received.bytes.push(Buffer.from(bytes));
        total += bytes.byteLength;
        afterRead(socket, received);
        if (total === payload.length) {
          socket.end();
          server.close();
          resolve();
        }
      };
      wired = readTlsIntoChosenMemory(
        socket,
        (bytes) => {
          if (chosen && bytes.buffer === chosen.buffer && bytes.byteOffset === chosen.byteOffset && chosen.buffer !== own?.buffer)
            received.readsInChosenMemory += 1;
          take(bytes);
        },
        (given) => {
          own = given;
          chosen = choose(given);
          return chosen;
        },
      );
      // Where this Node's socket could not be set up so, its bytes come as 'data' events.
      socket.on('data', take);
    });
    server.listen(0, '127.0.0.1', () => {
      const client = connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, rejectUnauthorized: false });
      client.on('error', () => {});
      client.end(payload);
    });
    t.teardown(() => server.close());
  });
  await done;
  return { received, wired };
}

t.test('decrypted bytes land in the memory the server chooses, every byte once, in order', async (t) => {
  const payload = randomBytes(1024 * KiB + 77);
  // Each read alternately in a buffer of the test's own (as a chunk's buffer would be) and in the
  // socket's own buffer, of sizes that cut TLS records (at most 16 KiB) in pieces.
  const elsewhere = Buffer.alloc(10 * KiB);
  let turn = 0;
  const { received, wired } = await sendThroughTls(t, payload, (own) => {
    turn += 1;
    return turn % 2 === 0 ? elsewhere : own.subarray(0, 4 * KiB);
  });
  t.ok(wired, 'the TLS socket reads into chosen memory on this Node');
  t.equal(
    createHash('sha256').update(Buffer.concat(received.bytes)).digest('hex'),
    createHash('sha256').update(payload).digest('hex'),
    'every byte once, in order',
  );
  t.ok(
    received.readsInChosenMemory >= received.reads / 3,
    `reads landed in the memory chosen for them (${received.readsInChosenMemory} of ${received.reads})`,
  );
  t.ok(
    received.bytes.every((bytes) => bytes.length <= 10 * KiB),
    'no read larger than the memory given to it',
  );
});

t.test('a pause stops the reads within the records already read; after resume every byte comes, once and in order', async (t) => {
  const payload = randomBytes(4096 * KiB);
  let readsWhilePaused: number | undefined;
  const { received } = await sendThroughTls(
    t,
    payload,
    (own) => own,
    (socket, received) => {
      if (received.reads !== 5) return;
      socket.pause();
      // Long enough for the rest (MiBs, on loopback) to arrive were the socket still reading.
      setTimeout(() => {
        readsWhilePaused = received.reads - 5;
        socket.resume();
      }, 100);
    },
  );
  t.ok(readsWhilePaused !== undefined && readsWhilePaused <= 8, `${readsWhilePaused} reads came after the pause`);
  t.equal(
    createHash('sha256').update(Buffer.concat(received.bytes)).digest('hex'),
    createHash('sha256').update(payload).digest('hex'),
    'every byte once, in order',
  );
});

t.test('a socket already reading into memory of its own choice is left as it is', (t) => {
  const socket = new TLSSocket(undefined as unknown as Socket, { onread: { buffer: Buffer.alloc(KiB), callback: () => true } } as object);
  t.notOk(
    readTlsIntoChosenMemory(
      socket,
      () => {},
      (own) => own,
    ),
    'not set up twice',
  );
  socket.destroy();
  t.end();
});
