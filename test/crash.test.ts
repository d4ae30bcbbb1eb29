import { loginAt } from './helpers/accounts.js';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { FerryClient } from '../src/client/client.js';
import { makeFile, sha256Of } from './helpers/files.js';
import { spawnServer } from './helpers/server-process.js';
import { tempDir } from './helpers/temp-dir.js';

const MiB = 1024 * 1024;
const chunkSize = MiB;
const syncEvery = 4 * MiB;
const size = 64 * MiB;

function writtenBytes(partialDir: string): number {
  const [part] = readdirSync(partialDir);
  return part === undefined ? 0 : statSync(join(partialDir, part)).blocks * 512;
}

function clientFor(t: Test, port: number): FerryClient {
  const client = new FerryClient({ host: '127.0.0.1', port, retry: { retries: 0 }, ...loginAt(port) });
  t.teardown(() => client.close());
  return client;
}

for (const killAt of [0.25, 0.6, 0.95]) {
  t.test(`server killed with SIGKILL at ${killAt * 100}% of an upload, restarted, resumed`, async (t) => {
    const dataDir = tempDir(t, 'ferry-crash');
    const local = await makeFile(tempDir(t), 'big.bin', size);
    const args = ['--chunk-size', '1MiB', '--sync-every', '4MiB'];
    const first = await spawnServer(t, dataDir, args);
    // Kill once the server has written `killAt` of the file: the partial file is sparse, so its
    // allocated blocks count the bytes the workers have written.
    let writtenAtKill = 0;
    const upload = clientFor(t, first.port).upload(local.path, {
      name: 'big.bin',
      onProgress: (progress) => {
        if (writtenAtKill > 0) return;
        const written = writtenBytes(join(dataDir, 'partial'));
        // The server may still be writing when the client has sent the last chunk: kill then at the latest.
        if (written >= size * killAt || progress.done === size) {
          first.child.kill('SIGKILL');
          writtenAtKill = written;
        }
      },
    });
    await t.rejects(upload, { code: 'ECONNLOST' }, 'the upload fails when the server dies');
    await first.exited;
    t.equal(first.child.signalCode, 'SIGKILL');

    const second = await spawnServer(t, dataDir, args);
    const result = await clientFor(t, second.port).upload(local.path, { name: 'big.bin' });
    t.equal(result.resumed, true, 'the upload resumes its session');
    // Everything the server recorded as verified was on disk and right: the client skipped those
    // chunks, and the whole-file SHA-256 the server computed still matches.
    t.equal(result.sha256, local.sha256, 'the stored file is exact');
    t.equal(await sha256Of(join(dataDir, 'files', 'big.bin')), local.sha256);
    // Written but not yet recorded at the kill: at most two checkpoints (reading pauses there)
    // plus the chunks one connection may have in the workers.
    const slack = 2 * syncEvery + 3 * chunkSize;
    t.ok(writtenAtKill > 0, 'the kill happened mid-upload');
    t.ok(
      result.bytesSent <= size - writtenAtKill + slack,
      `sent ${result.bytesSent} bytes after the restart; ${size - writtenAtKill} were unwritten at the kill`,
    );
  });
}
