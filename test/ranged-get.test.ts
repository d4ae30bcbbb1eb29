import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import { type AddressInfo, type Socket, createServer as createNetServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import t, { type Test } from 'tap';
import { connectionsPerStore, readRange } from '../src/object-store/ranged-get.js';
import { RangeResponseParser, maxResponseHeadBytes, type ResponseHead } from '../src/object-store/range-response.js';

// The ranged GETs of a direct read (a client reading a file from the server's object store), over
// clear-text HTTP, against real sockets: an HTTP server that serves an object by range, and raw
// ones that answer the way a broken or impatient store does.

const object = randomBytes(3 * 1024 * 1024 + 17);
const etag = '"v1"';

/** A Node HTTP server serving `object` by Range, If-Match checked; counts the connections made to it. */
async function objectServer(t: Test) {
  const served = { connections: 0, requests: 0 };
  const server = createHttpServer((request, response) => {
    served.requests += 1;
    if (request.headers['if-match'] !== etag) return response.writeHead(412).end('<Error><Code>PreconditionFailed</Code></Error>');
    if (request.url !== '/bucket/file.bin?X-Amz-Signature=abc')
      return response.writeHead(403).end('<Error><Code>SignatureDoesNotMatch</Code></Error>');
    const [, from, to] = /^bytes=(\d+)-(\d+)$/u.exec(request.headers.range ?? '') ?? [];
    const body = object.subarray(Number(from), Number(to) + 1);
    response.writeHead(206, { 'Content-Length': body.length, ETag: etag }).end(body);
  });
  server.on('connection', () => (served.connections += 1));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  return {
    ...served,
    served,
    url: new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/bucket/file.bin?X-Amz-Signature=abc`),
  };
}

/** A raw TCP server whose `answer` decides, per connection and request, what goes back. */
async function rawServer(t: Test, answer: (socket: Socket, request: string, connection: number) => void) {
  let connections = 0;
  const sockets = new Set<Socket>();
  const server = createNetServer((socket) => {
    const connection = ++connections;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let text = '';
    socket.on('data', (bytes) => {
      text += bytes.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return;
      const request = text.slice(0, end);
      text = text.slice(end + 4);
      answer(socket, request, connection);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  return {
    url: new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/o`),
    connections: () => connections,
    onConnection: (listener: (socket: Socket) => void) => server.on('connection', listener),
    /** Stops listening (its port then refuses connections). */
    close: async () => {
      server.close();
      await once(server, 'close');
    },
  };
}

const read = (url: URL, offset: number, length: number, options: { tag?: string; signal?: AbortSignal } = {}) => {
  const target = Buffer.from(new SharedArrayBuffer(length + 8));
  const pieces: number[] = [];
  const done = readRange(url, options.tag ?? etag, offset, length, target, options.signal ?? new AbortController().signal, (piece) =>
    pieces.push(piece.byteLength),
  );
  return done.then(() => ({ bytes: target.subarray(0, length), pieces }));
};

t.test('reads the range asked for, exact, over one kept-alive connection', async (t) => {
  const store = await objectServer(t);
  const ranges = [
    [0, 1024 * 1024],
    [1024 * 1024, 1024 * 1024],
    [3 * 1024 * 1024 - 5, 22],
    [17, 1],
  ] as const;
  for (const [offset, length] of ranges) {
    const { bytes, pieces } = await read(store.url, offset, length);
    t.ok(bytes.equals(object.subarray(offset, offset + length)), `bytes ${offset}+${length} exact`);
    t.equal(
      pieces.reduce((sum, each) => sum + each, 0),
      length,
      'each piece seen once, as it landed',
    );
  }
  t.equal(store.served.requests, ranges.length);
  t.equal(store.served.connections, 1, 'one connection carried them all');
  const [a, b] = await Promise.all([read(store.url, 0, 4096), read(store.url, 4096, 4096)]);
  t.ok(Buffer.concat([a.bytes, b.bytes]).equals(object.subarray(0, 8192)), 'two at once, each on its own connection');
  t.equal(store.served.connections, 2);
});

t.test("the store's refusals: a replaced object is ECHANGED, a refused URL ECONFIG with the status", async (t) => {
  const store = await objectServer(t);
  await t.rejects(read(store.url, 0, 100, { tag: '"v0"' }), { code: 'ECHANGED', message: /HTTP 412/u });
  const unsigned = new URL(store.url);
  unsigned.search = '';
  await t.rejects(read(unsigned, 0, 100), { code: 'ECONFIG', reached: true, message: /refused the signed URL \(HTTP 403/u });
  await t.rejects(
    read(store.url, 0, 100, { tag: '"v1"\r\nX-Evil: 1' }),
    { code: 'EPROTO' },
    'an ETag that would end the header line is not sent',
  );
  t.ok((await read(store.url, 0, 100)).bytes.equals(object.subarray(0, 100)), 'and the next read goes on');
});

t.test('a store that sends other than the range: EIO, and nothing written into the target after', async (t) => {
  const store = await rawServer(t, (socket, request) => {
    if (request.includes('bytes=0-99')) socket.end('HTTP/1.1 206 Partial Content\r\nContent-Length: 50\r\n\r\n' + 'x'.repeat(50));
    else if (request.includes('bytes=100-199')) socket.end('HTTP/1.1 206 Partial Content\r\nContent-Length: 100\r\n\r\n' + 'y'.repeat(40));
    else if (request.includes('bytes=200-299')) socket.end('HTTP/1.1 206 Partial Content\r\nTransfer-Encoding: chunked\r\n\r\n');
    else if (request.includes('bytes=300-399')) socket.end('SSH-2.0-OpenSSH_9.2\r\n\r\n');
    else socket.end(`HTTP/1.1 206 Partial Content\r\nX-Big: ${'z'.repeat(maxResponseHeadBytes)}`);
  });
  await t.rejects(read(store.url, 0, 100), { code: 'EIO', message: /sending 50 bytes for the 100 asked for/u });
  await t.rejects(read(store.url, 100, 100), { code: 'EIO', message: /ended early \(40 of 100 bytes\)/u });
  await t.rejects(read(store.url, 200, 100), { code: 'EIO', message: /an unsaid number of bytes/u });
  await t.rejects(read(store.url, 300, 100), { code: 'EIO', message: /something else than HTTP/u });
  await t.rejects(read(store.url, 400, 100), { code: 'EIO', message: /response head over/u });
});

t.test('a store not connected to is told apart from one that failed once reached', async (t) => {
  const closed = await rawServer(t, () => undefined);
  const port = closed.url.port;
  await closed.close();
  await t.rejects(read(new URL(`http://127.0.0.1:${port}/o`), 0, 64), { code: 'EIO', reached: false, message: /ECONNREFUSED/u });
  const cutting = await rawServer(t, (socket) => socket.end('HTTP/1.1 206 Partial Content\r\nContent-Length: 64\r\n\r\nabc'));
  await t.rejects(read(cutting.url, 0, 64), { code: 'EIO', reached: true }, 'reached, then cut');
  const erring = await rawServer(t, (socket) => socket.end('HTTP/1.1 503 Slow Down\r\nContent-Length: 0\r\n\r\n'));
  await t.rejects(read(erring.url, 0, 64), { code: 'EIO', reached: true, message: /HTTP 503/u }, "reached: the store's own error");
});

t.test('a kept-alive connection the store closed meanwhile: the read goes again on a new one', async (t) => {
  const body = 'b'.repeat(64);
  const store = await rawServer(t, (socket, _request, connection) => {
    // The first connection answers once, then is closed by the store as the next request comes, unanswered.
    if (connection === 1 && socket.bytesWritten > 0) return void socket.destroy();
    socket.write(`HTTP/1.1 206 Partial Content\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
  });
  t.equal((await read(store.url, 0, 64)).bytes.toString(), body);
  t.equal((await read(store.url, 0, 64)).bytes.toString(), body, 'the second read came, over a second connection');
  t.equal(store.connections(), 2);
  // A store that closes a new connection at once is not tried again: that read fails.
  const closing = await rawServer(t, (socket) => socket.destroy());
  await t.rejects(read(closing.url, 0, 64), { code: 'EIO' });
  t.equal(closing.connections(), 1);
});

t.test('a read called off mid-body settles at once, ECANCELED', async (t) => {
  const store = await rawServer(t, (socket) =>
    socket.write('HTTP/1.1 206 Partial Content\r\nContent-Length: 100\r\n\r\n' + 'x'.repeat(10)),
  );
  const calledOff = new AbortController();
  const target = Buffer.from(new SharedArrayBuffer(100));
  // Called off once the first bytes of the body landed; the store sends no more.
  await t.rejects(
    readRange(store.url, etag, 0, 100, target, calledOff.signal, () => calledOff.abort()),
    { code: 'ECANCELED' },
  );
});

t.test(
  `at most ${connectionsPerStore} connections to one store at once: more reads wait for one, and may be called off meanwhile`,
  async (t) => {
    const reads = connectionsPerStore + 6;
    let open = 0;
    let mostOpen = 0;
    const held: (() => void)[] = [];
    const answer = (socket: Socket): void => {
      socket.write('HTTP/1.1 206 Partial Content\r\nContent-Length: 4\r\nConnection: keep-alive\r\n\r\nabcd');
    };
    let answering = false;
    const store = await rawServer(t, (socket) => {
      if (answering) return answer(socket);
      held.push(() => answer(socket));
      // Every connection allowed holds a request: answer them all, and from then on at once.
      if (held.length === connectionsPerStore) {
        answering = true;
        for (const release of held) release();
      }
    });
    store.onConnection((socket) => {
      open += 1;
      mostOpen = Math.max(mostOpen, open);
      socket.on('close', () => (open -= 1));
    });
    const waiting = new AbortController();
    const all = Array.from({ length: reads }, (_, index) =>
      read(store.url, 0, 4, index === reads - 1 ? { signal: waiting.signal } : {}).then(({ bytes }) => bytes.toString()),
    );
    waiting.abort();
    const last = all.pop()!;
    await t.rejects(last, { code: 'ECANCELED' }, 'a read waiting for a connection is called off at once');
    t.same(
      await Promise.all(all),
      Array.from({ length: reads - 1 }, () => 'abcd'),
      'every other read is served',
    );
    t.equal(mostOpen, connectionsPerStore, `never more than ${connectionsPerStore} connections open to the store`);
  },
);

t.test('the response parser: the same head and body however the bytes are split', (t) => {
  const body = Buffer.from('0123456789abcdef');
  const response = Buffer.concat([
    Buffer.from('HTTP/1.1 206 Partial Content\r\nContent-Length: 16\r\nETag: "v1"\r\nConnection: close\r\n\r\n'),
    body,
  ]);
  const wrong: string[] = [];
  for (let cut = 1; cut < response.length; cut += 1) {
    for (const second of [cut + 1, response.length]) {
      const heads: ResponseHead[] = [];
      const pieces: Buffer[] = [];
      const parser = new RangeResponseParser(
        (head) => (heads.push(head), head.bodyBytes ?? 0),
        (piece) => pieces.push(Buffer.from(piece)),
      );
      for (const part of [response.subarray(0, cut), response.subarray(cut, second), response.subarray(second)])
        if (part.length > 0) parser.push(part);
      const [head] = heads;
      const right = heads.length === 1 && head?.status === 206 && head.headers.get('etag') === '"v1"' && !head.keepAlive;
      if (!right || !Buffer.concat(pieces).equals(body) || !parser.complete) wrong.push(`${cut}/${second}`);
    }
  }
  t.same(wrong, [], 'every split: status 206, the ETag, Connection: close heard, the body whole');
  const parser = new RangeResponseParser(
    () => 4,
    () => undefined,
  );
  t.throws(() => parser.push(Buffer.from('HTTP/1.1 206 OK\r\nContent-Length: 4\r\n\r\n12345')), { code: 'EIO' }, 'a body past its length');
  t.throws(
    () =>
      new RangeResponseParser(
        () => 0,
        () => undefined,
      ).push(Buffer.from('HTTP/1.1 206 OK\r\nContent-Length: -1\r\n\r\n')),
    { code: 'EIO' },
  );
  t.end();
});
