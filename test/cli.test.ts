/**
 * End-to-end tests of the `ferry` command line: the compiled CLI (bin/ferry.js -> dist/) is spawned
 * with pipes (so never a TTY) against a real in-process server, and only what a script sees is
 * checked: exit codes, stdout (one JSON document with --json), stderr (one `ferry: ... (CODE)`
 * line on failure, nothing on success), and the files that end up on either side.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, constants, openSync } from 'node:fs';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { type AddressInfo, Socket, createServer as createNetServer } from 'node:net';
import { join, resolve } from 'node:path';
import t, { type Test } from 'tap';
import { makeFile, sha256Of } from './helpers/files.js';
import { startServer } from './helpers/server.js';
import { ferryBin } from './helpers/server-process.js';
import { tempDir } from './helpers/temp-dir.js';

const KiB = 1024;
const MiB = 1024 * KiB;
/** Upper bound for one CLI run; a run that takes longer is killed by its PID and reported. */
const runTimeoutMs = 20_000;

const packageVersion = (JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** True when the run outlived its timeout and was killed. */
  timedOut: boolean;
}

interface RunOptions {
  /** Variables added to the environment (FERRY_SERVER is never inherited from ours). */
  env?: Record<string, string>;
  cwd?: string;
  timeoutMs?: number;
}

/**
 * The environment of a CLI run. Under tap, NODE_OPTIONS carries tap's process-info loader, which
 * adds about half a second to every node start; these tests start node some fifty times, so the
 * children go without it (and so without tap's coverage of them).
 */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  if (!('FERRY_SERVER' in extra)) delete env['FERRY_SERVER'];
  const nodeOptions = (env['NODE_OPTIONS'] ?? '')
    .split(/\s+/u)
    .filter((option) => option !== '' && !option.includes('@tapjs/processinfo'))
    .join(' ');
  if (nodeOptions === '') delete env['NODE_OPTIONS'];
  else env['NODE_OPTIONS'] = nodeOptions;
  return env;
}

/** Kills `child` by its PID after `timeoutMs`; returns a function that cancels the timer. */
function killAfter(child: ChildProcess, timeoutMs: number, onKill: () => void): () => void {
  const timer = setTimeout(() => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      onKill();
      process.kill(child.pid, 'SIGKILL');
    }
  }, timeoutMs);
  return () => clearTimeout(timer);
}

/** Runs `node bin/ferry.js ...args` with stdin closed and stdout/stderr as pipes; never a shell. */
function ferry(args: string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [ferryBin, ...args], {
      cwd: options.cwd ?? process.cwd(),
      env: childEnv(options.env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    const cancel = killAfter(child, options.timeoutMs ?? runTimeoutMs, () => (timedOut = true));
    child.on('error', (error) => {
      cancel();
      reject(error);
    });
    child.on('close', (code, signal) => {
      cancel();
      resolvePromise({ code, signal, stdout, stderr, timedOut });
    });
  });
}

function describe(result: RunResult): string {
  return `exit ${result.code}${result.signal ? ` (${result.signal})` : ''}${result.timedOut ? ' after a timeout' : ''}; stdout ${JSON.stringify(result.stdout.slice(0, 400))}; stderr ${JSON.stringify(result.stderr.slice(0, 400))}`;
}

/** Success with --json: exit 0, nothing on stderr, and stdout is exactly one JSON document. */
function jsonOf<T = unknown>(t: Test, result: RunResult): T {
  t.equal(result.code, 0, `exit 0 (${describe(result)})`);
  t.equal(result.stderr, '', 'nothing on stderr');
  try {
    return JSON.parse(result.stdout) as T;
  } catch (error) {
    t.fail(`stdout is one JSON document: ${(error as Error).message}; ${describe(result)}`);
    return undefined as T;
  }
}

/** An operation failure: exit 1, nothing on stdout, and one line `ferry: <message> (<code>)` on stderr. */
function assertFailed(t: Test, result: RunResult, code: string, line?: string): void {
  t.equal(result.code, 1, `exit 1 (${describe(result)})`);
  t.equal(result.stdout, '', 'nothing on stdout');
  const lines = result.stderr.split('\n');
  t.equal(lines.at(-1), '', 'stderr ends with a newline');
  t.equal(lines.length, 2, 'exactly one line on stderr');
  t.match(lines[0], new RegExp(`^ferry: \\S.* \\(${code}\\)$`, 'u'), `the line is "ferry: <message> (${code})"`);
  if (line !== undefined) t.equal(lines[0], line);
}

/** A usage error: exit 2, nothing on stdout, and something said on stderr. */
function assertUsage(t: Test, result: RunResult, says?: RegExp): void {
  t.equal(result.code, 2, `exit 2 (${describe(result)})`);
  t.equal(result.stdout, '', 'nothing on stdout');
  t.not(result.stderr.trim(), '', 'the usage error is explained on stderr');
  if (says) t.match(result.stderr, says);
}

/** A port on 127.0.0.1 that was just listening and is now closed. */
async function closedPort(): Promise<number> {
  const server = createNetServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((done) => server.close(() => done()));
  return port;
}

const isoTime = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$/u;

t.test('--json results, and an upload/download round trip that is byte-exact', async (t) => {
  const chunkSizeBytes = 256 * KiB;
  const running = await startServer(t, { chunkSizeBytes });
  const server = ['--server', `127.0.0.1:${running.port}`];
  const dir = tempDir(t, 'ferry-cli');
  const local = await makeFile(dir, 'data.bin', 3 * MiB + 17);
  const empty = await makeFile(dir, 'empty.bin', 0);

  t.test('list --json of an empty server is []', async (t) => {
    t.same(jsonOf(t, await ferry(['list', ...server, '--json'])), []);
  });

  t.test('upload --json prints {name,size,sha256,bytesSent,resumed}', async (t) => {
    const [big, zero] = await Promise.all([
      ferry(['upload', local.path, ...server, '--json']),
      ferry(['upload', empty.path, ...server, '--json']),
    ]);
    t.strictSame(jsonOf(t, big), {
      name: 'data.bin',
      size: local.bytes.length,
      sha256: local.sha256,
      bytesSent: local.bytes.length,
      resumed: false,
    });
    t.strictSame(jsonOf(t, zero), { name: 'empty.bin', size: 0, sha256: empty.sha256, bytesSent: 0, resumed: false });
  });

  t.test('list --json is an array of {name,size,sha256,modified}', async (t) => {
    const files = jsonOf<{ name: string; size: number; sha256: string; modified: string }[]>(t, await ferry(['list', ...server, '--json']));
    t.ok(Array.isArray(files), 'an array');
    t.same(
      files.map((file) => Object.keys(file).sort()),
      [
        ['modified', 'name', 'sha256', 'size'],
        ['modified', 'name', 'sha256', 'size'],
      ],
      'each entry has exactly name, size, sha256, modified',
    );
    const byName = new Map(files.map((file) => [file.name, file]));
    t.match(byName.get('data.bin'), { size: local.bytes.length, sha256: local.sha256 });
    t.match(byName.get('empty.bin'), { size: 0, sha256: empty.sha256 });
    for (const file of files) {
      t.match(file.modified, isoTime, `${file.name}: modified is an ISO 8601 time`);
      t.equal(new Date(file.modified).toISOString(), file.modified, `${file.name}: modified parses back to itself`);
    }
    t.same(
      jsonOf(t, await ferry(['list', 'data', ...server, '--json'])),
      [byName.get('data.bin')],
      'list <prefix> keeps only matching names',
    );
  });

  t.test('stat --json: the sha256 is what sha256sum computes for the local file', async (t) => {
    const info = jsonOf<Record<string, unknown>>(t, await ferry(['stat', 'data.bin', ...server, '--json']));
    t.equal(info['sha256'], await sha256Of(local.path), 'sha256 equals node:crypto over the local file');
    t.match(info, {
      name: 'data.bin',
      size: local.bytes.length,
      chunkSize: chunkSizeBytes,
      chunkCount: Math.ceil(local.bytes.length / chunkSizeBytes),
      created: isoTime,
      modified: isoTime,
    });
  });

  t.test('download --out --json prints {name,path,size,sha256,bytesReceived,resumed}; the copy is byte-identical', async (t) => {
    const out = join(dir, 'copy.bin');
    const emptyOut = join(dir, 'copy-empty.bin');
    const [big, zero] = await Promise.all([
      ferry(['download', 'data.bin', '--out', out, ...server, '--json']),
      ferry(['download', 'empty.bin', '--out', emptyOut, ...server, '--json']),
    ]);
    t.strictSame(jsonOf(t, big), {
      name: 'data.bin',
      path: resolve(out),
      size: local.bytes.length,
      sha256: local.sha256,
      bytesReceived: local.bytes.length,
      resumed: false,
    });
    t.strictSame(jsonOf(t, zero), {
      name: 'empty.bin',
      path: resolve(emptyOut),
      size: 0,
      sha256: empty.sha256,
      bytesReceived: 0,
      resumed: false,
    });
    t.equal(await sha256Of(out), local.sha256, 'downloaded bytes are exact');
    t.equal(await sha256Of(emptyOut), empty.sha256, 'the empty file is empty');
    t.same(
      (await readdir(dir)).filter((name) => name.includes('.ferry-part')),
      [],
      'no partial files are left behind',
    );
  });

  t.test('info --json', async (t) => {
    const info = jsonOf<Record<string, unknown>>(t, await ferry(['info', ...server, '--json']));
    t.match(info, {
      version: packageVersion,
      protocolVersion: Number,
      chunkSize: chunkSizeBytes,
      files: 2,
      bytes: local.bytes.length,
      clients: Number,
      workers: Number,
      uptimeSeconds: Number,
      capabilities: Array,
    });
    t.ok((info['clients'] as number) >= 1, 'counts itself as a client');
    t.ok((info['uptimeSeconds'] as number) >= 0);
    t.ok(
      (info['capabilities'] as unknown[]).every((capability) => typeof capability === 'string'),
      'capabilities are strings',
    );
  });

  t.test('log --json --limit N: newest first, at most N entries', async (t) => {
    const [one, many] = await Promise.all([
      ferry(['log', ...server, '--json', '--limit', '1']),
      ferry(['log', '--limit', '3', ...server, '--json']),
    ]);
    const latest = jsonOf<Record<string, unknown>[]>(t, one);
    const entries = jsonOf<Record<string, unknown>[]>(t, many);
    t.equal(latest.length, 1, '--limit 1 gives one entry');
    t.equal(entries.length, 3, '--limit 3 gives three of the four transfers');
    for (const entry of entries) {
      t.strictSame(Object.keys(entry).sort(), ['bytes', 'client', 'durationMs', 'name', 'op', 'result', 'time'].sort(), 'entry fields');
      t.match(entry, {
        time: isoTime,
        client: String,
        op: /^(upload|download|delete)$/u,
        name: String,
        bytes: Number,
        durationMs: Number,
        result: String,
      });
    }
    const times = entries.map((entry) => Date.parse(entry['time'] as string));
    t.same(
      times,
      [...times].sort((a, b) => b - a),
      'newest first',
    );
    t.same(latest[0], entries[0], 'the first entry is the latest transfer');
    t.same(
      entries.map((entry) => [entry['op'], entry['result']]),
      [
        ['download', 'ok'],
        ['download', 'ok'],
        ['upload', 'ok'],
      ],
      'the two downloads, then an upload',
    );
    const download = entries.find((entry) => entry['name'] === 'data.bin' && entry['op'] === 'download');
    t.match(download, { bytes: local.bytes.length, result: 'ok' }, 'the download of data.bin is logged with its bytes');
  });

  t.test('delete --json, then the name is gone', async (t) => {
    t.strictSame(jsonOf(t, await ferry(['delete', 'empty.bin', ...server, '--json'])), { name: 'empty.bin', deleted: true });
    assertFailed(t, await ferry(['stat', 'empty.bin', ...server, '--json']), 'ENOENT', 'ferry: empty.bin: not found (ENOENT)');
  });
});

t.test('aliases, --as, --force, refusals to overwrite, and quiet stderr', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: 256 * KiB });
  const server = ['--server', `127.0.0.1:${running.port}`];
  const dir = tempDir(t, 'ferry-cli');
  const first = await makeFile(dir, 'first.bin', 2 * MiB + 3);
  const second = await makeFile(dir, 'second.bin', 40 * KiB);
  const remote = 'dir/sub/x.bin';

  t.test('put --as NAME uploads under that name; ls shows it; no progress output on a pipe', async (t) => {
    const up = await ferry(['put', first.path, '--as', remote, ...server]);
    t.equal(up.code, 0, describe(up));
    t.equal(up.stderr, '', 'a successful upload prints nothing on stderr (no progress bar when not a TTY)');
    t.match(
      up.stdout,
      new RegExp(`^uploaded ${remote}: ${first.bytes.length} bytes, sha256 ${first.sha256}`, 'u'),
      'one result line on stdout',
    );
    t.equal(up.stdout.split('\n').length, 2, 'exactly one line on stdout');
    const listed = await ferry(['ls', ...server]);
    t.equal(listed.code, 0, describe(listed));
    t.equal(listed.stderr, '');
    t.match(listed.stdout, remote, 'ls lists the --as name');
    t.notMatch(listed.stdout, 'first.bin', 'the local file name is not used');
    const stat = await running.client().stat(remote);
    t.equal(stat.sha256, first.sha256, 'the server holds the file under the --as name');
  });

  t.test('upload refuses an existing remote name (EEXIST) and leaves it alone; --force replaces it', async (t) => {
    const refused = await ferry(['upload', second.path, '--as', remote, ...server]);
    assertFailed(t, refused, 'EEXIST');
    const refusedJson = await ferry(['upload', second.path, '--as', remote, ...server, '--json']);
    assertFailed(t, refusedJson, 'EEXIST');
    t.equal((await running.client().stat(remote)).sha256, first.sha256, 'the stored file is unchanged');
    const forced = await ferry(['upload', second.path, '--as', remote, '--force', ...server, '--json']);
    t.match(jsonOf(t, forced), { name: remote, size: second.bytes.length, sha256: second.sha256 });
    t.equal((await running.client().stat(remote)).sha256, second.sha256, 'the stored file was replaced');
  });

  t.test('get without --out writes the last segment of the name in the current directory; nothing on stderr', async (t) => {
    const cwd = tempDir(t, 'ferry-cwd');
    const down = await ferry(['get', remote, ...server], { cwd });
    t.equal(down.code, 0, describe(down));
    t.equal(down.stderr, '', 'a successful download prints nothing on stderr (no progress bar when not a TTY)');
    t.match(down.stdout, /^downloaded dir\/sub\/x\.bin to .*x\.bin: 40960 bytes, sha256 [0-9a-f]{64}/u);
    t.same(await readdir(cwd), ['x.bin'], 'only the file, no partial files');
    t.equal(await sha256Of(join(cwd, 'x.bin')), second.sha256);
  });

  t.test('download refuses to overwrite a local file (EEXIST) and leaves it unchanged; --force overwrites', async (t) => {
    const out = join(dir, 'existing.bin');
    const precious = Buffer.from('do not touch\n');
    await writeFile(out, precious);
    assertFailed(t, await ferry(['download', remote, '--out', out, ...server]), 'EEXIST');
    assertFailed(t, await ferry(['get', remote, '--out', out, ...server, '--json']), 'EEXIST');
    t.same(await readFile(out), precious, 'the existing local file is unchanged');
    t.same(
      (await readdir(dir)).filter((name) => name.includes('.ferry-part')),
      [],
      'no partial files were started',
    );
    const forced = await ferry(['download', remote, '--out', out, '--force', ...server, '--json']);
    t.match(jsonOf(t, forced), { name: remote, path: resolve(out), size: second.bytes.length, sha256: second.sha256 });
    t.equal(await sha256Of(out), second.sha256, '--force replaced it with the remote file');
  });

  t.test('plain-text stat and info', async (t) => {
    const [stat, info] = await Promise.all([ferry(['stat', remote, ...server]), ferry(['info', ...server])]);
    t.equal(stat.code, 0, describe(stat));
    t.equal(stat.stderr, '');
    t.match(stat.stdout, `sha256:    ${second.sha256}`);
    t.equal(info.code, 0, describe(info));
    t.equal(info.stderr, '');
    t.match(info.stdout, `ferry ${packageVersion}`);
  });

  t.test('rm deletes', async (t) => {
    const removed = await ferry(['rm', remote, ...server]);
    t.equal(removed.code, 0, describe(removed));
    t.equal(removed.stderr, '');
    t.match(removed.stdout, `deleted ${remote}`);
    t.same(jsonOf(t, await ferry(['ls', ...server, '--json'])), [], 'nothing is left');
  });
});

t.test('failures: exit 1 with one line on stderr; usage errors: exit 2', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: 64 * KiB });
  const server = ['--server', `127.0.0.1:${running.port}`];
  const dir = tempDir(t, 'ferry-cli');
  const local = await makeFile(dir, 'file', 5 * KiB);

  t.test('a missing name is ENOENT, with or without --json', async (t) => {
    const [stat, statJson, del, get, put] = await Promise.all([
      ferry(['stat', 'nope.bin', ...server]),
      ferry(['stat', 'nope.bin', ...server, '--json']),
      ferry(['delete', 'nope.bin', ...server, '--json']),
      ferry(['download', 'nope.bin', '--out', join(dir, 'nope-copy.bin'), ...server]),
      ferry(['upload', join(dir, 'no-such-local-file'), ...server]),
    ]);
    assertFailed(t, stat, 'ENOENT', 'ferry: nope.bin: not found (ENOENT)');
    assertFailed(t, statJson, 'ENOENT', 'ferry: nope.bin: not found (ENOENT)');
    assertFailed(t, del, 'ENOENT');
    assertFailed(t, get, 'ENOENT');
    assertFailed(t, put, 'ENOENT');
    t.same((await readdir(dir)).sort(), ['file'], 'a failed download leaves nothing behind');
  });

  t.test('bad names are refused with EBADNAME', async (t) => {
    const runs = await Promise.all([
      ferry(['stat', '../etc/passwd', ...server]),
      ferry(['upload', local.path, '--as', '/abs', ...server]),
      ferry(['upload', local.path, '--as', 'a/../b', ...server, '--json']),
      ferry(['download', 'a/../../x', '--out', join(dir, 'x'), ...server]),
      ferry(['delete', '..', ...server]),
    ]);
    for (const run of runs) assertFailed(t, run, 'EBADNAME');
    t.same(await running.client().list(), [], 'nothing was stored');
    t.same((await readdir(dir)).sort(), ['file'], 'nothing was written locally');
  });

  t.test('a server that is not listening is ECONNECT', async (t) => {
    const dead = ['--server', `127.0.0.1:${await closedPort()}`];
    const runs = await Promise.all([
      ferry(['stat', 'x', ...dead]),
      ferry(['list', ...dead, '--json']),
      ferry(['info', ...dead]),
      ferry(['upload', local.path, '--retries', '0', ...dead]),
      ferry(['download', 'file', '--out', join(dir, 'never'), '--retries', '0', ...dead, '--json']),
    ]);
    for (const run of runs) assertFailed(t, run, 'ECONNECT');
    t.same((await readdir(dir)).sort(), ['file'], 'a failed download leaves nothing behind');
  });

  t.test('usage errors exit 2', async (t) => {
    const cases: [string, string[], RegExp][] = [
      ['unknown command', ['bogus', ...server], /unknown command 'bogus'/u],
      ['missing argument to stat', ['stat', ...server], /missing required argument/u],
      ['missing argument to upload', ['upload', ...server], /missing required argument/u],
      ['missing argument to download', ['get', ...server], /missing required argument/u],
      ['unknown option', ['list', '--bogus', ...server], /unknown option '--bogus'/u],
      ['--limit abc', ['log', '--limit', 'abc', ...server], /abc/u],
      ['--limit 0', ['log', '--limit', '0', ...server, '--json'], /--limit/u],
      ['--retries abc', ['upload', local.path, '--retries', 'abc', ...server], /abc/u],
      ['too many arguments', ['stat', 'a', 'b', ...server], /too many arguments/u],
    ];
    const runs = await Promise.all(cases.map(([, args]) => ferry(args)));
    t.same(await running.client().list(), [], 'nothing was uploaded');
    for (const [index, [what, , says]] of cases.entries()) {
      void t.test(what, (t) => {
        assertUsage(t, runs[index]!, says);
        t.end();
      });
    }
  });

  t.test('an invalid --server address is a usage error that says what is wrong', async (t) => {
    const runs = await Promise.all([
      ferry(['list', '--server', '127.0.0.1:99999']),
      ferry(['stat', 'x', '--server', '127.0.0.1:abc', '--json']),
    ]);
    for (const run of runs) {
      t.equal(run.code, 2, `exit 2 (${describe(run)})`);
      t.equal(run.stdout, '', 'nothing on stdout');
      t.match(run.stderr, /server|99999|abc/u, 'the usage error is explained on stderr');
    }
  });
});

t.test('help and --version exit 0 and print on stdout', async (t) => {
  const [help, helpUpload, dashHelp, uploadHelp, version] = await Promise.all([
    ferry(['help']),
    ferry(['help', 'upload']),
    ferry(['--help']),
    ferry(['upload', '--help']),
    ferry(['--version']),
  ]);
  for (const [what, run] of [
    ['help', help],
    ['help upload', helpUpload],
    ['--help', dashHelp],
    ['upload --help', uploadHelp],
    ['--version', version],
  ] as const) {
    t.equal(run.code, 0, `${what}: exit 0 (${describe(run)})`);
    t.equal(run.stderr, '', `${what}: nothing on stderr`);
  }
  for (const run of [help, dashHelp]) {
    t.match(run.stdout, /^Usage: ferry /u);
    for (const command of ['list', 'upload', 'download', 'delete', 'stat', 'info', 'log', 'shell', 'help'])
      t.match(run.stdout, new RegExp(`\\b${command}\\b`, 'u'));
  }
  for (const run of [helpUpload, uploadHelp]) {
    t.match(run.stdout, /^Usage: ferry upload/u);
    t.match(run.stdout, '--as');
    t.match(run.stdout, '--force');
    t.match(run.stdout, '--server');
    t.match(run.stdout, '--json');
  }
  t.equal(version.stdout, `${packageVersion}\n`, '--version prints the package version');
});

/**
 * Runs the CLI with its stdout on a real pipe (a FIFO: a child's stdio pipes are socket pairs,
 * whose buffers hold far more) whose reader takes nothing for up to `holdMs` (or until the CLI
 * exits, if it does so first), then reads everything. A CLI that exits while its output waits
 * in a full pipe loses whatever did not fit the pipe's 64 KiB.
 */
async function ferryIntoSlowReader(
  t: Test,
  args: string[],
  holdMs: number,
): Promise<{ code: number | null; stdout: string; exitedWhileHeld: boolean }> {
  const fifo = join(tempDir(t, 'ferry-fifo'), 'stdout');
  execFileSync('mkfifo', [fifo]);
  const readerFd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  const writerFd = openSync(fifo, constants.O_WRONLY);
  const child = spawn(process.execPath, [ferryBin, ...args], { env: childEnv(), stdio: ['ignore', writerFd, 'ignore'] });
  closeSync(writerFd);
  const cancel = killAfter(child, runTimeoutMs, () => {});
  const exited = once(child, 'exit');
  let timer: NodeJS.Timeout | undefined;
  const held = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), holdMs);
  });
  const exitedWhileHeld = await Promise.race([exited.then(() => true), held]);
  clearTimeout(timer);
  const reader = new Socket({ fd: readerFd, readable: true, writable: false });
  let stdout = '';
  reader.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  await Promise.all([once(reader, 'end'), exited]);
  cancel();
  return { code: child.exitCode, stdout, exitedWhileHeld };
}

t.test('output longer than a pipe holds reaches a slow reader whole', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: 64 * KiB });
  const server = ['--server', `127.0.0.1:${running.port}`];
  const local = await makeFile(tempDir(t, 'ferry-cli'), 'tiny.bin', 10);
  const names = Array.from({ length: 400 }, (_, index) => `long/${String(index).padStart(4, '0')}-${'n'.repeat(220)}`);
  const clients = Array.from({ length: 4 }, () => running.client());
  await Promise.all(
    clients.map(async (client, which) => {
      for (let index = which; index < names.length; index += clients.length) await client.upload(local.path, { name: names[index]! });
    }),
  );
  await Promise.all(clients.map((client) => client.close()));

  const json = await ferryIntoSlowReader(t, ['list', '--json', ...server], 1500);
  t.ok(json.stdout.length > 128 * KiB, `more than two pipe buffers of output (${json.stdout.length} bytes)`);
  t.equal(json.code, 0);
  t.notOk(json.exitedWhileHeld, 'the CLI waits for its reader instead of exiting with output unwritten');
  let listed: { name: string }[] = [];
  try {
    listed = JSON.parse(json.stdout) as { name: string }[];
  } catch (error) {
    t.fail(`list --json is one JSON document (${(error as Error).message}; ${json.stdout.length} bytes)`);
  }
  t.same(
    listed.map((file) => file.name),
    names,
    'every file is listed',
  );

  const plain = await ferryIntoSlowReader(t, ['list', ...server], 1500);
  t.equal(plain.code, 0);
  t.equal(plain.stdout.trimEnd().split('\n').length, names.length, 'list prints every line');
  t.ok(plain.stdout.endsWith(`${names.at(-1)}\n`), 'down to the last one');
});

t.test('FERRY_SERVER works instead of --server', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: 64 * KiB });
  const live = `127.0.0.1:${running.port}`;
  const dead = `127.0.0.1:${await closedPort()}`;
  const local = await makeFile(tempDir(t, 'ferry-cli'), 'env.bin', 70 * KiB);

  const up = await ferry(['upload', local.path, '--json'], { env: { FERRY_SERVER: live } });
  t.match(jsonOf(t, up), { name: 'env.bin', sha256: local.sha256 }, 'upload goes to FERRY_SERVER');
  const [listed, override, deadEnv] = await Promise.all([
    ferry(['list', '--json'], { env: { FERRY_SERVER: live } }),
    ferry(['stat', 'env.bin', '--server', live, '--json'], { env: { FERRY_SERVER: dead } }),
    ferry(['stat', 'env.bin'], { env: { FERRY_SERVER: dead } }),
  ]);
  t.match(jsonOf(t, listed), [{ name: 'env.bin', sha256: local.sha256 }], 'list reads FERRY_SERVER');
  t.match(jsonOf(t, override), { name: 'env.bin', sha256: local.sha256 }, '--server wins over FERRY_SERVER');
  assertFailed(t, deadEnv, 'ECONNECT');
  t.match(deadEnv.stderr, dead, 'the FERRY_SERVER address is the one tried');
});

interface ShellRun {
  child: ChildProcess;
  /** Resolves once `pattern` has appeared on stderr; rejects if the shell exits first. */
  stderrShows(pattern: RegExp): Promise<void>;
  exited: Promise<RunResult>;
}

/** `ferry shell` with stdin, stdout and stderr as pipes; killed by its PID after `timeoutMs`. */
function startShell(t: Test, args: string[], options: RunOptions = {}): ShellRun {
  const child = spawn(process.execPath, [ferryBin, 'shell', ...args], {
    cwd: options.cwd ?? process.cwd(),
    env: childEnv(options.env),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let timedOut = false;
  const watchers = new Set<() => void>();
  child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => {
    stderr += text;
    for (const check of watchers) check();
  });
  child.stdin.on('error', () => {}); // EPIPE if it has died: reported by the exit status
  const cancel = killAfter(child, options.timeoutMs ?? runTimeoutMs, () => (timedOut = true));
  const exited = new Promise<RunResult>((resolvePromise, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      cancel();
      resolvePromise({ code, signal, stdout, stderr, timedOut });
    });
  });
  t.teardown(async () => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      process.kill(child.pid, 'SIGKILL');
      await exited.catch(() => {});
    }
  });
  return {
    child,
    exited,
    stderrShows(pattern) {
      return new Promise((resolvePromise, reject) => {
        const check = (): void => {
          if (!pattern.test(stderr)) return;
          watchers.delete(check);
          resolvePromise();
        };
        watchers.add(check);
        check();
        void exited.then((result) => reject(new Error(`the shell exited before printing ${pattern}: ${describe(result)}`)), reject);
      });
    },
  };
}

t.test('ferry shell', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: 64 * KiB });
  const address = `127.0.0.1:${running.port}`;
  const dir = tempDir(t, 'ferry-cli');
  const local = await makeFile(dir, 'shell.bin', 300 * KiB + 1);
  const greeting = new RegExp(`connected to 127\\.0\\.0\\.1:${running.port}\\b.*quit`, 'u');
  // Commands written before the shell has even started, with EOF right after, as
  // `printf 'stat nope\ninfo\n' | ferry shell` does. Started first so that its time limit runs
  // alongside the other shell tests; checked in the last one.
  const piped = startShell(t, ['--server', address], { timeoutMs: 8000 });
  piped.child.stdin!.end('stat nope\ninfo\n');

  t.test('runs commands, reports errors and goes on, and exits 0 after quit', async (t) => {
    const shell = startShell(t, ['--server', address], { cwd: dir });
    await shell.stderrShows(greeting);
    const lines = ['list', `upload ${local.path}`, 'list', 'stat shell.bin', 'stat nope', 'bogus', 'info', 'stat shell.bin --json', 'quit'];
    shell.child.stdin!.write(lines.map((line) => line + '\n').join(''));
    const result = await shell.exited;
    t.equal(result.code, 0, `exit 0 after quit (${describe(result)})`);
    t.match(result.stderr, greeting, 'the greeting is on stderr');
    t.notMatch(result.stdout, /connected to/u, 'and not on stdout');
    t.match(result.stderr, /^ferry: nope: not found \(ENOENT\)$/mu, 'stat nope prints the error');
    t.match(result.stderr, /unknown command 'bogus'/u, 'bogus prints a usage error');
    const out = result.stdout;
    const order = [
      out.indexOf('(no files)'),
      out.indexOf(`uploaded shell.bin: ${local.bytes.length} bytes, sha256 ${local.sha256}`),
      out.indexOf('  shell.bin\n'),
      out.indexOf(`sha256:    ${local.sha256}`),
      out.indexOf(`server:        ferry ${packageVersion}`),
      out.indexOf(`"sha256": "${local.sha256}"`),
    ];
    t.ok(
      order.every((at) => at >= 0),
      `every command printed its result (${JSON.stringify(order)}): ${out}`,
    );
    t.same(
      order,
      [...order].sort((a, b) => a - b),
      'in the order the commands were given',
    );
    t.equal((await running.client().stat('shell.bin')).sha256, local.sha256, 'the shell uploaded the file');
  });

  t.test('EOF on stdin ends the shell with exit 0', async (t) => {
    const shell = startShell(t, ['--server', address]);
    await shell.stderrShows(greeting);
    shell.child.stdin!.end('list\n');
    const result = await shell.exited;
    t.equal(result.code, 0, `exit 0 at EOF (${describe(result)})`);
    t.match(result.stdout, '  shell.bin\n', 'the last command ran before the shell ended');
  });

  t.test('FERRY_SERVER picks the shell server', async (t) => {
    const shell = startShell(t, [], { env: { FERRY_SERVER: address } });
    await shell.stderrShows(greeting);
    shell.child.stdin!.end('quit\n');
    t.equal((await shell.exited).code, 0);
  });

  t.test('a server that is not listening: ECONNECT, exit 1', async (t) => {
    const shell = startShell(t, ['--server', `127.0.0.1:${await closedPort()}`]);
    shell.child.stdin!.end();
    const result = await shell.exited;
    t.equal(result.code, 1, describe(result));
    t.match(result.stderr, /^ferry: .* \(ECONNECT\)\n$/u, 'one line on stderr');
  });

  t.test('commands piped in at once, as `printf ... | ferry shell` does, all run and EOF ends the shell', async (t) => {
    const result = await piped.exited;
    t.equal(result.timedOut, false, `the shell ends at EOF by itself (${describe(result)})`);
    if (result.timedOut) return;
    t.equal(result.code, 0, 'exit 0');
    t.match(result.stderr, /^ferry: nope: not found \(ENOENT\)$/mu, 'the first piped command ran');
    t.match(result.stdout, `server:        ferry ${packageVersion}`, 'the second piped command ran');
  });
});
