/**
 * What a person sees in a real terminal (tmux, 80 columns unless a test says otherwise): the
 * progress line, notices over it, resizes, Ctrl-C, and the interactive shell's keys. Screens are
 * saved under artifacts/screens/.
 */
import { once } from 'node:events';
import { mkdir, readFile, stat, symlink } from 'node:fs/promises';
import { type AddressInfo, type Socket, createServer } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { startCutProxy } from './helpers/cut-proxy.js';
import { makeFile } from './helpers/files.js';
import { startServer } from './helpers/server.js';
import { tempDir } from './helpers/temp-dir.js';
import { Terminal, needsTmux } from './helpers/terminal.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const longName = 'a-rather-long-name-for-a-disk-image-of-the-build-machine.iso';

/** Rows of the screen that hold a progress line. */
const barRows = (rows: string[]): string[] => rows.filter((row) => /\d+%/u.test(row) && /ETA/u.test(row));

t.test('an upload cut mid-way says so over its progress line, resumes, and every line fits 80 columns', needsTmux, async (t) => {
  const running = await startServer(t, { chunkSizeBytes: 256 * KiB });
  const proxy = await startCutProxy(t, running.port);
  const dir = tempDir(t);
  const local = await makeFile(dir, longName, 24 * MiB);
  const cut = proxy.cutAfter(9 * MiB, 'up');
  const terminal = await Terminal.ferry(t, ['upload', longName, '--server', `127.0.0.1:${proxy.port}`], { cwd: dir });
  t.equal(await terminal.exitCode(), 0);
  await cut;
  const rows = await terminal.save('upload-cut-and-resumed-80');
  const text = rows.join('\n');
  t.match(text, /^ferry: connection to the server lost, reconnecting now \(retry 1 of 20\)$/mu, 'the reconnect, on a line of its own');
  t.match(
    text,
    /^resuming a-rather-long-name-for-a-disk-image-of-the-build-machine\.iso from \d+(\.\d)? MiB \(\d+%\)$/mu,
    'where it resumes',
  );
  const bars = barRows(rows);
  t.equal(bars.length, 1, `one progress line is left on screen, the last: ${JSON.stringify(bars)}`);
  t.match(
    bars[0],
    /^a-rat.*….*\.iso \[=+\] 100% +24 MiB\/24 MiB +[\d.]+ [KMG]?i?B\/s {2}ETA 0s$/u,
    'name shortened in the middle, bar, numbers',
  );
  t.ok(bars[0]!.length < 80, `the line fits: ${bars[0]!.length} characters`);
  t.match(text, /^uploaded a-rather-long-name.*: 24 MiB, sha256 /mu, 'the result follows');
  t.ok(rows.indexOf(bars[0]!) < rows.findIndex((row) => row.startsWith('uploaded ')), 'below the finished progress line');
  t.equal((await running.client().stat(longName)).sha256, local.sha256);
});

t.test('the progress line follows resizes, --json keeps it on stderr, and Ctrl-C cancels: the rerun resumes', needsTmux, async (t) => {
  const running = await startServer(t, { chunkSizeBytes: 256 * KiB });
  const proxy = await startCutProxy(t, running.port);
  const dir = tempDir(t);
  // Larger than what the sockets can hold once the proxy freezes: the proxy's receive buffer alone
  // may grow to tcp_rmem's maximum (32 MiB here), and a 16 MiB file once fitted whole, its bar at 100%.
  const fileBytes = 64 * MiB;
  await makeFile(dir, longName, fileBytes);
  const server = ['--server', `127.0.0.1:${proxy.port}`];
  const frozen = proxy.freezeAfter(5 * MiB, 'up');
  const terminal = await Terminal.ferry(t, ['upload', longName, '--stall-timeout', '5m', '--json', ...server], {
    cwd: dir,
    stdoutTo: join(dir, 'result.json'),
  });
  await frozen;
  let rows = await terminal.waitFor(/\[=*-+\] +\d+%/u);
  t.match(barRows(rows)[0], /^a-rat.*….*\.iso \[/u, '80 columns: a shortened name and a bar');

  await terminal.resize(60);
  await terminal.waitFor(/^.{1,59}$/mu);
  rows = await terminal.save('progress-60-columns');
  let bars = barRows(rows);
  t.equal(bars.length, 1, `one progress line, nothing left of the wider one: ${JSON.stringify(rows)}`);
  t.ok(bars[0]!.length < 60, `it fits 60 columns: ${bars[0]}`);
  // The rate column says `--` once the frozen upload's rate window has run out (a loaded machine
  // may get there before the resize): a stall has no rate, and the column keeps its place.
  t.match(bars[0], /\d+% +[\d.]+ MiB\/64 MiB +(?:[\d.]+|--) [KMG]?i?B\/s {2}ETA /u, 'percent, bytes, rate and ETA still show');

  await terminal.resize(140);
  await terminal.waitFor(/a-rather-long-name-for-a-disk-image-of-the-build-machine\.iso \[/u);
  bars = barRows(await terminal.save('progress-140-columns'));
  t.equal(bars.length, 1, 'one progress line after widening');

  await terminal.keys('C-c');
  t.equal(await terminal.exitCode(), 130, 'Ctrl-C: exit 130');
  rows = await terminal.save('upload-cancelled');
  t.match(rows.join('\n'), /^ferry: cancelled: run the same command again to resume \(ECANCELED\)$/mu);
  t.equal(await readFile(join(dir, 'result.json'), 'utf8'), '', 'nothing on stdout: the command failed');

  const rerun = await Terminal.ferry(t, ['upload', longName, '--json', ...server], { cwd: dir, stdoutTo: join(dir, 'result.json') });
  t.equal(await rerun.exitCode(), 0);
  rows = await rerun.save('upload-resumed-after-cancel');
  t.match(rows.join('\n'), /^resuming a-rather-long.* from \d+(\.\d)? MiB \(\d+%\)$/mu, 'the rerun resumes');
  t.match(barRows(rows)[0], /100%/u, 'with --json the progress line is on the terminal');
  const result = JSON.parse(await readFile(join(dir, 'result.json'), 'utf8')) as { resumed: boolean; bytesSent: number };
  t.equal(result.resumed, true, 'stdout holds only the JSON result');
  t.ok(result.bytesSent < fileBytes, `only what was missing was sent (${result.bytesSent} bytes)`);
});

t.test(
  'the shell: help, Tab completion with quoting, Ctrl-C cancels a transfer and clears a line, history, leaving',
  needsTmux,
  async (t) => {
    const running = await startServer(t, { chunkSizeBytes: 256 * KiB });
    const proxy = await startCutProxy(t, running.port);
    const dir = tempDir(t);
    const state = tempDir(t, 'ferry-state');
    await makeFile(dir, 'my file.txt', 10 * KiB);
    await makeFile(dir, 'big.bin', 16 * MiB);
    const shell = ['shell', '--server', `127.0.0.1:${proxy.port}`];
    const env = { XDG_STATE_HOME: state };
    const terminal = await Terminal.ferry(t, shell, { cwd: dir, env });
    await terminal.waitFor(/^ferry>$/mu);

    await terminal.type('help');
    await terminal.keys('Enter');
    let rows = await terminal.waitFor(/Tab completes/u);
    const help = rows.join('\n');
    t.match(help, /^Commands at the ferry> prompt/mu, 'help speaks of the shell');
    t.match(help, /^ {2}quit, exit +leave the shell/mu, 'and says how to leave');
    t.notMatch(help, /--version|Usage: program/u, 'and offers nothing that does not apply');
    t.ok(
      rows.every((row) => row.length <= 80),
      'every line of it fits 80 columns',
    );
    await terminal.keys('C-l');

    // Tab completes a local path with a space in it, quoted so the line parses back as one word.
    await terminal.type('put my');
    await terminal.waitFor(/ferry> put my$/mu);
    await terminal.keys('Tab');
    await terminal.waitFor(/ferry> put 'my file\.txt'$/mu);
    await terminal.keys('Enter');
    await terminal.waitFor(/^uploaded my file\.txt: 10 KiB/mu);
    // And a name on the server.
    await terminal.type('stat my');
    await terminal.waitFor(/ferry> stat my$/mu);
    await terminal.keys('Tab');
    await terminal.waitFor(/ferry> stat 'my file\.txt'$/mu);
    await terminal.keys('Enter');
    await terminal.waitFor(/^size: +10 KiB/mu);
    await terminal.keys('C-l');

    // Ctrl-C during a transfer that is stuck: cancelled, resumable, back at the prompt.
    const frozen = proxy.freezeAfter(4 * MiB, 'up');
    await terminal.type('put big.bin --stall-timeout 5m');
    await terminal.keys('Enter');
    await frozen;
    // The bar may be full: what the proxy froze can all sit in socket buffers (as in the batch test).
    await terminal.waitFor(/big\.bin \[[=-]+\] +\d+%/u);
    await terminal.keys('C-c');
    await terminal.waitFor(/cancelled: run the same command again to resume \(ECANCELED\)\nferry>$/u);
    await terminal.save('shell-transfer-cancelled');
    await terminal.keys('C-l');
    await terminal.type('put big.bin');
    await terminal.keys('Enter');
    // The prompt comes after the result line: wait for both, or the screen may be read in between.
    rows = await terminal.waitFor(/^uploaded big\.bin: 16 MiB[^\n]*resumed[^\n]*\nferry>$/mu);
    t.match(rows.join('\n'), /^resuming big\.bin from \d+(\.\d)? MiB \(\d+%\)$/mu, 'the same command resumed it');
    t.equal(barRows(rows).length, 1, 'one progress line on screen, no bar left below the prompt');
    t.match(rows.at(-1), /^ferry>$/u, 'the prompt last');

    // Ctrl-C also ends a request that waits on a link gone quiet, and the next command reconnects.
    const quiet = proxy.freezeAfter(0, 'down');
    await terminal.type('ls');
    await terminal.keys('Enter');
    await quiet;
    await terminal.keys('C-c');
    await terminal.waitFor(/^(\^C)?ferry: cancelled \(ECANCELED\)\nferry>$/mu); // the terminal echoes ^C
    await terminal.keys('C-l');
    await terminal.type('ls big');
    await terminal.keys('Enter');
    await terminal.waitFor(/ big\.bin\nferry>$/u);

    // Ctrl-C on a line being typed drops it; twice at an empty prompt leaves.
    await terminal.type('ls zz');
    await terminal.waitFor(/ferry> ls zz$/mu);
    await terminal.keys('C-c');
    await terminal.waitFor(/^ferry> ls zz\^C\nferry>$/mu);
    await terminal.keys('C-c');
    await terminal.waitFor(/Ctrl-C again or Ctrl-D to leave\)\nferry>$/u);
    await terminal.keys('C-c');
    t.equal(await terminal.exitCode(), 0, 'a second Ctrl-C at the prompt leaves');
    await terminal.save('shell-session');

    const history = join(state, 'ferry', 'history');
    t.equal((await stat(history)).mode & 0o777, 0o600, 'history is kept, readable by its owner only');
    t.match(await readFile(history, 'utf8'), /^put big\.bin\n/mu);

    const again = await Terminal.ferry(t, shell, { cwd: dir, env });
    await again.waitFor(/^ferry>$/mu);
    await again.keys('Up');
    await again.waitFor(/^ferry> ls big$/mu); // the last command of the previous session
    await again.keys('C-u', 'C-d');
    t.equal(await again.exitCode(), 0, 'Ctrl-D leaves');
    t.match((await again.screen()).join('\n'), /^ferry>\n\[exit 0\]$/mu, 'on a fresh line');
  },
);

t.test(
  'a folder upload shows one progress line for the tree: files done of the total, bytes, and a line per skipped link',
  needsTmux,
  async (t) => {
    const running = await startServer(t, { chunkSizeBytes: 256 * KiB });
    // Slow enough that the line is seen mid-way (20 MiB: about five seconds).
    const proxy = await startCutProxy(t, running.port, { bytesPerSecond: 4 * MiB });
    const dir = tempDir(t);
    const root = join(dir, 'photos');
    await mkdir(join(root, '2026'), { recursive: true });
    for (let index = 0; index < 20; index += 1) await makeFile(root, `2026/img-${index}.jpg`, MiB);
    await symlink('2026/img-0.jpg', join(root, 'latest.jpg'));
    const terminal = await Terminal.ferry(t, ['upload', '-r', 'photos', '--compress', 'off', '--server', `127.0.0.1:${proxy.port}`], {
      cwd: dir,
    });
    const during = barRows(await terminal.waitFor(/\d+%.*ETA/u));
    t.equal(during.length, 1, `one progress line while it runs: ${JSON.stringify(during)}`);
    t.match(
      during[0],
      /^\[(\d|1\d)\/20\] 2026\/.*\.jpg \[[=-]+\] +\d+% +[\d.]+ [KM]iB\/20 MiB /u,
      'files done of 20, the file under the folder, bytes of 20 MiB',
    );
    t.equal(await terminal.exitCode(), 0);
    const rows = await terminal.save('upload-folder-80');
    const text = rows.join('\n');
    t.match(text, /^ferry: skipped .*latest\.jpg: a symbolic link/mu, 'the link skipped, on a line of its own');
    t.notMatch(text, /Warning/u, 'and nothing else: no warning from Node (20 uploads watching one socket once made one)');
    const bars = barRows(rows);
    t.equal(bars.length, 1, `one progress line is left, the last: ${JSON.stringify(bars)}`);
    t.match(bars[0], /^\[20\/20\] 2026\/.*\[=+\] 100% +20 MiB\/20 MiB /u, 'every file done');
    t.ok(bars[0]!.length < 80, `the line fits: ${bars[0]!.length} characters`);
    t.match(text, /^uploaded .*photos.*: 20 of 20 files \(20 uploaded, 0 unchanged\), 20 MiB, 20 MiB moved/mu, 'the summary follows');
  },
);

t.test('download --out - does not write a file to a terminal', needsTmux, async (t) => {
  const running = await startServer(t, { chunkSizeBytes: 256 * KiB });
  const terminal = await Terminal.ferry(t, ['download', 'any.bin', '--out', '-', '--server', `127.0.0.1:${running.port}`]);
  t.equal(await terminal.exitCode(), 2);
  t.match(
    (await terminal.screen()).join('\n'),
    /^ferry: refusing to write any\.bin to a terminal: redirect standard output, or use --out FILE \(EUSAGE\)$/mu,
  );
});

t.test('Ctrl-C stops a batch: the files not yet started count as cancelled, not as done', needsTmux, async (t) => {
  const running = await startServer(t, { chunkSizeBytes: 256 * KiB });
  const proxy = await startCutProxy(t, running.port);
  const dir = tempDir(t);
  await Promise.all(['one.bin', 'two.bin', 'three.bin'].map((name) => makeFile(dir, name, 8 * MiB)));
  const frozen = proxy.freezeAfter(3 * MiB, 'up');
  const terminal = await Terminal.ferry(
    t,
    ['upload', 'one.bin', 'two.bin', 'three.bin', '--stall-timeout', '5m', '--server', `127.0.0.1:${proxy.port}`],
    { cwd: dir },
  );
  await frozen;
  // The frozen proxy still takes what the client sends (and drops it): the bar may reach 100%
  // while one.bin waits for its putEnd reply. Either way one.bin has begun and is not done.
  await terminal.waitFor(/one\.bin \[[=-]+\]/u);
  await terminal.keys('C-c');
  t.equal(await terminal.exitCode(), 130);
  const screen = (await terminal.save('batch-cancelled')).join('\n');
  t.match(screen, /^ferry: two\.bin: cancelled before it started \(ECANCELED\)$/mu);
  t.match(screen, /^ferry: 0 of 3 files uploaded; failed: one\.bin, two\.bin, three\.bin \(ECANCELED\)$/mu);
});

t.test('Ctrl-C while connecting to a server that does not answer ends at once', needsTmux, async (t) => {
  const silent = createServer();
  const accepted = once(silent, 'connection');
  silent.listen(0, '127.0.0.1');
  await once(silent, 'listening');
  const sockets: Socket[] = [];
  silent.on('connection', (socket: Socket) => sockets.push(socket));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    silent.close();
  });
  const dir = tempDir(t);
  await makeFile(dir, 'file.bin', 1024);
  const terminal = await Terminal.ferry(t, ['upload', 'file.bin', '--server', `127.0.0.1:${(silent.address() as AddressInfo).port}`], {
    cwd: dir,
  });
  await accepted;
  const pressed = Date.now();
  await terminal.keys('C-c');
  // Well under the 10 s handshake timeout, with room for a loaded machine's slow exit.
  t.equal(await terminal.exitCode(8000), 130, 'cancelled, not left waiting for the 10 s handshake timeout');
  t.ok(Date.now() - pressed < 8000, `${Date.now() - pressed} ms after Ctrl-C`);
});
