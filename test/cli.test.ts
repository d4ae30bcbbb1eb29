/**
 * End-to-end tests of the `ferry` command line: the compiled CLI (bin/ferry.js -> dist/) is spawned
 * with pipes (so never a TTY) against a real in-process server, and only what a script sees is
 * checked: exit codes, stdout (one JSON document with --json), stderr (one `ferry: ... (CODE)`
 * line on failure, nothing on success), and the files that end up on either side.
 */
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import t from 'tap';
import { makeFile, sha256Of } from './helpers/files.js';
import { startServer } from './helpers/server.js';
import { tempDir } from './helpers/temp-dir.js';
import { formatBytes } from '../src/units.js';
import { assertFailed, assertUsage, closedPort, describe, ferry, jsonOf, packageVersion } from './helpers/cli.js';

const KiB = 1024;
const MiB = 1024 * KiB;
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

  t.test('upload --json prints {name,size,sha256,bytesSent,wireBytes,resumed}', async (t) => {
    const [big, zero] = await Promise.all([
      ferry(['upload', local.path, ...server, '--json']),
      ferry(['upload', empty.path, ...server, '--json']),
    ]);
    t.strictSame(jsonOf(t, big), {
      name: 'data.bin',
      size: local.bytes.length,
      sha256: local.sha256,
      bytesSent: local.bytes.length,
      wireBytes: local.bytes.length,
      resumed: false,
      skipped: false,
    });
    t.strictSame(jsonOf(t, zero), {
      name: 'empty.bin',
      size: 0,
      sha256: empty.sha256,
      bytesSent: 0,
      wireBytes: 0,
      resumed: false,
      skipped: false,
    });
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

  t.test('download --out --json prints {name,path,size,sha256,bytesReceived,wireBytes,resumed}; the copy is byte-identical', async (t) => {
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
      wireBytes: local.bytes.length,
      resumed: false,
    });
    t.strictSame(jsonOf(t, zero), {
      name: 'empty.bin',
      path: resolve(emptyOut),
      size: 0,
      sha256: empty.sha256,
      bytesReceived: 0,
      wireBytes: 0,
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
      t.strictSame(
        Object.keys(entry).sort(),
        ['bytes', 'client', 'durationMs', 'name', 'op', 'result', 'time', 'user'].sort(),
        'entry fields',
      );
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
    assertFailed(
      t,
      await ferry(['stat', 'empty.bin', ...server, '--json']),
      'ENOENT',
      'ferry: empty.bin: not found on the server (ENOENT)',
    );
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
      new RegExp(`^uploaded ${remote}: ${formatBytes(first.bytes.length)}, sha256 ${first.sha256}`, 'u'),
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
    // People's output: sizes rounded, times local with their offset (one rule), durations as 1h 02m.
    const localTime = '\\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2}:\\d{2} [+-]\\d{4}';
    t.match(
      listed.stdout,
      new RegExp(`^ *\\d+(\\.\\d)? [KMG]?i?B  ${localTime}  ${remote}$`, 'mu'),
      'ls: size, local time with offset, name',
    );
    const shown = await ferry(['stat', remote, ...server]);
    t.match(shown.stdout, new RegExp(`^modified:  ${localTime}$`, 'mu'), 'stat: the same time format');
    t.match(shown.stdout, /^size: +\d+(\.\d)? [KMG]iB \([\d,]+ bytes\)$/mu, 'stat: the size for people, then the exact count');
    const log = await ferry(['log', ...server]);
    t.match(log.stdout, new RegExp(`^${localTime}  upload `, 'mu'), 'log: the same time format');
    t.match(log.stdout, / \d+ ms | \d+\.\d s /u, 'log: durations rounded');
    t.match((await ferry(['info', ...server])).stdout, /^uptime: +\d+s$|^uptime: +\d+m \d{2}s$/mu, 'info: uptime as 42s or 15m 54s');
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

    // The same content again with --force: nothing is sent, and it says so.
    const uploadsBefore = (await running.client().log(1000)).filter((entry) => entry.op === 'upload').length;
    const same = await ferry(['upload', second.path, '--as', remote, '--force', ...server]);
    t.equal(same.code, 0, describe(same));
    t.equal(same.stdout, `${remote} is already on the server (same SHA-256): nothing sent\n`);
    const sameJson = await ferry(['upload', second.path, '--as', remote, '--force', ...server, '--json']);
    t.match(jsonOf(t, sameJson), { name: remote, sha256: second.sha256, bytesSent: 0, skipped: true });
    const uploadsAfter = (await running.client().log(1000)).filter((entry) => entry.op === 'upload').length;
    t.equal(uploadsAfter, uploadsBefore, 'no upload reached the server');
    // Same size, other bytes: uploaded as usual.
    const other = await makeFile(tempDir(t), 'other.bin', second.bytes.length);
    t.match(jsonOf(t, await ferry(['upload', other.path, '--as', remote, '--force', ...server, '--json'])), {
      sha256: other.sha256,
      bytesSent: other.bytes.length,
      skipped: false,
    });
    // Back to the content the next tests expect.
    jsonOf(t, await ferry(['upload', second.path, '--as', remote, '--force', ...server, '--json']));
  });

  t.test('get without --out writes the last segment of the name in the current directory; nothing on stderr', async (t) => {
    const cwd = tempDir(t, 'ferry-cwd');
    const down = await ferry(['get', remote, ...server], { cwd });
    t.equal(down.code, 0, describe(down));
    t.equal(down.stderr, '', 'a successful download prints nothing on stderr (no progress bar when not a TTY)');
    t.match(down.stdout, /^downloaded dir\/sub\/x\.bin to .*x\.bin: 40 KiB, sha256 [0-9a-f]{64}/u);
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
    assertFailed(t, stat, 'ENOENT', 'ferry: nope.bin: not found on the server (ENOENT)');
    assertFailed(t, statJson, 'ENOENT', 'ferry: nope.bin: not found on the server (ENOENT)');
    assertFailed(t, del, 'ENOENT', 'ferry: nope.bin: not found on the server (ENOENT)');
    assertFailed(t, get, 'ENOENT', 'ferry: nope.bin: not found on the server (ENOENT)');
    assertFailed(t, put, 'ENOENT', `ferry: local file ${join(dir, 'no-such-local-file')}: not found (ENOENT)`);
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
    for (const said of ['--server HOST:PORT', 'FERRY_SERVER', '--json', 'Exit codes: 0', 'Examples:', 'ferry download big.iso --out'])
      t.match(run.stdout, said, `the overview tells of ${said}`);
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

t.test('ferry alone prints a short usage on stderr and exits 2, as curl and rsync do', async (t) => {
  const bare = await ferry([]);
  assertUsage(t, bare, /^usage: ferry <command> \[options\]/u);
  const lines = bare.stderr.trimEnd().split('\n');
  t.ok(lines.length <= 6, 'short: a few lines, not the whole help');
  t.ok(Math.max(...lines.map((line) => line.length)) <= 80, 'each fits an 80-column terminal');
});
