// Where a file's SHA-256 runs: this file needs a process of its own (tap gives each file one),
// since whether the shared hashing thread has been made is the process's state.
import { createHash, randomBytes } from 'node:crypto';
import t from 'tap';
import { inlineSha256MaxBytes, runningSha256, threadStartPaysFromBytes } from '../src/hashing/running-sha256.js';
import { sharedSha256ThreadIfMade } from '../src/hashing/sha256-thread.js';

/**
 * Feeds `bytes` to a running hash made for a file of `declaredBytes` and returns its digest, and
 * whether the ArrayBuffer given to `update` went to the hashing thread (moved there and back: what
 * comes back is another ArrayBuffer, the one given is detached; hashed here, it is the same one).
 */
async function hashOnce(declaredBytes: number, bytes: Buffer): Promise<{ digest: string; movedToThread: boolean }> {
  const sha256 = runningSha256(declaredBytes);
  const buffer = new ArrayBuffer(bytes.length);
  new Uint8Array(buffer).set(bytes);
  const back = await sha256.update(buffer, bytes.length);
  t.equal(back.byteLength, bytes.length, 'the buffer comes back whole');
  return { digest: await sha256.digest(), movedToThread: back !== buffer && buffer.byteLength === 0 };
}

t.test('a process hashes files on its own thread until one is large enough to pay for starting the hashing thread', async (t) => {
  const bytes = randomBytes(100_000);
  const expected = createHash('sha256').update(bytes).digest('hex');
  t.equal(sharedSha256ThreadIfMade(), undefined, 'a fresh process has no hashing thread');

  for (const declared of [inlineSha256MaxBytes, inlineSha256MaxBytes + 1, threadStartPaysFromBytes]) {
    const { digest, movedToThread } = await hashOnce(declared, bytes);
    t.equal(digest, expected, `${declared} bytes: the digest`);
    t.notOk(movedToThread, `${declared} bytes: hashed on this thread`);
  }
  t.equal(sharedSha256ThreadIfMade(), undefined, 'files up to threadStartPaysFromBytes start no thread');

  const large = await hashOnce(threadStartPaysFromBytes + 1, bytes);
  t.equal(large.digest, expected, 'a larger file: the digest');
  t.ok(large.movedToThread, 'a larger file is hashed on the hashing thread');
  const thread = sharedSha256ThreadIfMade();
  t.ok(thread, 'which is made for it');

  const mid = await hashOnce(inlineSha256MaxBytes + 1, bytes);
  t.equal(mid.digest, expected, 'then a 1 MiB + 1 file: the digest');
  t.ok(mid.movedToThread, 'once the thread runs, files above inlineSha256MaxBytes use it');
  const small = await hashOnce(inlineSha256MaxBytes, bytes);
  t.notOk(small.movedToThread, 'and files up to inlineSha256MaxBytes still do not');
  await thread!.close();
});
