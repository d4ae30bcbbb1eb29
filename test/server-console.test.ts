/**
 * The server's console: readable lines on a terminal, JSON lines on a pipe (or with
 * --log-format json), and one line per finished transfer and delete saying who, what, how much,
 * how fast and how it ended.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import t from 'tap';
import { FerryClient } from '../src/client/client.js';
import { childEnv } from './helpers/cli.js';
import { makeFile } from './helpers/files.js';
import { ferryBin } from './helpers/server-process.js';
import { tempDir } from './helpers/temp-dir.js';
import { Terminal, needsTmux } from './helpers/terminal.js';

const MiB = 1024 * 1024;

t.test('on a pipe: one JSON object per line, with a line for each finished transfer and delete', async (t) => {
  const dir = tempDir(t);
  const local = await makeFile(dir, 'console.bin', 2 * MiB);
  const child = spawn(
    process.execPath,
    [ferryBin, 'serve', '--host', '127.0.0.1', '--port', '0', '--http-port', '0', '--data', join(dir, 'data')],
    {
      env: childEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const exited = once(child, 'exit');
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stdout = '';
  let stderr = '';
  const finished = new Promise<void>((resolve) => {
    child.stdout.on('data', (data: Buffer) => {
      stdout += data.toString();
      if (/"op":"delete"/u.test(stdout)) resolve();
    });
  });
  // A fresh data directory: its first start makes `admin` and shows the password once, with the line to log in.
  const [port, password] = await new Promise<[number, string]>((resolve) =>
    child.stderr.on('data', (data: Buffer) => {
      stderr += data.toString();
      const match =
        /serving .* on [^ ]+:(\d+) over TLS\nferry: certificate fingerprint SHA256:\S+ \(a client shows it at its first connection: compare\)\n.*password (\S+) \(kept in .*admin-password until changed\)\nferry: log in with: ferry login --server 127\.0\.0\.1:\d+ --user admin\n/u.exec(
          stderr,
        );
      if (match) resolve([Number(match[1]), match[2]!]);
    }),
  );
  const client = new FerryClient({ host: '127.0.0.1', port, credentials: { user: 'admin', password } });
  await client.upload(local.path, { name: 'console.bin' });
  await client.download('console.bin', { out: join(dir, 'back.bin') });
  await client.delete('console.bin');
  await client.close();
  await finished;
  child.kill('SIGTERM');
  await exited;
  const lines = stdout.trim().split('\n');
  const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  t.equal(records.length, lines.length, 'every line is JSON');
  const transfers = records.filter((record) => typeof record['op'] === 'string');
  t.same(
    transfers.map((record) => [record['op'], record['file'], record['bytes'], record['result']]),
    [
      ['upload', 'console.bin', 2 * MiB, 'ok'],
      ['download', 'console.bin', 2 * MiB, 'ok'],
      ['delete', 'console.bin', 2 * MiB, 'ok'],
    ],
    'upload, download and delete, in order',
  );
  for (const record of transfers) {
    t.match(record, { client: /^127\.0\.0\.1:\d+$/u, user: 'admin', durationMs: Number }, `${String(record['op'])}: who and how long`);
  }
  t.match(transfers[0], { bytesPerSecond: Number, msg: /^upload console\.bin: 2 MiB in [\d.]+ m?s \([\d.]+ [KMG]?i?B\/s\), ok$/u });
});

t.test('on a terminal: readable lines in local time; --log-format json keeps JSON there', needsTmux, async (t) => {
  const dir = tempDir(t);
  const local = await makeFile(dir, 'pretty.bin', 1 * MiB);
  const terminal = await Terminal.ferry(
    t,
    ['serve', '--host', '127.0.0.1', '--port', '0', '--http-port', '0', '--data', join(dir, 'data')],
    {
      columns: 160,
    },
  );
  const rows = (await terminal.waitFor(/log in with: ferry login/u)).join('\n');
  const port = Number(/serving .* on 127\.0\.0\.1:(\d+)/u.exec(rows)![1]);
  const password = /password (\S+) \(kept in/u.exec(rows)![1]!;
  const client = new FerryClient({ host: '127.0.0.1', port, credentials: { user: 'admin', password } });
  await client.upload(local.path, { name: 'pretty.bin' });
  await client.close();
  const screen = (await terminal.waitFor(/upload pretty\.bin: 1 MiB in .*, ok/u)).join('\n');
  t.match(
    screen,
    /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] INFO: upload pretty\.bin: 1 MiB in [\d.]+ m?s \([\d.]+ [KMG]?i?B\/s\), ok .*"client":"127\.0\.0\.1:\d+"/mu,
    'time with its offset, level, message, key fields',
  );
  t.notMatch(screen, /^\{"level"/mu, 'no JSON');
  await terminal.save('serve-console');
  await terminal.keys('C-c');
  t.equal(await terminal.exitCode(), 0, 'Ctrl-C stops the server');

  const json = await Terminal.ferry(
    t,
    ['serve', '--host', '127.0.0.1', '--port', '0', '--http-port', '0', '--data', join(dir, 'data'), '--log-format', 'json'],
    {
      columns: 300,
    },
  );
  await json.waitFor(/^\{"level":30,.*"msg":"ferry server listening"\}$/mu);
  await json.keys('C-c');
  t.equal(await json.exitCode(), 0);
});
