/**
 * Several files in one command, as scp, rsync and curl users type them: `ferry upload a b c
 * [--as-dir PREFIX]`, `ferry download x y --out dir`; one failure does not stop the rest, and the
 * command says which failed. `--out -` is standard output (`upload -`: upload-stream.test.ts).
 */
import { readFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { assertUsage, childEnv, ferry, killAfter, runTimeoutMs } from './helpers/cli.js';
import { loginEnv, portOfArgs } from './helpers/accounts.js';
import { startCutProxy } from './helpers/cut-proxy.js';
import { ferryBin } from './helpers/server-process.js';
import { makeFile } from './helpers/files.js';
import { startServer } from './helpers/server.js';
import { tempDir } from './helpers/temp-dir.js';

/** Runs the CLI and keeps its standard output as bytes. */
async function ferryBytes(args: string[]): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  const child = spawn(process.execPath, [ferryBin, ...args], {
    env: childEnv(loginEnv(portOfArgs(args, undefined))),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const cancel = killAfter(child, runTimeoutMs, () => {});
  const chunks: Buffer[] = [];
  let stderr = '';
  child.stdout.on('data', (data: Buffer) => chunks.push(data));
  child.stderr.on('data', (data: Buffer) => (stderr += data.toString()));
  const [code] = (await once(child, 'close')) as [number | null];
  cancel();
  return { code, stdout: Buffer.concat(chunks), stderr };
}

t.test('several files', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: 64 * 1024 });
  const server = ['--server', `127.0.0.1:${running.port}`];
  const dir = tempDir(t);
  const files = await Promise.all(['a.log', 'b.log', 'c.log'].map((name, index) => makeFile(dir, name, 1000 * (index + 1))));

  t.test('upload a b c --as-dir PREFIX stores each under the prefix, in order', async (t) => {
    const run = await ferry(['upload', ...files.map((file) => file.path), '--as-dir', 'logs/', ...server]);
    t.equal(run.code, 0, run.stderr);
    t.match(run.stdout, /^uploaded logs\/a\.log: .*\nuploaded logs\/b\.log: .*\nuploaded logs\/c\.log: .*\n$/u);
    for (const file of files) t.equal((await running.client().stat(`logs/${file.path.slice(dir.length + 1)}`)).sha256, file.sha256);
  });

  t.test('a file that fails does not stop the others; the command fails and names it', async (t) => {
    const run = await ferry(['upload', files[0]!.path, join(dir, 'missing.log'), files[2]!.path, '--as-dir', 'more', ...server]);
    t.equal(run.code, 1);
    t.match(run.stdout, /^uploaded more\/a\.log: .*\nuploaded more\/c\.log: .*\n$/u, 'the others went');
    t.match(
      run.stderr,
      /^ferry: local file .*missing\.log: not found \(ENOENT\)\nferry: 2 of 3 files uploaded; failed: .*missing\.log \(ENOENT\)\n$/u,
    );
    const json = await ferry(['upload', files[0]!.path, files[1]!.path, '--as-dir', 'more', '--json', ...server]);
    t.equal(json.code, 1, 'more/a.log exists now');
    const result = JSON.parse(json.stdout) as { uploaded: { name: string }[]; failed: { item: string; code: string }[] };
    t.same(
      result.uploaded.map((upload) => upload.name),
      ['more/b.log'],
    );
    t.same(result.failed, [{ item: files[0]!.path, code: 'EEXIST', message: 'more/a.log already exists (use --force to replace it)' }]);
  });

  t.test('download x y --out DIR puts each in the directory', async (t) => {
    const into = join(tempDir(t), 'into');
    await mkdir(into);
    const run = await ferry(['download', 'logs/a.log', 'logs/c.log', '--out', into, ...server]);
    t.equal(run.code, 0, run.stderr);
    t.equal(await readFile(join(into, 'a.log'), 'utf8'), await readFile(files[0]!.path, 'utf8'));
    t.equal(await readFile(join(into, 'c.log'), 'utf8'), await readFile(files[2]!.path, 'utf8'));
    const again = await ferry(['download', 'logs/b.log', 'logs/a.log', '--out', into, '--json', ...server]);
    t.equal(again.code, 1, 'one of them failed');
    const json = JSON.parse(again.stdout) as { downloaded: { name: string }[]; failed: { code: string }[] };
    t.same(
      json.failed.map((failure) => failure.code),
      ['EEXIST'],
    );
    t.same(
      json.downloaded.map((result) => result.name),
      ['logs/b.log'],
      'a.log is there already: not overwritten',
    );
  });

  t.test('--as names one file; --out - takes one name and no --json', async (t) => {
    assertUsage(t, await ferry(['upload', files[0]!.path, files[1]!.path, '--as', 'x', ...server]), /--as names one file/u);
    assertUsage(t, await ferry(['download', 'logs/a.log', 'logs/b.log', '--out', '-', ...server]), /--out - takes one name/u);
    assertUsage(t, await ferry(['download', 'logs/a.log', '--out', '-', '--json', ...server]), /pick one/u);
  });

  t.test('download NAME --out - writes the file to standard output, verified, and rides out a cut link', async (t) => {
    const big = await makeFile(dir, 'big.bin', 3 * 1024 * 1024 + 5);
    await running.client().upload(big.path, { name: 'big.bin' });
    const proxy = await startCutProxy(t, running.port);
    const cut = proxy.cutAfter(1024 * 1024, 'down');
    const run = await ferryBytes(['download', 'big.bin', '--out', '-', '--server', `127.0.0.1:${proxy.port}`]);
    await cut;
    t.equal(run.code, 0, run.stderr);
    t.ok(run.stdout.equals(big.bytes), `standard output holds the file, byte for byte (${run.stdout.length} bytes)`);
    t.match(run.stderr, /reconnecting now/u, 'the link was cut');
    t.match(run.stderr, new RegExp(`^downloaded big\\.bin to standard output: 3\\.0 MiB, sha256 ${big.sha256} verified \\(`, 'mu'));
  });
});
