import { execFileSync } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { makeFile, sha256Of } from './helpers/files.js';
import type { ServerConfigInput } from '../src/server/config.js';
import type { FerryServer } from '../src/server/server.js';
import { type RunningServer, startServer } from './helpers/server.js';
import { tempDir } from './helpers/temp-dir.js';
import { ignoreStrayLmdbCommitFailures } from '../src/store/meta-store.js';

// As `ferry serve` does at its entry (an embedder's choice, not the library's): a failed LMDB
// commit also surfaces as an unhandled rejection nobody can catch (lmdb-js issue 368).
ignoreStrayLmdbCommitFailures();

const KiB = 1024;
const MiB = 1024 * KiB;

/** Mounts a tmpfs of `size` at `dir`; the reason it cannot, if it cannot (not root, no mount rights). */
function mountTmpfs(dir: string, size: string): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root to mount a small tmpfs';
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe' });
    return undefined;
  } catch (error) {
    return `mount -t tmpfs failed: ${String((error as { stderr?: Buffer }).stderr ?? error).trim()}`;
  }
}

/**
 * A server (256 KiB chunks, 4 MiB budget, plus `config`) whose data dir is on a fresh 8 MiB tmpfs;
 * undefined, with the reason passed as a skip, where no tmpfs can be mounted. When the test ends
 * the server is closed first (close is idempotent; its own teardown would come later), then the
 * filesystem unmounted.
 */
async function serverOnSmallFs(t: Test, config: Partial<ServerConfigInput>): Promise<(RunningServer & { mountPoint: string }) | undefined> {
  const mountPoint = tempDir(t, 'ferry-small-fs');
  const cannot = mountTmpfs(mountPoint, '8m');
  if (cannot) {
    t.pass('a real full disk', { skip: cannot });
    return undefined;
  }
  let server: FerryServer | undefined;
  t.teardown(async () => {
    await server?.close();
    execFileSync('umount', ['-l', mountPoint]);
  });
  const running = await startServer(t, {
    dataDir: join(mountPoint, 'data'),
    chunkSizeBytes: 256 * KiB,
    inflightBudgetBytes: 4 * MiB,
    ...config,
  });
  server = running.server;
  return { ...running, mountPoint };
}

t.test(
  'a full disk with the default checkpoint interval: ENOSPC to the client, a failed LMDB commit does not crash the server',
  async (t) => {
    const work = tempDir(t);
    // Nothing is checkpointed before the disk fills: the failed write's last checkpoint and the LMDB
    // commits after it fail too (lmdb-js leaves a rejected commit promise nobody holds).
    const running = await serverOnSmallFs(t, {});
    if (!running) return;
    const big = await makeFile(work, 'big.bin', 12 * MiB + 5);
    await t.rejects(running.client().upload(big.path, { name: 'big.bin' }), { code: 'ENOSPC' }, 'the upload fails with ENOSPC');
    t.match(await running.client().info(), { files: 0 }, 'the server still answers');
  },
);

t.test(
  'a full disk: the upload fails with ENOSPC, the server and its files are fine, and the upload resumes once there is room',
  async (t) => {
    const work = tempDir(t);
    const running = await serverOnSmallFs(t, { syncEveryBytes: 512 * KiB });
    if (!running) return;
    const client = running.client();
    const kept = await makeFile(work, 'kept.bin', MiB + 3);
    await client.upload(kept.path, { name: 'kept.bin' });

    const big = await makeFile(work, 'big.bin', 12 * MiB + 5);
    await t.rejects(
      client.upload(big.path, { name: 'big.bin' }),
      { code: 'ENOSPC', message: /no space/iu },
      'the upload fails with ENOSPC',
    );

    const fresh = running.client();
    t.same(
      (await fresh.list()).map((file) => file.name),
      ['kept.bin'],
      'the server still answers, and lists only the finished file',
    );
    const out = join(work, 'kept.out');
    await fresh.download('kept.bin', { out });
    t.equal(await sha256Of(out), kept.sha256, 'the file stored before is intact');

    execFileSync('mount', ['-o', 'remount,size=40m', running.mountPoint]);
    const resumed = await fresh.upload(big.path, { name: 'big.bin' });
    t.equal(resumed.sha256, big.sha256, 'with room again, the same upload completes exact');
    t.equal(resumed.resumed, true, 'it resumed the session the full disk interrupted');
    t.ok(resumed.bytesSent < big.bytes.length, `and sent only what was missing (${resumed.bytesSent} of ${big.bytes.length} bytes)`);
  },
);

t.test(
  'a full disk under small files sent whole: ENOSPC for the file that does not fit, nothing half-stored, the rest intact',
  async (t) => {
    const work = tempDir(t);
    const running = await serverOnSmallFs(t, {});
    if (!running) return;
    const client = running.client();
    // 100 KiB files, each sent in one request (putWhole): the 8 MiB disk fills part-way through.
    const small = await makeFile(work, 'small.bin', 100 * KiB);
    const stored: string[] = [];
    let refusal: unknown;
    for (let index = 0; index < 120 && refusal === undefined; index += 1) {
      try {
        await client.upload(small.path, { name: `s${index}.bin` });
        stored.push(`s${index}.bin`);
      } catch (error) {
        refusal = error;
      }
    }
    t.match(refusal, { code: 'ENOSPC' }, `the file that does not fit is refused with ENOSPC (after ${stored.length} stored)`);
    t.ok(stored.length > 0, 'some files fit before the disk filled');
    t.same((await client.list()).map((file) => file.name).sort(), [...stored].sort(), 'the server lists exactly the files it acknowledged');
    t.same(await readdir(join(running.mountPoint, 'data', 'partial')), [], 'nothing of the refused file is left in partial/');
    const out = join(work, 'last.out');
    await client.download(stored.at(-1)!, { out });
    t.equal(await sha256Of(out), small.sha256, 'the last file stored before the disk filled is exact');
  },
);
