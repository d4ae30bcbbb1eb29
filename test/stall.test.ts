// The client's stall watchdog: a link that stays open but stops moving bytes (a dead NAT entry,
// a frozen peer) is noticed by the client, which reconnects and resumes by itself and says why.
// The proxy freezes every open connection at an exact byte count and keeps later ones working.
import { loginAt, loginEnv } from './helpers/accounts.js';
import { childEnv } from './helpers/cli.js';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { FerryClient } from '../src/client/client.js';
import { startCutProxy } from './helpers/cut-proxy.js';
import { makeFile, sha256Of } from './helpers/files.js';
import { ferryBin } from './helpers/server-process.js';
import { startServer } from './helpers/server.js';
import { tempDir } from './helpers/temp-dir.js';
import { spawn } from 'node:child_process';
import { once } from 'node:events';

const KiB = 1024;
const MiB = 1024 * KiB;
const chunkSize = 256 * KiB;
const stallTimeoutMs = 300;

/**
 * A server whose own stall timeout is far longer than the client's, so it is the client that
 * notices; the frozen connection still holds the upload, so a reconnecting put takes it over.
 */
async function serverBehindProxy(t: Test) {
  const running = await startServer(t, { chunkSizeBytes: chunkSize, stallTimeoutMs: 60_000, takeoverGraceMs: 50, shutdownGraceMs: 100 });
  const proxy = await startCutProxy(t, running.port);
  return { running, proxy };
}

/** A client through the proxy that records the reasons it gave for each retry. */
function retryingClient(t: Test, port: number): { client: FerryClient; reasons: string[] } {
  const reasons: string[] = [];
  const client = new FerryClient({
    host: '127.0.0.1',
    port,
    stallTimeoutMs,
    ...loginAt(port),
    retry: { retries: 10, baseDelayMs: 10, onRetry: ({ error, attempt }) => reasons.push(`${error.message} (attempt ${attempt})`) },
  });
  t.teardown(() => client.close());
  return { client, reasons };
}

/**
 * The first retry says the link stalled. More may follow, for the same reason: a reconnecting put
 * waits while the server lands and syncs what the frozen connection had written, with nothing on
 * the wire, and a 300 ms watchdog can lose patience with a slow disk's sync (or a loaded machine):
 * the client has ten retries.
 */
function assertStallRetries(t: Test, reasons: string[]): void {
  t.equal(reasons[0], `stalled: no data for ${stallTimeoutMs}ms (attempt 2)`, 'the first retry says the link stalled');
  t.ok(
    reasons.every((reason) => reason.startsWith(`stalled: no data for ${stallTimeoutMs}ms`)),
    `every retry was for a stall: ${reasons.join('; ')}`,
  );
}

t.test('an upload whose link freezes reconnects after the stall timeout and resumes', async (t) => {
  const { running, proxy } = await serverBehindProxy(t);
  const local = await makeFile(tempDir(t), 'frozen-up.bin', 8 * MiB + 3);
  const { client, reasons } = retryingClient(t, proxy.port);
  const frozen = proxy.freezeAfter(3 * MiB, 'up');
  const result = await client.upload(local.path, { name: 'frozen-up.bin' });
  await frozen;
  assertStallRetries(t, reasons);
  t.equal(result.resumed, true, 'the second attempt resumed the session');
  t.equal(result.sha256, local.sha256);
  t.equal(await sha256Of(join(running.dataDir, 'files', 'frozen-up.bin')), local.sha256, 'the stored bytes are exact');
});

t.test('a download whose link freezes reconnects after the stall timeout and resumes', async (t) => {
  const { running, proxy } = await serverBehindProxy(t);
  const dir = tempDir(t);
  const local = await makeFile(dir, 'frozen-down.bin', 8 * MiB + 3);
  await running.client().upload(local.path, { name: 'frozen-down.bin' });
  const { client, reasons } = retryingClient(t, proxy.port);
  const frozen = proxy.freezeAfter(3 * MiB, 'down');
  const out = join(dir, 'copy.bin');
  const result = await client.download('frozen-down.bin', { out });
  await frozen;
  assertStallRetries(t, reasons);
  t.equal(result.resumed, true, 'the second attempt resumed from the partial file');
  t.equal(await sha256Of(out), local.sha256, 'the downloaded file is exact');
});

t.test('an idle connection is not cut by the watchdog', async (t) => {
  const { running } = await serverBehindProxy(t);
  // 250 ms: the requests below are watched too, and a loaded machine can pause one for 50 ms.
  const client = new FerryClient({ host: '127.0.0.1', port: running.port, stallTimeoutMs: 250, ...loginAt(running.port) });
  t.teardown(() => client.close());
  const connection = await client.connection();
  await client.info();
  // Nothing is in progress: the watchdog must stay disarmed however long the connection rests.
  // This waits on purpose: what is asserted is that nothing happens in 8 stall periods.
  const cut = once(connection.socket, 'close').then(() => true);
  const rested = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 8 * 250));
  t.equal(await Promise.race([cut, rested]), false, 'the socket stayed open');
  await client.info();
  t.equal(await client.connection(), connection, 'the same connection answered again');
});

t.test('ferry upload says on stderr why it reconnects', async (t) => {
  const { running, proxy } = await serverBehindProxy(t);
  const local = await makeFile(tempDir(t), 'cli-frozen.bin', 6 * MiB);
  const frozen = proxy.freezeAfter(2 * MiB, 'up');
  const child = spawn(
    process.execPath,
    [ferryBin, 'upload', local.path, '--server', `127.0.0.1:${proxy.port}`, '--stall-timeout', '500ms', '--json'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: childEnv(loginEnv(proxy.port)),
    },
  );
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (data: Buffer) => (stdout += data.toString()));
  child.stderr.on('data', (data: Buffer) => (stderr += data.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  await frozen;
  t.equal(code, 0, `exit 0 (stderr: ${stderr})`);
  t.match(
    stderr,
    /^ferry: stalled: no data for 500ms, reconnecting in 500ms \(retry 1 of 20\)$/mu,
    'stderr names the stall and the attempt',
  );
  t.equal((JSON.parse(stdout) as { sha256: string }).sha256, local.sha256);
  t.equal(await sha256Of(join(running.dataDir, 'files', 'cli-frozen.bin')), local.sha256);
});
