// After the fuzz: what must hold of the server once every fuzzing connection is gone.
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Test } from 'tap';
import { checkName } from '../../src/protocol/names.js';
import { sha256Of } from '../helpers/files.js';
import { connectionCountDownTo } from './auditor.js';
import { MiB, chunkSize } from './config.js';
import { FuzzConnection } from './connection.js';
import { ledger } from './ledger.js';
import { namePool, sampleBySha } from './material.js';
import { type MemoryRecord, gc, mib, settledMemory } from './memory.js';
import { helloFields } from './plan.js';
import { show, tapSafe } from './report.js';
import { type ServerUnderTest, roundTrip } from './server-under-test.js';

/** The names of the files the final checks upload themselves (beside the warm-up's). */
export function finalNames(seed: number): { file: string; empty: string } {
  return { file: `zz-final-${seed}/file.bin`, empty: `zz-final-${seed}/empty.bin` };
}

/** Every connection is released, and an ordinary client is served. */
export async function checkReleasedAndServed(t: Test, target: ServerUnderTest, seed: number): Promise<void> {
  // The server frees a connection asynchronously (its uploads land and are recorded first); its
  // connection registry says when, with a 'close' event. Bounded, so that a leak fails here.
  t.equal(await connectionCountDownTo(target.server.connections, 0, 10_000), 0, 'the server holds no connection');
  const admin = target.normalClient();
  t.equal((await admin.info()).clients, 1, 'info then counts only a new client');
  await admin.close();
  const names = finalNames(seed);
  t.ok(await roundTrip(target, names.file, 5 * chunkSize + 321, 2), 'a normal upload + download of a 5-chunk file is byte-exact');
  t.ok(await roundTrip(target, names.empty, 0, 3), 'and of an empty file');
}

/** The listing is consistent with what was published, with info, with paging and with the disk. */
export async function checkListing(t: Test, target: ServerUnderTest, seed: number): Promise<void> {
  const client = target.normalClient();
  const files = await client.list();
  const names = files.map((file) => file.name);
  const bytesOf = (name: string): Buffer => Buffer.from(name, 'utf8');
  t.ok(
    names.every((name, index) => index === 0 || Buffer.compare(bytesOf(names[index - 1]!), bytesOf(name)) < 0),
    'names are listed once each, in ascending UTF-8 byte order',
  );
  const invalid = names.filter((name) => {
    try {
      checkName(name);
      return false;
    } catch {
      return true;
    }
  });
  t.same(invalid, [], 'every listed name is a valid name');
  const info = await client.info();
  t.equal(info.files, files.length, 'info counts the listed files');
  t.equal(
    info.bytes,
    files.reduce((total, file) => total + file.size, 0),
    'info adds up their sizes',
  );

  // Only the samples (and this test's own final files) were ever sent whole, and a file becomes
  // visible only once its SHA-256 matched: anything else was published unverified.
  const { file: finalFile, empty: finalEmpty } = finalNames(seed);
  const finals = new Set([finalFile, finalEmpty, 'warmup/file.bin']);
  const foreign = files.filter((file) => !finals.has(file.name) && sampleBySha.get(file.sha256)?.size !== file.size);
  t.same(
    foreign.map((file) => show(file)),
    [],
    'every listed file holds exactly one of the contents the fuzzer uploaded',
  );
  const missing = [...ledger.published.keys()].filter((name) => !ledger.deleted.has(name) && !names.includes(name));
  t.same(
    missing.map((name) => show(name)),
    [],
    'every file a putEnd published, and no delete removed, is listed',
  );

  // Paging by two gives the same listing.
  const paged: string[] = [];
  const pager = await FuzzConnection.open(target.port, 'pager');
  t.match(await pager.call(helloFields), { ok: true });
  for (let after: string | undefined, pages = 0; pages < 1000; pages += 1) {
    const reply = await pager.call({ op: 'list', limit: 2, ...(after === undefined ? {} : { after }) });
    const result = reply?.['result'] as { files: { name: string }[]; next?: string } | undefined;
    if (!result) break;
    paged.push(...result.files.map((file) => file.name));
    after = result.next;
    if (after === undefined) break;
  }
  pager.socket.destroy();
  t.same(pager.problems, [], 'the pager saw nothing malformed');
  t.same(paged, names, 'paging two at a time lists the same names');

  // On disk: files/ holds exactly the listed files; nothing else beside db/, files/, partial/.
  const filesDir = join(target.dataDir, 'files');
  const onDisk: string[] = [];
  for (const entry of await readdir(filesDir, { recursive: true })) {
    if ((await stat(join(filesDir, entry))).isFile()) onDisk.push(entry.split('\\').join('/'));
  }
  t.same(onDisk.sort(), [...names].sort(), 'files/ holds exactly the listed files');
  t.same(await readdir(target.root), ['data'], 'nothing was created beside the data dir');
  t.same(
    (await readdir(target.dataDir)).sort(),
    ['admin-password', 'db', 'files', 'partial', 'server.pid'],
    'the data dir holds only its own directories, lock and first admin password',
  );
  const strayPartials = (await readdir(join(target.dataDir, 'partial'))).filter((entry) => !/^[0-9a-f-]{36}\.part$/u.test(entry));
  t.same(strayPartials, [], 'partial/ holds only session files');

  // Every listed file downloads byte-exact (the client checks every chunk and the SHA-256).
  const broken: string[] = [];
  for (const [index, file] of files.entries()) {
    const out = join(target.work, `listed-${index}.out`);
    try {
      const down = await client.download(file.name, { out, force: true });
      if (down.sha256 !== file.sha256 || (await sha256Of(out)) !== file.sha256) broken.push(show(file.name));
    } catch (error) {
      broken.push(`${show(file.name)}: ${tapSafe(String(error))}`);
    }
  }
  t.same(broken, [], `all ${files.length} listed files download byte-exact`);
  await client.close();
  t.comment(`${files.length} files listed: ${names.map((name) => show(name, 60)).join(', ')}`);
}

/** No name is left claimed: each name the fuzzer used can be uploaded again. */
export async function checkNoNameClaimed(t: Test, target: ServerUnderTest): Promise<void> {
  // Each name the fuzzer used can be uploaded again by an ordinary client. EEXIST is a fair answer
  // when the fuzzer left a file under it or made it the folder of one; EBUSY would mean an upload
  // still holds it although every connection is gone.
  let n = 10;
  for (const name of namePool) {
    n += 1;
    try {
      t.ok(await roundTrip(target, name, chunkSize + 7, n, true), `${show(name)}: uploaded again and downloaded exact`);
    } catch (error) {
      t.equal(
        (error as { code?: unknown }).code,
        'EEXIST',
        `${show(name)}: refused only because of a file/folder clash (${tapSafe(String(error))})`,
      );
    }
  }
}

/** Memory stayed bounded, and nothing failed unexpectedly (server errors, uncaught exceptions, prototype pollution). */
export function checkMemoryAndFailures(t: Test, target: ServerUnderTest, memory: MemoryRecord): void {
  const { baseline, peak } = memory;
  if (!baseline || !peak) {
    t.fail('no memory figures (an earlier test failed)');
    t.end();
    return;
  }
  const after = settledMemory();
  const retained = after.heapUsed + after.arrayBuffers - (baseline.heapUsed + baseline.arrayBuffers);
  t.comment(
    `peak during the fuzz: rss ${mib(peak.rss)} (+${mib(peak.rss - baseline.rss)}), heapUsed ${mib(peak.heapUsed)}, external ${mib(peak.external)}; ` +
      `after gc: rss ${mib(after.rss)}, heapUsed ${mib(after.heapUsed)} , arrayBuffers ${mib(after.arrayBuffers)}; retained growth ${mib(retained)}`,
  );
  // The whole process's RSS, as a backstop. The server's own budget is small (1 MiB of chunk
  // buffers; per connection a 64 KiB read buffer and one control frame; at most three fuzzing
  // connections at once), and the tighter measure is per run (runExternalBoundBytes). RSS also
  // holds V8's garbage between collections: with a GC every 25 runs, runs against a server
  // without the known bugs grew it by 33-56 MiB; each burst that the server answers in full adds
  // about 170 KB per request. 128 MiB leaves that headroom and still catches a runaway queue or
  // a leak per connection or per frame (some 400 connections and 10 MB sent per fuzz).
  t.ok(peak.rss - baseline.rss < 128 * MiB, `peak RSS grew by ${mib(peak.rss - baseline.rss)} (< 128 MiB)`);
  if (gc) {
    // After a full GC, what the fuzz left behind: per-connection state, buffers or sessions that
    // are never released would add up here (measured: 3-7 MiB, which does not grow with the runs
    // in proportion).
    t.ok(retained < 16 * MiB, `heap + array buffers retained after a full GC grew by ${mib(retained)} (< 16 MiB)`);
  }
  t.same(target.serverErrors.map(tapSafe), [], 'the server logged no error');
  t.same(target.uncaught.map(tapSafe), [], 'no uncaught exception');
  t.equal(({} as Record<string, unknown>)['polluted'], undefined, 'no prototype pollution in this process');
  t.end();
}
