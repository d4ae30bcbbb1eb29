// Where a file's SHA-256 runs: this file needs a process of its own (tap gives each file one),
// since whether the shared hashing thread has been made is the process's state.
import { createHash, randomBytes } from 'node:crypto';
import t, { type Test } from 'tap';
import { inlineSha256MaxBytes, runningSha256, threadStartPaysFromBytes } from '../src/hashing/running-sha256.js';
import { sharedSha256ThreadIfMade } from '../src/hashing/sha256-thread.js';

/**
 * Feeds `bytes` to a running hash made for a file of `declaredBytes` and returns its digest, and
 * whether the ArrayBuffer given to `update` went to the hashing thread (moved there and back: what
 * comes back is another ArrayBuffer, the one given is detached; hashed here, it is the same one).
 */
async function hashOnce(t: Test, declaredBytes: number, bytes: Buffer): Promise<{ digest: string; movedToThread: boolean }> {
  const sha256 = runningSha256(declaredBytes);
  const buffer = new ArrayBuffer(bytes.length);
  new Uint8Array(buffer).set(bytes);
  const back = await sha256.update(buffer, bytes.length);
  t.equal(back.byteLength, bytes.length, 'the buffer comes back whole');
  return { digest: await sha256.digest(), movedToThread: back !== buffer && buffer.byteLength === 0 };
}

t.test('a process hashes files on its own thread until it has more to hash than pays for starting the hashing thread', async (t) => {
  const bytes = randomBytes(100_000);
  const expected = createHash('sha256').update(bytes).digest('hex');
  t.equal(sharedSha256ThreadIfMade(), undefined, 'a fresh process has no hashing thread');

  const half = threadStartPaysFromBytes / 2;
  for (const declared of [inlineSha256MaxBytes, inlineSha256MaxBytes + 1, half - inlineSha256MaxBytes - 1, half]) {
    const { digest, movedToThread } = await hashOnce(t, declared, bytes);
    t.equal(digest, expected, `${declared} bytes: the digest`);
    t.notOk(movedToThread, `${declared} bytes: hashed on this thread`);
  }
  t.equal(sharedSha256ThreadIfMade(), undefined, 'files adding up to threadStartPaysFromBytes start no thread');

  const next = await hashOnce(t, inlineSha256MaxBytes + 1, bytes);
  t.equal(next.digest, expected, 'the next file above inlineSha256MaxBytes: the digest');
  t.ok(next.movedToThread, 'it is hashed on the hashing thread');
  const thread = sharedSha256ThreadIfMade();
  t.ok(thread, 'which is made for it');

  const small = await hashOnce(t, inlineSha256MaxBytes, bytes);
  t.notOk(small.movedToThread, 'files up to inlineSha256MaxBytes are still hashed here');
  await thread!.close();
});

t.test('a process whose first file is larger than threadStartPaysFromBytes starts the thread for it', async (t) => {
  // In a child process: this one has made the thread in the test above.
  const { execFileSync } = await import('node:child_process');
  const script = `
    import { runningSha256, threadStartPaysFromBytes } from ${JSON.stringify(new URL('../src/hashing/running-sha256.ts', import.meta.url).href)};
    import { sharedSha256ThreadIfMade } from ${JSON.stringify(new URL('../src/hashing/sha256-thread.ts', import.meta.url).href)};
    runningSha256(threadStartPaysFromBytes + 1).drop();
    const made = sharedSha256ThreadIfMade() !== undefined;
    await sharedSha256ThreadIfMade()?.close();
    process.stdout.write(String(made));
  `;
  const out = execFileSync(process.execPath, [...process.execArgv, '--input-type=module', '-e', script], { encoding: 'utf8' });
  t.equal(out, 'true');
});

t.test('the hashing thread keeps its process alive while a task waits on it, and not once idle', async (t) => {
  // In a child process that never closes the thread: it prints the digest only if the thread kept
  // it alive for the answer, and exits by itself only if the idle thread lets it.
  const { execFileSync } = await import('node:child_process');
  const length = 3 * 1024 * 1024;
  const bytes = Buffer.alloc(length);
  for (let index = 0; index < length; index += 1) bytes[index] = (index * 31 + 7) & 255;
  const script = `
    import { Sha256Thread } from ${JSON.stringify(new URL('../src/hashing/sha256-thread.ts', import.meta.url).href)};
    const thread = new Sha256Thread();
    const bytes = new SharedArrayBuffer(${length});
    const view = new Uint8Array(bytes);
    for (let index = 0; index < ${length}; index += 1) view[index] = (index * 31 + 7) & 255;
    await thread.update('k', bytes, ${length});
    process.stdout.write(await thread.digest('k'));
  `;
  const out = execFileSync(process.execPath, [...process.execArgv, '--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  t.equal(out, createHash('sha256').update(bytes).digest('hex'), 'the digest, and then the process ended by itself');
});
