// Parts of the CLI and the server's wiring that need no server: the progress bar on a terminal (a
// stream that says it is one), the server's option checks, and the socket re-wrapping's fallback.
import { Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import t from 'tap';
import { progressBar } from '../src/cli/progress-bar.js';
import { resolveServerConfig } from '../src/server/config.js';
import { readIntoFixedBuffer } from '../src/server/fixed-buffer-socket.js';

t.test('the progress bar draws on a terminal, and nothing at all elsewhere', (t) => {
  const terminal = Object.assign(new PassThrough(), { isTTY: true, columns: 100, cursorTo() {}, clearLine() {}, moveCursor() {} });
  let drawn = '';
  terminal.on('data', (data: Buffer) => (drawn += data.toString()));
  const bar = progressBar(true, terminal);
  bar.onProgress?.({ name: 'big.iso', done: 1024 * 1024, total: 4 * 1024 * 1024, transferred: 1024 * 1024 });
  bar.onProgress?.({ name: 'big.iso', done: 4 * 1024 * 1024, total: 4 * 1024 * 1024, transferred: 4 * 1024 * 1024 });
  bar.stop();
  t.match(drawn, /big\.iso/u, 'the name');
  t.match(drawn, /100%/u, 'the percentage');
  t.match(drawn, /4 MiB of 4 MiB/u, 'bytes done of the total');

  const pipe = Object.assign(new PassThrough(), { isTTY: false });
  let written = '';
  pipe.on('data', (data: Buffer) => (written += data.toString()));
  const silent = progressBar(true, pipe);
  t.equal(silent.onProgress, undefined, 'no listener when the stream is not a terminal');
  silent.stop();
  t.equal(progressBar(false, terminal).onProgress, undefined, 'nor with --json');
  t.equal(written, '');
  t.end();
});

t.test('server options: unknown keys, out-of-range values and a budget smaller than two chunks are refused', (t) => {
  t.throws(() => resolveServerConfig({ dataDir: '/tmp/x', chunkSizeBytes: 1000 }), /invalid server option chunkSizeBytes/u);
  t.throws(() => resolveServerConfig({ dataDir: '/tmp/x', bogus: 1 } as never), /invalid server option/u);
  t.throws(
    () => resolveServerConfig({ dataDir: '/tmp/x', chunkSizeBytes: 4 * 1024 * 1024, inflightBudgetBytes: 4 * 1024 * 1024 }),
    /must hold at least two chunks/u,
  );
  const config = resolveServerConfig({ dataDir: '/tmp/x' });
  t.ok(Object.isFrozen(config), 'the result is frozen');
  t.equal(config.umask, 0o077);
  t.end();
});

t.test('a socket that has no handle to move is used as it is', (t) => {
  const socket = new Socket();
  t.equal(
    readIntoFixedBuffer(socket, () => {}),
    socket,
  );
  socket.destroy();
  t.end();
});
