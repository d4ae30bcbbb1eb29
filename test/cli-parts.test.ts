// Parts of the CLI and the server's wiring that need no server: the progress line and display on a
// terminal (a stream that says it is one), the server's option checks, and the socket re-wrapping's fallback.
import { Socket } from 'node:net';
import { homedir } from 'node:os';
import { PassThrough } from 'node:stream';
import t from 'tap';
import { displayWidth, progressLine, shortenMiddle } from '../src/cli/progress-line.js';
import { quoteWord } from '../src/cli/completion.js';
import { RateMeter, TransferDisplay } from '../src/cli/transfer-display.js';
import { expandLine } from '../src/cli/shell.js';
import { resolveServerConfig } from '../src/server/config.js';
import { readIntoFixedBuffer } from '../src/server/fixed-buffer-socket.js';

/** A stream that says it is a terminal of `columns` columns, and what was written to it. */
function fakeTerminal(columns: number): { stream: PassThrough & { isTTY: true; columns: number }; written(): string } {
  const stream = Object.assign(new PassThrough(), { isTTY: true as const, columns });
  let drawn = '';
  stream.on('data', (data: Buffer) => (drawn += data.toString()));
  return { stream, written: () => drawn };
}

const MiB = 1024 * 1024;

t.test('the progress line fits the width: the name shortens in the middle first, then the bar; the numbers always show', (t) => {
  const fields = { name: 'a-really-rather-long-file-name-for-a-disk-image.iso', done: 76 * MiB, total: 200 * MiB, rate: 12.3 * MiB };
  for (const columns of [160, 100, 80, 72, 60]) {
    const line = progressLine(fields, columns);
    t.ok([...line].length <= columns - 1, `${columns} columns: ${line.length} characters`);
    t.match(line, / 38% +76 MiB\/200 MiB +12\.3 MiB\/s {2}ETA 11s$/u, `${columns} columns: percent, bytes, rate, ETA`);
  }
  t.match(progressLine(fields, 160), /^a-really-rather-long-file-name-for-a-disk-image\.iso \[=+-+\]/u, 'wide: all of the name and a bar');
  const eighty = progressLine(fields, 80);
  t.match(eighty, /^a-real.*….*\.iso \[=+-+\]/u, '80 columns: the name shortened in the middle, the bar still there');
  t.notMatch(progressLine(fields, 60), /\[/u, '60 columns: no room for a bar');
  t.equal(shortenMiddle('abcdefghij', 5), 'ab…ij');
  t.equal(shortenMiddle('short', 10), 'short');
  t.match(progressLine({ ...fields, rate: undefined }, 80), /-- B\/s {2}ETA --$/u, 'no rate measured yet');
  t.end();
});

t.test("a tree's counter goes first and whole; the name after it is what shortens", (t) => {
  const fields = {
    counter: '[1234/10000]',
    name: '2026/holidays/img-20260812-183355.jpg',
    done: 76 * MiB,
    total: 200 * MiB,
    rate: 12.3 * MiB,
  };
  for (const columns of [160, 80, 60]) {
    const line = progressLine(fields, columns);
    t.ok([...line].length <= columns - 1, `${columns} columns: ${line.length} characters`);
    t.match(line, /^\[1234\/10000\] /u, `${columns} columns: the counter whole`);
    t.match(line, / 38% +76 MiB\/200 MiB +12\.3 MiB\/s {2}ETA 11s$/u, `${columns} columns: percent, bytes, rate, ETA`);
  }
  t.match(progressLine(fields, 160), /^\[1234\/10000\] 2026\/holidays\/img-20260812-183355\.jpg \[=+-+\]/u, 'wide: all of it');
  t.match(progressLine(fields, 80), /^\[1234\/10000\] 2026\/h.*….*\.jpg \[=+-+\]/u, '80 columns: the name shortened in the middle');
  t.equal(progressLine(fields, 50), progressLine({ ...fields, counter: undefined }, 50), 'no room for it: the line without the counter');
  t.end();
});

t.test('of an upload of unknown size (standard input) the line shows the bytes so far and the rate, no bar, percent or ETA', (t) => {
  const fields = { name: 'backup-of-the-whole-home-directory.tar', done: 76 * MiB, total: undefined, rate: 12.3 * MiB };
  t.equal(progressLine(fields, 80), 'backup-of-the-whole-home-directory.tar   76 MiB  12.3 MiB/s');
  const narrow = progressLine(fields, 40);
  t.ok(narrow.length <= 39, `40 columns: ${narrow.length} characters`);
  t.match(narrow, /^backup-.*….*\.tar +76 MiB +12\.3 MiB\/s$/u, 'the name shortened in the middle, the numbers whole');
  t.equal(progressLine(fields, 20), '  76 MiB  12.3 MiB/s', 'no room for the name: the numbers alone');
  t.end();
});

t.test('the display draws a bar on a terminal, puts notices above it, and off a terminal prints only the notices', (t) => {
  const terminal = fakeTerminal(80);
  const display = new TransferDisplay(terminal.stream);
  display.onStart({ name: 'big.iso', from: 1 * MiB, total: 4 * MiB });
  display.onProgress({ name: 'big.iso', done: 2 * MiB, total: 4 * MiB, transferred: 1 * MiB });
  display.notice('ferry: connection to the server lost, reconnecting now');
  display.onProgress({ name: 'big.iso', done: 4 * MiB, total: 4 * MiB, transferred: 3 * MiB });
  display.stop();
  const drawn = terminal.written();
  t.match(drawn, /^resuming big\.iso from 1 MiB \(25%\)\n/u, 'a resume says so before the bar starts');
  t.match(drawn, /reconnecting now\n/u, 'the notice, on its own line');
  t.ok(drawn.indexOf('reconnecting now') < drawn.lastIndexOf('100%'), 'and the bar drawn again below it');
  t.match(drawn, /big\.iso \[=+\] 100%/u, 'the last state stays on screen');

  const pipe = Object.assign(new PassThrough(), { isTTY: false });
  let written = '';
  pipe.on('data', (data: Buffer) => (written += data.toString()));
  const plain = new TransferDisplay(pipe);
  plain.onStart({ name: 'big.iso', from: 2 * MiB, total: 4 * MiB });
  plain.onProgress({ name: 'big.iso', done: 4 * MiB, total: 4 * MiB, transferred: 2 * MiB });
  plain.notice('ferry: stalled, reconnecting in 1s');
  plain.stop();
  t.equal(written, 'resuming big.iso from 2 MiB (50%)\nferry: stalled, reconnecting in 1s\n', 'plain lines, no bar');
  t.end();
});

t.test('the rate follows the last few seconds, not the whole run', (t) => {
  const meter = new RateMeter();
  t.equal(meter.rate(), undefined, 'nothing measured');
  meter.add(0, 0);
  meter.add(100 * MiB, 10_000); // 10 MiB/s for 10 s
  meter.add(101 * MiB, 20_000); // then 0.1 MiB/s for 10 s
  t.ok(meter.rate(20_000)! < 1 * MiB, `recent: ${meter.rate(20_000)}`);

  const stalled = new RateMeter();
  stalled.add(0, 0);
  stalled.add(9 * MiB, 100); // the socket buffers filled at once, then nothing moves
  t.equal(stalled.rate(150), undefined, 'unknown for the first 200 ms');
  t.equal(stalled.rate(1000), 9 * MiB, 'then known, with no further sample: 9 MiB over 1 s');
  t.ok(stalled.rate(4000)! < 3 * MiB, `falling as the stall goes on: ${stalled.rate(4000)}`);
  t.equal(stalled.rate(5200), 0, 'and 0 once the burst is older than the window');
  stalled.add(10 * MiB, 6000);
  t.equal(stalled.rate(6000), (1 * MiB * 1000) / (6000 - 100), 'moving again: measured from the last sample before the window');
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
    readIntoFixedBuffer(
      socket,
      () => {},
      (own) => own,
    ),
    socket,
  );
  socket.destroy();
  t.end();
});

t.test('the shell expands * and ? in the local paths of put, as a shell would', async (t) => {
  const dir = t.testdir({ 'a.log': 'a', 'b.log': 'b', 'ab.log': 'ab', '.hidden.log': 'h', 'c.txt': 'c' });
  t.same(await expandLine(`put ${dir}/*.log --as-dir logs`), ['put', `${dir}/a.log`, `${dir}/ab.log`, `${dir}/b.log`, '--as-dir', 'logs']);
  t.same(await expandLine(`upload ${dir}/?.log`), ['upload', `${dir}/a.log`, `${dir}/b.log`], '? is one character');
  t.same(await expandLine(`put ${dir}/.*.log`), ['put', `${dir}/.hidden.log`], 'a leading dot is matched only when written');
  t.same(await expandLine(`put '${dir}/*.log'`), ['put', `${dir}/*.log`], 'quoted: as it is');
  await t.rejects(expandLine(`put ${dir}/*.zip`), { code: 'ENOENT', message: `no local files match ${dir}/*.zip` });
  await t.rejects(expandLine('get logs/*'), { code: 'EUSAGE' }, 'names on the server are not expanded');
  await t.rejects(expandLine('put x | y'), /unsupported shell syntax/u);
});

t.test('wide characters count as the columns they take', (t) => {
  const fields = { name: '写真アルバム-二〇二六年-家族旅行-北海道-動画と写真.zip', done: 5 * MiB, total: 20 * MiB, rate: 2 * MiB };
  for (const columns of [60, 80, 100]) {
    const line = progressLine(fields, columns);
    t.ok(displayWidth(line) <= columns - 1, `${columns} columns: ${displayWidth(line)} wide`);
    t.match(line, /25% +5 MiB\/20 MiB/u);
  }
  t.equal(displayWidth(shortenMiddle('写真アルバム.zip', 9)), 9, 'shortened to the columns asked for');
  t.end();
});

t.test('completion quotes words so the shell reads each back as one plain word, wildcards included', async (t) => {
  for (const word of ['a*b', 'report?.txt', "it's", 'my file', "a'*b", 'plain.txt']) {
    t.same(await expandLine(`stat ${quoteWord(word)}`), ['stat', word], `${word} -> ${quoteWord(word)}`);
  }
  t.equal(quoteWord('~/x'), '~/x', 'a leading ~/ stays as it is');
  t.same(await expandLine('put ~/x --as ~/y'), ['put', `${homedir()}/x`, '--as', '~/y'], '~/ is home in a local path, not in a name');
  t.same(await expandLine('get a --out ~/d/'), ['get', 'a', '--out', `${homedir()}/d/`]);
});
