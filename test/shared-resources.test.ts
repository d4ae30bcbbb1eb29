// What many hostile connections at once can hold of what every client shares: the chunk buffer
// budget (slow chunks, downloads nobody reads), the server's memory for replies nobody reads, and
// connection slots held by frames sent a byte at a time. Each case holds the resource from many
// connections, then checks that an ordinary client is still served promptly and memory stays bounded.
import { loginAt, provisionDataDir } from './helpers/accounts.js';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import t from 'tap';
import { makeFile, sha256Of } from './helpers/files.js';
import { RawClient, chunkFrame, frameHead, referenceFingerprint } from './helpers/raw-client.js';
import { type RunningServer, startServer } from './helpers/server.js';
import { tempDir } from './helpers/temp-dir.js';
import { ferryBin, servingPort } from './helpers/server-process.js';
import { FerryClient } from '../src/client/client.js';
import { childEnv } from './helpers/cli.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const CONTROL = 1;

/** Rejects if `promise` has not settled within `ms`: the bound on "promptly". */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not done within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** An ordinary client uploads 1 MiB and downloads a 256 KiB file stored before: both byte-exact. */
async function ordinaryClientIsServed(running: RunningServer, work: string, label: string): Promise<boolean> {
  // Retries: it waits for buffers under the same grace as everyone (a pause of this process on a
  // loaded machine can cost it one attempt); `within` bounds it all the same.
  const client = running.client({ retries: 3 });
  try {
    const big = await makeFile(work, `${label}-up.bin`, MiB);
    const up = await client.upload(big.path, { name: `${label}/up.bin` });
    const out = join(work, `${label}-down.bin`);
    const down = await client.download('stored/small.bin', { out });
    return up.sha256 === big.sha256 && down.sha256 === (await sha256Of(out));
  } finally {
    await client.close();
  }
}

t.test('16 connections that trickle a chunk byte by byte do not hold the buffer budget from everyone else', async (t) => {
  const chunkSize = 256 * KiB;
  // 16 buffers in all; a holder that receives under 16 KiB/s for a second gives its buffer up while others wait.
  const running = await startServer(t, { chunkSizeBytes: chunkSize, inflightBudgetBytes: 16 * chunkSize, budgetGraceMs: 1000 });
  const work = tempDir(t);
  const small = await makeFile(work, 'small.bin', 256 * KiB);
  const setup = running.client();
  await setup.upload(small.path, { name: 'stored/small.bin' });
  await setup.close();

  const file = await makeFile(work, 'trickled.bin', 2 * chunkSize);
  const tricklers = await Promise.all(
    Array.from({ length: 16 }, async (_, index) => {
      const raw = await RawClient.connect(t, running.port);
      await raw.hello();
      const put = await raw.call('put', {
        name: `trickle/${index}.bin`,
        size: file.bytes.length,
        fingerprint: await referenceFingerprint(file.bytes),
      });
      const frame = await chunkFrame((put['result'] as { stream: number }).stream, 0, file.bytes.subarray(0, chunkSize));
      await raw.write(frame.subarray(0, 26)); // the chunk's head and one payload byte: the server takes a buffer for it
      return { raw, frame, sent: 26 };
    }),
  );
  // One more byte every 200 ms on each: never silent long enough for a stall, never close to done.
  const trickle = setInterval(() => {
    for (const trickler of tricklers) {
      if (trickler.raw.closed || trickler.sent >= trickler.frame.length) continue;
      void trickler.raw.write(trickler.frame.subarray(trickler.sent, trickler.sent + 1));
      trickler.sent += 1;
    }
  }, 200);
  t.teardown(() => clearInterval(trickle));

  t.ok(
    await within(15_000, 'an ordinary upload and download', ordinaryClientIsServed(running, work, 'beside-tricklers')),
    'an ordinary client is served, byte-exact, within seconds',
  );
  clearInterval(trickle);
  const byes = await Promise.all(tricklers.map(({ raw }) => raw.event('bye').catch(() => undefined)));
  t.ok(
    byes.some((bye) => bye?.['code'] === 'ETIMEDOUT' && /while others waited for a buffer/u.test(String(bye['message']))),
    'tricklers that held a buffer were told why they were cut',
  );
});

t.test('connections that start downloads and never read them do not hold the budget from everyone else', async (t) => {
  const chunkSize = 256 * KiB;
  const running = await startServer(t, { chunkSizeBytes: chunkSize, inflightBudgetBytes: 16 * chunkSize, budgetGraceMs: 1000 });
  const work = tempDir(t);
  const setup = running.client();
  await setup.upload((await makeFile(work, 'small.bin', 256 * KiB)).path, { name: 'stored/small.bin' });
  await setup.upload((await makeFile(work, 'large.bin', 16 * MiB)).path, { name: 'stored/large.bin' });
  await setup.close();

  // Six readers that never read: three buffers each would hold more than the whole budget.
  const readers = await Promise.all(
    Array.from({ length: 6 }, async () => {
      const raw = await RawClient.connect(t, running.port);
      await raw.hello();
      raw.socket.pause();
      raw.send('get', { name: 'stored/large.bin' });
      return raw;
    }),
  );
  t.ok(
    await within(15_000, 'an ordinary upload and download', ordinaryClientIsServed(running, work, 'beside-readers')),
    'an ordinary client is served, byte-exact, within seconds',
  );
  for (const raw of readers) raw.destroy();
});

t.test('48 connections that send requests and never read the replies do not grow the server without bound', async (t) => {
  // The barrier's hello below waits behind some 1,500 replies to encode and encrypt: on a loaded
  // 2-core CI machine that took over the default 10 s handshake timeout once (Node 24, over TLS).
  // The handshake deadline is not what this test is about.
  const running = await startServer(t, { chunkSizeBytes: 64 * KiB, stallTimeoutMs: 3000, handshakeTimeoutMs: 60_000 });
  const work = tempDir(t);
  // 300 files with names near the 1024-byte limit: an unbounded list page is about 350 KB.
  const local = await makeFile(work, 'tiny.bin', 1);
  const clients = Array.from({ length: 4 }, () => running.client());
  const longName = (index: number): string =>
    `long/${String(index).padStart(4, '0')}${'n'.repeat(240)}/${'m'.repeat(250)}/${'o'.repeat(250)}/${'p'.repeat(250)}`;
  await Promise.all(
    clients.map(async (client, which) => {
      for (let index = which; index < 300; index += clients.length) await client.upload(local.path, { name: longName(index) });
    }),
  );
  await Promise.all(clients.map((client) => client.close()));

  const floods = await Promise.all(
    Array.from({ length: 48 }, async () => {
      const raw = await RawClient.connect(t, running.port);
      await raw.hello();
      return raw;
    }),
  );
  for (const raw of floods) {
    raw.socket.pause(); // reads nothing from here on
    // More replies than the kernel's socket buffers hold: the rest can only wait in the server.
    for (let request = 0; request < 32; request += 1) raw.send('list', {});
  }
  // What the server holds for them at its peak, once it has answered what it will.
  const queuedNow = (): number =>
    [...running.server.connections.open()].reduce((total, connection) => total + connection.socket.writableLength, 0);
  let peak = 0;
  // The barrier waits its turn behind the flood: its round trips may take a while on a busy machine.
  const barrier = await RawClient.connect(t, running.port);
  await barrier.call('hello', barrier.helloFields(), 60_000);
  for (let round = 0; round < 20; round += 1) {
    peak = Math.max(peak, queuedNow());
    await barrier.call('ping', {}, 60_000); // a round trip: the server has had a turn at every connection meanwhile
  }
  barrier.destroy();
  t.ok(peak < 96 * MiB, `replies queued for 48 clients that do not read stay bounded (peak ${(peak / MiB).toFixed(1)} MiB in the server)`);

  // One that asks for far more than any socket buffer holds: once its output stops moving, the stall timeout closes it.
  const greedy = await RawClient.connect(t, running.port);
  await greedy.hello();
  const before = running.server.connections.count;
  greedy.socket.pause();
  for (let request = 0; request < 400; request += 1) greedy.send('list', {});
  await within(15_000, 'the connection that does not read to be closed', once(running.server.connections, 'close'));
  t.equal(running.server.connections.count, before - 1, 'the client that does not read its replies is closed after the stall timeout');
  for (const raw of floods) raw.destroy();
});

t.test('frames sent a byte at a time: a deadline, and memory follows what arrived, not what the head declared', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: 64 * KiB, frameTimeoutMs: 1000, maxConnectionsPerAddress: 64 });
  const raw = await RawClient.connect(t, running.port);
  await raw.hello();
  const body = Buffer.from(JSON.stringify({ id: 9, op: 'info' }));
  await raw.write(frameHead(1 + body.length, CONTROL));
  const trickle = setInterval(() => void raw.write(body.subarray(0, 1)), 300);
  t.teardown(() => clearInterval(trickle));
  t.match(
    await raw.event('bye', undefined, 5000),
    { code: 'ETIMEDOUT', message: /a frame was started and not finished within 1000 ms/u },
    'a control frame trickled byte by byte is cut at its deadline',
  );
  clearInterval(trickle);

  // 256 connections (from four client networks) each declare a 256 KiB control frame and send 10 bytes of it.
  const before = process.memoryUsage().arrayBuffers;
  const holders = [];
  for (let index = 0; index < 256; index += 1) {
    const holder = await RawClient.connect(t, running.port, `127.0.${1 + Math.floor(index / 64)}.1`);
    await holder.hello();
    await holder.write(Buffer.concat([frameHead(1 + 256 * KiB - 1, CONTROL), Buffer.from('{"id":1,"o')]));
    holders.push(holder);
  }
  // A round trip on another connection, after every write: by then the server has read those bytes.
  const barrier = await RawClient.connect(t, running.port, '127.0.9.1');
  await barrier.hello();
  await barrier.call('ping');
  // Each connection has its 16 KiB read buffer (4 MiB for 256); the frames' declared bodies would add 64 MiB.
  const grown = process.memoryUsage().arrayBuffers - before;
  t.ok(grown < 32 * MiB, `256 connections with half-sent 256 KiB control frames hold ${(grown / MiB).toFixed(1)} MiB`);
  for (const holder of holders) holder.destroy();
});

t.test('under a low limit on open files, connections beyond what fits are refused, never left hanging', async (t) => {
  const prlimit = spawnSync('prlimit', ['--version'], { stdio: 'ignore' });
  if (prlimit.error) {
    t.pass('a low open-file limit', { skip: 'prlimit (util-linux) is not installed' });
    return;
  }
  const dataDir = join(tempDir(t), 'data');
  const token = await provisionDataDir(dataDir);
  const child = spawn(
    'prlimit',
    [
      '--nofile=200:200',
      process.execPath,
      ferryBin,
      'serve',
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      '--http-port',
      '0',
      '--data',
      dataDir,
      '--workers',
      '2',
      '--log-level',
      'warn',
    ],
    // With 60 descriptors left open to it by its parent (as a CI runner or a service manager may):
    // the budget counts what the process holds at start, not what a bare process would. (Under
    // tap the server also loads tap's coverage hooks: its threads must be up before the flood, or
    // they cannot open their own modules.)
    { stdio: ['ignore', 'pipe', 'pipe', ...Array.from({ length: 60 }, () => 0)], env: childEnv() },
  );
  const exited = once(child, 'exit');
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  let log = '';
  child.stdout!.on('data', (data: Buffer) => (log += data.toString()));
  const port = await servingPort(child, token, exited);
  t.match(
    log,
    /open file limit \(200\) fits \d+ connections, fewer than --max-connections 1024/u,
    'the server says at start what the limit allows',
  );

  // 250 connections from five client networks: far more than 200 descriptors hold.
  const outcomes = await Promise.all(
    Array.from({ length: 250 }, async (_, index) => {
      const raw = await RawClient.connect(t, port, `127.0.${20 + Math.floor(index / 50)}.1`);
      const id = raw.send('hello', raw.helloFields());
      const first = await raw
        .until(
          'a hello reply, a bye or the end',
          () =>
            raw.controls.find((message) => message['id'] === id || message['event'] === 'bye') ??
            (raw.closed ? { closed: true } : undefined),
          20_000,
          true,
        )
        .catch(() => undefined);
      return { raw, first };
    }),
  );
  const greeted = outcomes.filter(({ first }) => first?.['ok'] === true).length;
  const refused = outcomes.filter(({ first }) => first?.['event'] === 'bye' && first['code'] === 'EBUSY').length;
  // Beyond what even a lingering refusal's descriptor fits, a connection is closed at once.
  const closed = outcomes.filter(({ first }) => first?.['closed'] === true).length;
  t.equal(
    greeted + refused + closed,
    250,
    `every connection was greeted (${greeted}), refused with bye EBUSY (${refused}) or closed at once (${closed}); none was left hanging`,
  );
  t.ok(refused > 0, 'and some were told why');
  for (const { raw } of outcomes) raw.destroy();

  const client = new FerryClient({ host: '127.0.0.1', port, retry: { retries: 20, baseDelayMs: 100, maxDelayMs: 1000 }, ...loginAt(port) });
  const local = await makeFile(tempDir(t), 'after.bin', 300 * KiB);
  const up = await client.upload(local.path, { name: 'after.bin' });
  const out = join(tempDir(t), 'after.out');
  await client.download('after.bin', { out });
  await client.close();
  t.equal(up.sha256, await sha256Of(out), 'then an ordinary upload and download work');
  t.notMatch(log, /EMFILE/u, 'nothing failed for lack of a descriptor');
  child.kill('SIGTERM');
  await exited;
});
