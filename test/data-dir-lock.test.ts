import { loginAt } from './helpers/accounts.js';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { FerryClient } from '../src/client/client.js';
import { createServer } from '../src/server/server.js';
import { makeFile } from './helpers/files.js';
import { startServer } from './helpers/server.js';
import { ferryBin, spawnServer } from './helpers/server-process.js';
import { tempDir } from './helpers/temp-dir.js';
import { fsck } from './helpers/cli.js';

t.test('a second server on a data directory in use is refused with EBUSY; once the first closes, it may start', async (t) => {
  const dataDir = tempDir(t, 'ferry-data');
  const first = await startServer(t, { dataDir });
  t.throws(() => createServer({ dataDir, workers: 1 }), {
    code: 'EBUSY',
    message: new RegExp(`in use by another ferry server \\(pid ${process.pid}\\); if none is running, remove .*server\\.pid$`, 'u'),
  });
  t.match(await first.client().info(), { files: 0 }, 'the first server is untouched');
  await first.server.close();
  t.notOk(existsSync(join(dataDir, 'server.pid')), 'closing lets the directory go');
  const second = createServer({ dataDir, workers: 1 });
  await second.listen(0, '127.0.0.1');
  await second.close();
});

t.test(
  '`ferry serve` on a directory another process serves exits 1 with one line; after that one is killed (SIGKILL), a new server takes over',
  async (t) => {
    const dataDir = tempDir(t, 'ferry-data');
    const running = await spawnServer(t, dataDir);
    const local = await makeFile(tempDir(t), 'kept.bin', 100_000);
    const client = new FerryClient({ host: '127.0.0.1', port: running.port, ...loginAt(running.port) });
    t.teardown(() => client.close());
    await client.upload(local.path, { name: 'kept.bin' });
    t.equal(
      readFileSync(join(dataDir, 'server.pid'), 'utf8'),
      `${running.child.pid}\n${hostname()}\n`,
      'the lock names the serving process and host',
    );

    const refused = spawn(
      process.execPath,
      [ferryBin, 'serve', '--host', '127.0.0.1', '--port', '0', '--http-port', '0', '--data', dataDir],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let stderr = '';
    refused.stderr.on('data', (data: Buffer) => (stderr += data.toString()));
    const [code] = (await once(refused, 'exit')) as [number | null];
    t.equal(code, 1, 'the second server exits 1');
    t.match(
      stderr.trim(),
      new RegExp(`^ferry: .* is in use by another ferry server \\(pid ${running.child.pid}\\).*\\(EBUSY\\)$`, 'u'),
      'with one line naming the holder',
    );
    t.equal(stderr.trim().split('\n').length, 1);
    t.match(await client.info(), { files: 1 }, 'the first server still serves');

    running.child.kill('SIGKILL');
    await running.exited;
    const next = await startServer(t, { dataDir });
    t.same(
      (await next.client().list()).map((file) => file.name),
      ['kept.bin'],
      'a lock left by a killed server is taken over',
    );
    t.equal(readFileSync(join(dataDir, 'server.pid'), 'utf8'), `${process.pid}\n${hostname()}\n`);
  },
);

t.test('the lock is taken by the real directory: a symlink to a directory in use is refused too', async (t) => {
  const dataDir = tempDir(t, 'ferry-data');
  await startServer(t, { dataDir });
  const link = join(tempDir(t), 'link');
  symlinkSync(dataDir, link);
  t.throws(() => createServer({ dataDir: link, workers: 1 }), { code: 'EBUSY' });
});

t.test('a lock file the server did not write, or cannot judge', async (t) => {
  const cases: { what: string; lock: (path: string) => void; outcome: RegExp | 'taken over' }[] = [
    {
      what: "another host's lock",
      lock: (path) => writeFileSync(path, `${process.pid}\nsome-other-host\n`),
      outcome: /in use by a ferry server on some-other-host \(pid \d+\)/u,
    },
    {
      what: "this host's lock of a process that is gone",
      lock: (path) => writeFileSync(path, `2147483646\n${hostname()}\n`),
      outcome: 'taken over',
    },
    { what: 'garbage', lock: (path) => writeFileSync(path, 'not a lock'), outcome: 'taken over' },
    { what: 'an empty file', lock: (path) => writeFileSync(path, ''), outcome: 'taken over' },
    { what: 'a directory', lock: (path) => mkdirSync(path), outcome: /server\.pid is not a regular file/u },
  ];
  for (const { what, lock, outcome } of cases) {
    const dataDir = tempDir(t, 'ferry-data');
    mkdirSync(dataDir, { recursive: true });
    lock(join(dataDir, 'server.pid'));
    if (outcome === 'taken over') {
      const server = createServer({ dataDir, workers: 1 });
      t.equal(readFileSync(join(dataDir, 'server.pid'), 'utf8'), `${process.pid}\n${hostname()}\n`, `${what}: taken over`);
      await server.close();
      t.notOk(existsSync(join(dataDir, 'server.pid')), `${what}: released on close`);
    } else {
      t.throws(() => createServer({ dataDir, workers: 1 }), { code: 'EBUSY', message: outcome }, `${what}: refused`);
    }
  }
});

t.test('`ferry fsck` beside a running server says so, and still only reads', async (t) => {
  const dataDir = tempDir(t, 'ferry-data');
  const running = await startServer(t, { dataDir });
  const beside = await fsck(dataDir);
  t.equal(beside.code, 0, 'nothing to report');
  t.match(beside.report, { servedBy: `pid ${process.pid}` });
  t.match(
    beside.stderr,
    new RegExp(
      `^ferry: warning: a server \\(pid ${process.pid}\\) is serving .*: its uploads in progress .* may show up as findings\\n$`,
      'u',
    ),
  );
  await running.server.close();
  const alone = await fsck(dataDir);
  t.equal(alone.code, 0);
  t.notOk('servedBy' in alone.report, 'no server, no warning');
  t.equal(alone.stderr, '');
});

t.test('`ferry serve` on a port in use: one line that says so (ECONFIG, not EINTERNAL), and the data directory is let go', async (t) => {
  const running = await startServer(t);
  const dataDir = tempDir(t, 'ferry-data');
  const refused = spawn(
    process.execPath,
    [ferryBin, 'serve', '--host', '127.0.0.1', '--port', String(running.port), '--http-port', '0', '--data', dataDir],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  refused.stderr.on('data', (data: Buffer) => (stderr += data.toString()));
  const [code] = (await once(refused, 'exit')) as [number | null];
  t.equal(code, 1, 'exit 1');
  t.equal(
    stderr.trim(),
    `ferry: 127.0.0.1:${running.port} is in use by another program (choose another --port) (ECONFIG)`,
    'one line naming the address',
  );
  t.notOk(existsSync(join(dataDir, 'server.pid')), 'the data directory is not left locked');
  const next = createServer({ dataDir, workers: 1 });
  await next.listen(0, '127.0.0.1');
  await next.close();
});
