// Start-up recovery and `ferry fsck`: what a crash, a full disk or a hand in the data directory
// can leave behind (an interrupted upload, a partial file nobody owns, a stray file, a record
// without its bytes, bytes that no longer match their record, a verified file published but not
// recorded) is reported by `ferry fsck` without changing anything, then repaired by the next start.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { appendFile, mkdir, open, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { startCutProxy } from './helpers/cut-proxy.js';
import { makeFile, sha256Of } from './helpers/files.js';
import { RawClient, chunkFrame, referenceFingerprint } from './helpers/raw-client.js';
import { ferryBin } from './helpers/server-process.js';
import { type RunningServer, startServer } from './helpers/server.js';
import { tempDir } from './helpers/temp-dir.js';
import { type FsckReport, type RunResult, ferry, fsck } from './helpers/cli.js';

const KiB = 1024;
const chunkSize = 64 * KiB;

/** `problem name` of each finding, sorted: what a report says, independent of its order. */
function summary(findings: FsckReport['findings']): string[] {
  return findings.map(({ problem, name }) => `${problem} ${name}`).sort();
}

/** Everything under `dir`, relative, sorted: to show a check changed nothing. */
async function tree(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).sort();
}

/** An upload cut by a dropped link after `bytes` reached the proxy: its session and partial file stay. */
async function interruptedUpload(t: Test, running: RunningServer, local: { path: string }, name: string, bytes: number): Promise<void> {
  const proxy = await startCutProxy(t, running.port);
  const cut = proxy.cutAfter(bytes, 'up');
  await t.rejects(running.client({ port: proxy.port }).upload(local.path, { name }), { code: 'ECONNLOST' });
  await cut;
}

t.test('fsck reports, changes nothing; the next start repairs; fsck is then clean', async (t) => {
  const dataDir = join(tempDir(t), 'data');
  const work = tempDir(t);
  const first = await startServer(t, { dataDir, chunkSizeBytes: chunkSize });
  const client = first.client();
  const kept = await makeFile(work, 'kept.bin', 3 * chunkSize + 17);
  for (const name of ['kept.bin', 'gone.bin', 'resized.bin', 'flipped.bin']) await client.upload(kept.path, { name });
  const stale = await makeFile(work, 'stale.bin', 8 * chunkSize);
  await interruptedUpload(t, first, stale, 'stale.bin', 3 * chunkSize);
  await interruptedUpload(t, first, stale, 'lost-part.bin', 3 * chunkSize);
  await client.close();
  await first.server.close();

  // What a hand, a crash or a failing disk leaves.
  const files = join(dataDir, 'files');
  const partial = join(dataDir, 'partial');
  await rm(join(files, 'gone.bin'));
  await appendFile(join(files, 'resized.bin'), 'tail');
  const flipped = await open(join(files, 'flipped.bin'), 'r+');
  // Inverted, not overwritten: a fixed value could equal the random byte already there.
  await flipped.write(Buffer.from([kept.bytes[chunkSize + 5]! ^ 0xff]), 0, 1, chunkSize + 5);
  await flipped.close();
  await mkdir(join(files, 'stray'));
  await writeFile(join(files, 'stray', 'orphan.txt'), 'someone put this here');
  await writeFile(join(partial, 'not-a-session.part'), 'left over');
  const partials = await readdir(partial);
  t.equal(partials.length, 3, 'two interrupted uploads and the stray partial file');
  // Which partial file belongs to lost-part.bin is in LMDB; fsck names the session, so remove one and see.
  const { MetaStore } = await import('../src/store/meta-store.js');
  const store = new MetaStore({ path: join(dataDir, 'db') });
  const lostPart = store.session('lost-part.bin')!;
  await store.close();
  await rm(join(partial, `${lostPart.id}.part`));

  const before = await tree(dataDir);
  const check = await fsck(dataDir, '--session-ttl', '1ms');
  t.equal(check.code, 1, 'fsck exits 1 when something disagrees');
  t.same(summary(check.report.findings), [
    'expired-upload stale.bin',
    'missing-file gone.bin',
    'orphan-file stray/orphan.txt',
    'orphan-partial not-a-session.part',
    'size-mismatch resized.bin',
    'upload-without-data lost-part.bin',
  ]);
  t.ok(
    check.report.findings.every((finding) => finding.action.startsWith('would ')),
    'every action is only proposed',
  );
  t.same(await tree(dataDir), before, 'fsck changed nothing in the data directory');
  const verified = await fsck(dataDir, '--session-ttl', '1ms', '--verify');
  t.ok(summary(verified.report.findings).includes('content-mismatch flipped.bin'), 'fsck --verify also finds the flipped byte');

  const second = await startServer(t, { dataDir, chunkSizeBytes: chunkSize, sessionTtlMs: 1 });
  const after = second.client();
  t.same(
    (await after.list()).map((file) => [file.name, file.damaged !== undefined]),
    [
      ['flipped.bin', false],
      ['kept.bin', false],
      ['resized.bin', true],
    ],
    'the record without bytes is gone; the resized file is listed as damaged',
  );
  t.match((await after.stat('resized.bin')).damaged, /4 bytes|bytes on disk/u);
  await t.rejects(after.download('resized.bin', { out: join(work, 'resized.out') }), { code: 'ECORRUPT' }, 'a damaged file is not served');
  await t.rejects(
    after.download('flipped.bin', { out: join(work, 'flipped.out') }),
    { code: 'ECORRUPT' },
    'a chunk that fails its recorded hash stops the download',
  );
  t.match((await after.stat('flipped.bin')).damaged, /xxh64/u, 'and flags the file before the client hears of it');
  const down = await after.download('kept.bin', { out: join(work, 'kept.out') });
  t.equal(down.sha256, kept.sha256, 'an intact file still downloads exact');
  const [run] = await readdir(join(dataDir, 'lost+found'));
  t.match(run, /^\d{8}T\d{6}Z-1$/u, 'strays go to a folder of this run: lost+found/<time>-<n>');
  t.equal(
    await readFile(join(dataDir, 'lost+found', run!, 'stray', 'orphan.txt'), 'utf8'),
    'someone put this here',
    'the stray file was moved aside under its name, not deleted',
  );
  t.same(await readdir(partial), [], 'no partial file is left: expired, orphaned and session-less ones are gone');

  await after.delete('resized.bin');
  await after.upload(kept.path, { name: 'flipped.bin', force: true });
  await after.close();
  await second.server.close();
  const clean = await fsck(dataDir);
  t.equal(clean.code, 0, 'fsck exits 0 once everything agrees');
  t.same(clean.report.findings, []);
  t.equal(clean.report.filesChecked, 2);
});

t.test('a verified upload published but not recorded (a crash in between) is recorded at the next start', async (t) => {
  const dataDir = join(tempDir(t), 'data');
  const work = tempDir(t);
  const first = await startServer(t, { dataDir, chunkSizeBytes: chunkSize });
  const old = await makeFile(work, 'old.bin', 2 * chunkSize);
  await first.client().upload(old.path, { name: 'replaced.bin' });
  const fresh = await makeFile(work, 'new.bin', 5 * chunkSize + 3);
  // Every chunk of both uploads lands and is recorded, but putEnd never comes.
  for (const [name, force] of [
    ['new.bin', false],
    ['replaced.bin', true],
  ] as const) {
    const raw = await RawClient.connect(t, first.port);
    await raw.hello();
    const put = await raw.call('put', { name, size: fresh.bytes.length, fingerprint: await referenceFingerprint(fresh.bytes), force });
    const { stream } = put['result'] as { stream: number };
    for (let offset = 0; offset < fresh.bytes.length; offset += chunkSize) {
      await raw.write(await chunkFrame(stream, offset, fresh.bytes.subarray(offset, offset + chunkSize)));
    }
    t.equal((await raw.call('ping'))['ok'], true);
    raw.socket.destroy();
  }
  await first.server.close(); // the connections' last checkpoints record every chunk

  // The crash: each partial file was renamed into place, the record not yet written.
  const { MetaStore } = await import('../src/store/meta-store.js');
  const store = new MetaStore({ path: join(dataDir, 'db') });
  const sessions = store.sessions();
  await store.close();
  t.equal(sessions.length, 2);
  for (const session of sessions) await rename(join(dataDir, 'partial', `${session.id}.part`), join(dataDir, 'files', session.name));
  const check = await fsck(dataDir);
  t.same(summary(check.report.findings), ['unpublished-upload new.bin', 'unpublished-upload replaced.bin']);

  const second = await startServer(t, { dataDir, chunkSizeBytes: chunkSize });
  const client = second.client();
  for (const name of ['new.bin', 'replaced.bin']) {
    const info = await client.stat(name);
    t.equal(info.sha256, fresh.sha256, `${name} is recorded with the uploaded content's SHA-256`);
    const out = join(work, `${name}.out`);
    await client.download(name, { out });
    t.equal(await sha256Of(out), fresh.sha256, `${name} downloads exact`);
  }
  await client.close();
  await second.server.close();
  t.equal((await fsck(dataDir)).code, 0, 'nothing left to repair');
});

t.test('strays whose names clash with what lost+found already holds never stop start-up, and fsck names where they go', async (t) => {
  const dataDir = join(tempDir(t), 'data');
  const work = tempDir(t);
  const first = await startServer(t, { dataDir, chunkSizeBytes: chunkSize });
  await first.server.close();
  // What two crashes during deletes can leave: lost+found/a is a file, and the new stray is files/a/b;
  // lost+found already holds a stray with a 255-byte name, and another stray has that name.
  const long = 'x'.repeat(255);
  await mkdir(join(dataDir, 'lost+found'), { recursive: true });
  await writeFile(join(dataDir, 'lost+found', 'a'), 'an earlier stray');
  await writeFile(join(dataDir, 'lost+found', long), 'an earlier long stray');
  await mkdir(join(dataDir, 'files', 'a'), { recursive: true });
  await writeFile(join(dataDir, 'files', 'a', 'b'), 'stray under a');
  await writeFile(join(dataDir, 'files', long), 'stray with a long name');

  const check = await fsck(dataDir);
  t.same(summary(check.report.findings), ['orphan-file a/b', `orphan-file ${long}`]);
  const proposed = new Map(check.report.findings.map(({ name, action }) => [name, /^would move it to (.*)$/u.exec(action)?.[1]]));
  t.match(proposed.get('a/b'), /^lost\+found\/\d{8}T\d{6}Z-1\/a\/b$/u, 'fsck names a folder of its own for this run');

  const second = await startServer(t, { dataDir, chunkSizeBytes: chunkSize });
  const client = second.client();
  const local = await makeFile(work, 'after.bin', chunkSize + 1);
  await client.upload(local.path, { name: 'a/c' });
  t.equal((await client.stat('a/c')).sha256, local.sha256, 'the server started and serves');
  await client.close();
  await second.server.close();
  const runs = (await readdir(join(dataDir, 'lost+found'))).filter((entry) => entry !== 'a' && entry !== long);
  t.equal(runs.length, 1, 'one folder for this run');
  const run = join(dataDir, 'lost+found', runs[0]!);
  t.equal(await readFile(join(run, 'a', 'b'), 'utf8'), 'stray under a', 'the stray under a clashing name is kept, under its name');
  t.equal(await readFile(join(run, long), 'utf8'), 'stray with a long name', 'the stray with a 255-byte name is kept, under its name');
  t.equal(await readFile(join(dataDir, 'lost+found', 'a'), 'utf8'), 'an earlier stray', 'what lost+found held is untouched');
  t.equal(await readFile(join(dataDir, 'lost+found', long), 'utf8'), 'an earlier long stray');
  t.equal((await fsck(dataDir)).code, 0, 'nothing left to repair');
});

t.test('a stray that cannot be moved is reported and left in place; start-up goes on', async (t) => {
  const dataDir = join(tempDir(t), 'data');
  const first = await startServer(t, { dataDir, chunkSizeBytes: chunkSize });
  await first.server.close();
  await writeFile(join(dataDir, 'lost+found'), 'lost+found is a file: nothing can be moved into it');
  await writeFile(join(dataDir, 'files', 'stray.bin'), 'stray');
  const second = await startServer(t, { dataDir, chunkSizeBytes: chunkSize });
  t.same(await second.client().list(), [], 'the server started; the stray is not listed');
  await second.server.close();
  t.equal(await readFile(join(dataDir, 'files', 'stray.bin'), 'utf8'), 'stray', 'the stray is left in place, not lost');
});

t.test('fsck on a directory that is not a data directory says so', async (t) => {
  const child = spawn(process.execPath, [ferryBin, 'fsck', '--data', join(tempDir(t), 'nothing-here')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (data: Buffer) => (stderr += data.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  t.equal(code, 1);
  t.match(stderr, /^ferry: .* is not a Ferry data directory .*\(ENOENT\)\n$/u);
});

t.test('a stored file the server cannot read gets EIO, is not flagged damaged, and the server goes on', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: chunkSize });
  const work = tempDir(t);
  const local = await makeFile(work, 'unreadable.bin', 2 * chunkSize);
  const client = running.client();
  await client.upload(local.path, { name: 'unreadable.bin' });
  await client.upload(local.path, { name: 'fine.bin' });
  // A directory where the file should be: opening works, reading fails (EISDIR).
  const path = join(running.dataDir, 'files', 'unreadable.bin');
  await rm(path);
  await mkdir(path);
  await t.rejects(
    client.download('unreadable.bin', { out: join(work, 'unreadable.out') }),
    { code: 'EIO' },
    'the read error reaches the client as EIO',
  );
  t.equal((await client.stat('unreadable.bin')).damaged, undefined, 'an I/O error is not taken for damage: it may pass');
  const down = await client.download('fine.bin', { out: join(work, 'fine.out') });
  t.equal(down.sha256, local.sha256, 'other files are still served');
});

t.test('ferry sessions lists unfinished uploads beside a running server, and drops them once it is stopped', async (t) => {
  const dataDir = join(tempDir(t), 'data');
  const running = await startServer(t, { dataDir, chunkSizeBytes: chunkSize });
  const bytes = (await makeFile(tempDir(t), 'part.bin', 4 * chunkSize)).bytes;
  const raw = await RawClient.connect(t, running.port);
  await raw.hello();
  const put = await raw.call('put', { name: 'half/done.bin', size: bytes.length, fingerprint: await referenceFingerprint(bytes) });
  const { stream } = put['result'] as { stream: number };
  for (const index of [0, 1])
    await raw.write(await chunkFrame(stream, index * chunkSize, bytes.subarray(index * chunkSize, (index + 1) * chunkSize)));
  t.equal((await raw.call('ping'))['ok'], true);
  raw.destroy();
  await once(running.server.connections, 'close'); // its last checkpoint has recorded both chunks

  const run = (...args: string[]): Promise<RunResult> => ferry(['sessions', '--data', dataDir, ...args]);
  const listed = await run('--json');
  t.equal(listed.code, 0, listed.stderr);
  t.match(
    JSON.parse(listed.stdout),
    [{ name: 'half/done.bin', size: bytes.length, received: 2 * chunkSize, owner: 'tester' }],
    'listed beside the running server',
  );
  const refused = await run('--drop', 'half/done.bin');
  t.equal(refused.code, 1, 'dropping needs the server stopped');
  t.match(refused.stderr, /EBUSY/u);

  await running.server.close();
  const dropped = await run('--drop', 'half/done.bin', '--json');
  t.same(JSON.parse(dropped.stdout), { dropped: ['half/done.bin'] });
  t.same(JSON.parse((await run('--json')).stdout), [], 'nothing left');
  t.same(await readdir(join(dataDir, 'partial')), [], 'and its partial file is gone');
  t.equal((await run('--drop', 'nothing.bin')).code, 1, 'dropping an upload that is not there is an error');
});
