// What is recorded describes what is stored: a chunk sent twice with different payloads (each
// with its own correct xxh64) must never leave a published file whose chunk records disagree with
// its bytes (it would be refused on every download), and `ferry fsck --verify` checks every
// chunk's xxh64, not only the SHA-256.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { packHashes } from '../src/store/records.js';
import { loadXxh64 } from '../src/hashing/xxh64.js';
import { RawClient, chunkFrame, referenceFingerprint } from './helpers/raw-client.js';
import { startServer } from './helpers/server.js';
import { tempDir } from './helpers/temp-dir.js';
import { fsck } from './helpers/cli.js';
import { sha256Of } from './helpers/files.js';

const KiB = 1024;
const MiB = 1024 * KiB;

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

/**
 * Uploads a 3-chunk file over a raw connection, sending chunk 1 twice back to back: first with
 * the bytes of `first`, then with those of `last`. Returns putEnd's reply for `claimed`'s SHA-256.
 */
async function uploadWithDuplicate(
  t: Test,
  port: number,
  name: string,
  chunkSize: number,
  first: Buffer,
  last: Buffer,
  claimed: Buffer,
): Promise<Record<string, unknown>> {
  const raw = await RawClient.connect(t, port);
  try {
    await raw.hello();
    const put = await raw.call('put', { name, size: last.length, fingerprint: await referenceFingerprint(last) });
    const stream = (put['result'] as { stream: number }).stream;
    const piece = (bytes: Buffer, index: number): Buffer => bytes.subarray(index * chunkSize, (index + 1) * chunkSize);
    await raw.write(
      await Promise.all([
        chunkFrame(stream, 0, piece(last, 0)),
        chunkFrame(stream, chunkSize, piece(first, 1)),
        chunkFrame(stream, chunkSize, piece(last, 1)),
        chunkFrame(stream, 2 * chunkSize, piece(last, 2)),
      ]),
    );
    return await raw.call('putEnd', { stream, sha256: sha256(claimed) });
  } finally {
    raw.destroy();
  }
}

for (const [label, chunkSize, trials] of [
  ['64 KiB chunks (checked and written on the main thread)', 64 * KiB, 60],
  ['1 MiB chunks (checked and written in the pool)', MiB, 12],
] as const) {
  t.test(`a chunk sent twice with different payloads: the last one sent is stored, recorded and served (${label})`, async (t) => {
    const running = await startServer(t, { chunkSizeBytes: chunkSize, inflightBudgetBytes: 8 * chunkSize });
    const work = tempDir(t);
    const client = running.client();
    let served = 0;
    for (let trial = 0; trial < trials; trial += 1) {
      const last = randomBytes(3 * chunkSize - 100);
      const first = Buffer.from(last);
      randomBytes(chunkSize).copy(first, chunkSize);
      const name = `dup/${trial}.bin`;
      const end = await uploadWithDuplicate(t, running.port, name, chunkSize, first, last, last);
      if (end['ok'] !== true) {
        t.fail(`trial ${trial}: putEnd with the SHA-256 of the last copy was refused: ${JSON.stringify(end)}`);
        continue;
      }
      const out = join(work, `${trial}.out`);
      try {
        const down = await client.download(name, { out });
        if (down.sha256 === sha256(last) && (await sha256Of(out)) === sha256(last)) served += 1;
        else t.fail(`trial ${trial}: the download is not the last copy`);
      } catch (error) {
        t.fail(`trial ${trial}: the published file cannot be served: ${String(error)}`);
      }
    }
    t.equal(served, trials, `every one of ${trials} published files downloads exact`);

    // The first copy was overwritten by the second: a SHA-256 that claims it is refused.
    const last = randomBytes(3 * chunkSize - 100);
    const first = Buffer.from(last);
    randomBytes(chunkSize).copy(first, chunkSize);
    const end = await uploadWithDuplicate(t, running.port, 'dup/first-claimed.bin', chunkSize, first, last, first);
    t.match(end, { ok: false, code: 'ECHECKSUM' }, 'the SHA-256 of the first copy does not match what was stored');
    await t.rejects(client.stat('dup/first-claimed.bin'), { code: 'ENOENT' }, 'and nothing was published');
  });
}

t.test('fsck --verify finds a chunk record that does not describe its bytes, even when the SHA-256 matches', async (t) => {
  const dataDir = join(tempDir(t), 'data');
  const chunkSize = 64 * KiB;
  const bytes = randomBytes(3 * chunkSize + 5);
  const xxh64 = await loadXxh64();
  const hashes = [0, 1, 2, 3].map((index) => xxh64(bytes.subarray(index * chunkSize, (index + 1) * chunkSize)));
  hashes[2] = hashes[2]! ^ 1n; // the state F8 left: the SHA-256 is right, one chunk's record is not
  await mkdir(join(dataDir, 'files'), { recursive: true });
  await mkdir(join(dataDir, 'partial'), { recursive: true });
  await writeFile(join(dataDir, 'files', 'f.bin'), bytes);
  const { MetaStore } = await import('../src/store/meta-store.js');
  const store = new MetaStore({ path: join(dataDir, 'db') });
  const now = Date.now();
  await store.commitFile({
    name: 'f.bin',
    size: bytes.length,
    sha256: sha256(bytes),
    chunkSize,
    hashes: packHashes(hashes),
    created: now,
    modified: now,
  });
  await store.close();

  const quick = await fsck(dataDir);
  t.equal(quick.code, 0, 'without --verify the sizes agree: nothing is read');
  const verified = await fsck(dataDir, '--verify');
  t.equal(verified.code, 1, 'fsck --verify exits 1');
  t.match(
    verified.report.findings,
    [{ problem: 'content-mismatch', name: 'f.bin', detail: /chunk 2/u }],
    'and names the chunk whose xxh64 is not the recorded one',
  );
});
