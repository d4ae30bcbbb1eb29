/**
 * The HTTP side with the tools people have: curl and wget resume a download cut mid-way (a
 * dropped link between them and the server), and what they end with is the file, byte for byte.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { provisionDataDir, testPassword, testUser } from './helpers/accounts.js';
import { startCutProxy } from './helpers/cut-proxy.js';
import { makeFile } from './helpers/files.js';
import { bearer, freePort, send, startHttpSide } from './helpers/http.js';
import { ferryBin } from './helpers/server-process.js';
import { startServer } from './helpers/server.js';
import { tempDir } from './helpers/temp-dir.js';

const run = promisify(execFile);
const toolTimeoutMs = 30_000;

function installed(tool: string): boolean {
  try {
    execFileSync(tool, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** In CI the tools are installed by .ci/run, so a missing one fails there instead of being skipped. */
function needs(tool: string): { skip: string | false } {
  return { skip: installed(tool) || process.env['CI'] ? false : `${tool} is not installed (apt-get install ${tool})` };
}

/** Exit status of a tool run that may fail (the cut run), with its stderr for the message. */
async function attempt(tool: string, args: string[], cwd: string): Promise<{ code: number; stderr: string }> {
  try {
    const { stderr } = await run(tool, args, { cwd, timeout: toolTimeoutMs });
    return { code: 0, stderr };
  } catch (error) {
    const failure = error as { code?: number; stderr?: string };
    return { code: typeof failure.code === 'number' ? failure.code : -1, stderr: failure.stderr ?? String(error) };
  }
}

const KiB = 1024;
const MiB = 1024 * KiB;

async function setUp(t: Test) {
  const running = await startServer(t, { chunkSizeBytes: 256 * KiB });
  const http = await startHttpSide(running);
  const dir = tempDir(t);
  const file = await makeFile(dir, 'source.bin', 3 * MiB + 777);
  await running.client().upload(file.path, { name: 'big.bin' });
  const proxy = await startCutProxy(t, http.port);
  return { http, dir, file, proxy };
}

t.test('curl -C - finishes a download cut mid-way', needs('curl'), async (t) => {
  const { http, dir, file, proxy } = await setUp(t);
  const out = join(dir, 'curl-out.bin');
  const cut = proxy.cutAfter(MiB, 'down');
  const first = await attempt(
    'curl',
    ['-sS', '-u', `${testUser}:${testPassword}`, '-o', out, `http://127.0.0.1:${proxy.port}/files/big.bin`],
    dir,
  );
  await cut;
  t.not(first.code, 0, `the cut run fails (curl exit ${first.code})`);
  const partial = (await stat(out)).size;
  t.ok(partial > 0 && partial < file.bytes.length, `it kept part of the file (${partial} bytes)`);

  const second = await attempt(
    'curl',
    ['-sS', '-f', '-u', `${testUser}:${testPassword}`, '-C', '-', '-o', out, `${http.base}/files/big.bin`],
    dir,
  );
  t.equal(second.code, 0, `curl -C - succeeds ${second.stderr}`);
  t.equal((await readFile(out)).compare(file.bytes), 0, 'the file, byte for byte');
});

t.test('wget -c finishes a download cut mid-way (Basic after the challenge)', needs('wget'), async (t) => {
  const { http, dir, file, proxy } = await setUp(t);
  const cut = proxy.cutAfter(MiB, 'down');
  const credentials = ['--user', testUser, '--password', testPassword];
  const first = await attempt('wget', ['-q', '--tries=1', ...credentials, `http://127.0.0.1:${proxy.port}/files/big.bin`], dir);
  await cut;
  t.not(first.code, 0, `the cut run fails (wget exit ${first.code})`);
  const out = join(dir, 'big.bin');
  const partial = (await stat(out)).size;
  t.ok(partial > 0 && partial < file.bytes.length, `it kept part of the file (${partial} bytes)`);

  const second = await attempt('wget', ['-q', '-c', ...credentials, `${http.base}/files/big.bin`], dir);
  t.equal(second.code, 0, `wget -c succeeds ${second.stderr}`);
  t.equal((await readFile(out)).compare(file.bytes), 0, 'the file, byte for byte');
});

t.test('ferry serve starts the HTTP side on --http-port and says where', async (t) => {
  const dataDir = tempDir(t, 'ferry-data');
  const token = await provisionDataDir(dataDir);
  const httpPort = await freePort();
  const child = spawn(
    process.execPath,
    [ferryBin, 'serve', '--host', '127.0.0.1', '--port', '0', '--http-port', String(httpPort), '--data', dataDir, '--log-level', 'warn'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const exited = once(child, 'exit');
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  let stderr = '';
  child.stderr.on('data', (data: Buffer) => (stderr += data.toString()));
  await new Promise<void>((resolve, reject) => {
    child.stderr.on('data', () => /HTTP side .*\n/u.test(stderr) && resolve());
    void exited.then(() => reject(new Error(`ferry serve exited: ${stderr}`)));
  });
  t.match(
    stderr,
    `ferry: HTTP side (web page, API, downloads, tus uploads) at http://127.0.0.1:${httpPort}/ (docs/http.md)`,
    'the address is printed',
  );
  const me = await send(`http://127.0.0.1:${httpPort}/api/me`, { headers: bearer(token) });
  t.same(me.json(), { user: testUser, role: 'admin', root: '' }, 'and it answers there');
  child.kill('SIGTERM');
  await exited;
});
