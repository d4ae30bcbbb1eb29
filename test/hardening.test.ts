// What the server does to its own host on a client's behalf: it binds to this machine unless told
// otherwise (and warns when told otherwise), keeps the data directory to its owner, never follows
// a symbolic link out of the data directory, and never tells a client where its files are.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { makeFile } from './helpers/files.js';
import { ferryBin } from './helpers/server-process.js';
import { startServer } from './helpers/server.js';
import { tempDir } from './helpers/temp-dir.js';

const KiB = 1024;

/** Starts `ferry serve` with `args` and waits for its first lines on stderr (the address, any warning); then stops it. */
async function serveAndStop(t: Test, args: string[]): Promise<string> {
  const dataDir = join(tempDir(t), 'data');
  const child = spawn(
    process.execPath,
    [ferryBin, 'serve', '--port', '0', '--http-port', '0', '--data', dataDir, '--log-level', 'warn', ...args],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  const exited = once(child, 'exit');
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stderr = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr.on('data', (data: Buffer) => {
      stderr += data.toString();
      // The address line, and the warning if one comes, are written together before the server waits.
      if (/serving .* on /u.test(stderr)) setImmediate(resolve);
    });
    void exited.then(() => reject(new Error(`ferry serve exited: ${stderr}`)));
  });
  child.kill('SIGTERM');
  await exited;
  return stderr;
}

t.test('ferry serve listens on 127.0.0.1 unless told otherwise, and warns when told to listen on the network', async (t) => {
  const local = await serveAndStop(t, []);
  t.match(local, /serving .* on 127\.0\.0\.1:\d+/u, 'the default is this machine only');
  t.notMatch(local, /warning/u, 'no warning then');
  const open = await serveAndStop(t, ['--host', '0.0.0.0']);
  t.match(open, /serving .* on 0\.0\.0\.0:\d+ over TLS/u);
  t.notMatch(open, /warning/u, 'over TLS (the default), no warning either');
  const clear = await serveAndStop(t, ['--host', '0.0.0.0', '--no-tls']);
  t.match(clear, /serving .* on 0\.0\.0\.0:\d+ in clear text \(--no-tls\)/u);
  t.match(
    clear,
    /warning: listening on 0\.0\.0\.0, not only this machine, without TLS: passwords, session tokens and files cross the network in clear text/u,
    'told to serve clear text to the network, it says what that means',
  );
});

t.test('the data directory is kept to its owner: folders 0700, stored files 0600, or what --umask leaves', async (t) => {
  for (const [umask, folderMode, fileMode] of [
    [undefined, 0o700, 0o600],
    [0o027, 0o750, 0o640],
  ] as const) {
    const dataDir = join(tempDir(t), 'data');
    const running = await startServer(t, { dataDir, chunkSizeBytes: 64 * KiB, ...(umask === undefined ? {} : { umask }) });
    const local = await makeFile(tempDir(t), 'f.bin', 10 * KiB);
    const client = running.client();
    await client.upload(local.path, { name: 'dir/sub/f.bin' });
    await client.close();
    const label = umask === undefined ? 'default' : `umask ${umask.toString(8)}`;
    for (const folder of ['', 'files', 'partial', 'db', 'files/dir', 'files/dir/sub']) {
      t.equal(
        (await stat(join(dataDir, folder))).mode & 0o777,
        folderMode,
        `${label}: ${folder || 'the data directory'} is ${folderMode.toString(8)}`,
      );
    }
    t.equal(
      (await stat(join(dataDir, 'files', 'dir', 'sub', 'f.bin'))).mode & 0o777,
      fileMode,
      `${label}: a stored file is ${fileMode.toString(8)}`,
    );
  }
});

t.test('a symbolic link placed in the data directory is never followed: not by a publish, a delete or a download', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: 64 * KiB });
  const outside = tempDir(t, 'ferry-outside');
  await writeFile(join(outside, 'victim.txt'), 'not the server’s to touch');
  const client = running.client();
  const local = await makeFile(tempDir(t), 'f.bin', 3 * KiB);
  await client.upload(local.path, { name: 'kept/f.bin' });
  const files = join(running.dataDir, 'files');

  // Someone with access to the data directory swaps folders for links out of it.
  await symlink(outside, join(files, 'linked'));
  await t.rejects(client.upload(local.path, { name: 'linked/new.bin' }), { code: 'EIO' }, 'a publish through the link is refused');
  await t.rejects(stat(join(outside, 'new.bin')), { code: 'ENOENT' }, 'and nothing was written outside');

  await rm(join(files, 'kept'), { recursive: true });
  await symlink(outside, join(files, 'kept'));
  await writeFile(join(outside, 'f.bin'), 'outside');
  await t.rejects(client.delete('kept/f.bin'), { code: 'EIO' }, 'a delete through the link is refused');
  t.equal(await readFile(join(outside, 'f.bin'), 'utf8'), 'outside', 'and the file outside is untouched');
  t.match(await client.stat('kept/f.bin'), { name: 'kept/f.bin' }, 'the record stays: nothing was deleted');
  await t.rejects(
    client.download('kept/f.bin', { out: join(tempDir(t), 'out.bin') }),
    { code: 'EIO' },
    'a download through the link is refused',
  );

  await rm(join(files, 'kept'));
  await mkdir(join(files, 'kept'));
  await symlink(join(outside, 'victim.txt'), join(files, 'kept', 'f.bin'));
  await t.rejects(
    client.download('kept/f.bin', { out: join(tempDir(t), 'out2.bin') }),
    { code: 'EIO' },
    'a file that became a link is not read',
  );
  await client.close();
});

t.test('a name whose beginning is a stored file is no link to follow: f6 and f60 side by side', async (t) => {
  // The walk over the folders on the way to a name once took `f6`, the name minus its last
  // character, for a folder on the way to `f60`, and refused to publish or serve it.
  const running = await startServer(t, { chunkSizeBytes: 64 * KiB });
  const client = running.client();
  const dir = tempDir(t);
  const short = await makeFile(dir, 'short.bin', KiB);
  const long = await makeFile(dir, 'long.bin', 2 * KiB);
  await client.upload(short.path, { name: 'd/f6' });
  await client.upload(long.path, { name: 'd/f60' });
  await client.upload(long.path, { name: 'top' });
  await client.upload(short.path, { name: 'to' });
  const out = tempDir(t);
  t.equal((await client.download('d/f60', { out: join(out, 'f60') })).sha256, long.sha256, 'd/f60 published and served');
  t.equal((await client.download('top', { out: join(out, 'top') })).sha256, long.sha256, 'top published and served');
  await client.delete('d/f60');
  t.equal((await client.stat('d/f6')).sha256, short.sha256, 'd/f6 is untouched');
  await client.close();
});

t.test('error messages on the wire name no path of the server', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: 64 * KiB });
  const client = running.client();
  const local = await makeFile(tempDir(t), 'f.bin', 3 * KiB);
  await client.upload(local.path, { name: 'gone/f.bin' });
  // A folder where the file should be: opening works, reading fails (EISDIR).
  await rm(join(running.dataDir, 'files', 'gone', 'f.bin'));
  await mkdir(join(running.dataDir, 'files', 'gone', 'f.bin'));
  const error = await client.download('gone/f.bin', { out: join(tempDir(t), 'out.bin') }).catch((caught: unknown) => caught as Error);
  t.match(error, { code: 'EIO' });
  t.notMatch((error as Error).message, running.dataDir, 'the message does not give the data directory away');
  t.notMatch((error as Error).message, /\/files\//u);

  // The partial folder replaced by a file: neither a put nor a whole put can make its file there.
  await rename(join(running.dataDir, 'partial'), join(running.dataDir, 'partial-away'));
  await writeFile(join(running.dataDir, 'partial'), 'not a folder');
  const big = await makeFile(tempDir(t), 'big.bin', 3 * 64 * KiB);
  for (const [file, said] of [
    [big, /^creating partial file for new\.bin: ENOTDIR/u],
    [local, /^storing new\.bin: ENOTDIR/u],
  ] as const) {
    const refused = await client.upload(file.path, { name: 'new.bin' }).catch((caught: unknown) => caught as Error);
    t.match(refused, { code: 'EIO', message: said }, 'an I/O failure, said as one (not an internal error)');
    t.notMatch((refused as Error).message, running.dataDir, 'naming no path');
  }
  await client.close();
});
