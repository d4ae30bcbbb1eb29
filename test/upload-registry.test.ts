// The upload rules, through the registry's own API, against real LMDB and a real data directory:
// one writer per name (wait, take over, or EBUSY), the quota counted from what uploads received
// (plus a reserve) rather than what they declared, the limits on unfinished sessions, expiry
// while running, and the running hash states kept for detached uploads.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { Sha256Thread } from '../src/hashing/sha256-thread.js';
import { type FerryError } from '../src/protocol/errors.js';
import { foldName } from '../src/protocol/names.js';
import { LocalByteStore } from '../src/server/byte-store.js';
import { ChunkWorkers } from '../src/server/chunk-workers.js';
import { type ServerConfigInput, resolveServerConfig } from '../src/server/config.js';
import { DataLayout } from '../src/server/data-layout.js';
import { type ActiveUpload, type ClaimedUpload, type PutRequest, UploadRegistry } from '../src/server/upload-registry.js';
import { MetaStore } from '../src/store/meta-store.js';
import type { UploadSessionRecord } from '../src/store/records.js';
import { tempDir } from './helpers/temp-dir.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

interface Fixture {
  registry: UploadRegistry;
  store: MetaStore;
  layout: DataLayout;
}

function fixture(t: Test, config: Partial<ServerConfigInput> = {}): Fixture {
  const dataDir = join(tempDir(t), 'data');
  const layout = new DataLayout(dataDir);
  layout.create();
  const store = new MetaStore({ path: layout.dbDir });
  const sha256 = new Sha256Thread();
  const workers = new ChunkWorkers({ threads: 1, maxQueue: 8, onError: (error) => t.error(error) });
  const bytes = new LocalByteStore(layout, workers);
  const resolved = resolveServerConfig({ dataDir, chunkSizeBytes: 64 * KiB, takeoverGraceMs: 50, ...config });
  const registry = new UploadRegistry({ store, bytes, config: resolved, sha256, logger: pino({ level: 'silent' }) });
  registry.load();
  t.teardown(async () => {
    await workers.close();
    await sha256.close();
    await store.close();
  });
  return { registry, store, layout };
}

function request(name: string, size = 100 * KiB, extra: Partial<PutRequest> & { fingerprint?: string } = {}): PutRequest {
  const { fingerprint = `fp-${name}-${size}`, ...rest } = extra;
  return { name, file: { size, fingerprint }, force: false, owner: '10.0.0.0/24', ...rest };
}

/** An upload holding a name, as the registry sees one: it lets go when `release` is called, or when aborted. */
class HeldUpload implements ActiveUpload {
  readonly session: UploadSessionRecord;
  finishing = false;
  aborted: FerryError | undefined;
  readonly released: Promise<void>;
  #release!: () => void;

  constructor(
    readonly registry: UploadRegistry,
    claim: ClaimedUpload,
  ) {
    this.session = claim.session;
    this.released = new Promise((resolve) => {
      this.#release = resolve;
    });
    claim.attach(this);
  }

  abort(error: FerryError): void {
    this.aborted = error;
    this.release();
  }

  release(): void {
    this.registry.release(this);
    this.#release();
  }
}

const notOurs = (): boolean => false;

t.test('one writer per name: another file gets EBUSY; the same file from a new connection takes over', async (t) => {
  const { registry, layout } = fixture(t);
  const first = await registry.claim(request('a.bin'), notOurs);
  t.ok(existsSync(layout.partialPath(first.session.id)), 'a new session has its partial file');
  t.equal(first.verified.size, 0);
  const held = new HeldUpload(registry, first);

  await t.rejects(registry.claim(request('a.bin', 200 * KiB), notOurs), { code: 'EBUSY' }, 'another file of the name: EBUSY');
  await t.rejects(
    registry.claim(request('a.bin'), (upload) => upload === held),
    { code: 'EBUSY' },
    'the same file on the connection that holds it: EBUSY',
  );
  held.finishing = true;
  t.ok(registry.isPublishing('a.bin'), 'an upload being finished is publishing');
  await t.rejects(registry.claim(request('a.bin', 200 * KiB), notOurs), { code: 'EBUSY' }, 'another file while one is published: EBUSY');
  let waited = true;
  const afterPublish = registry.claim(request('a.bin'), notOurs).finally(() => (waited = false));
  for (let turn = 0; turn < 10; turn += 1) await new Promise(setImmediate);
  t.ok(waited, 'the same file while it is being published: the put waits for the outcome, not taken over');
  // The publish fails (say, its SHA-256 did not match and the client will resend): the session stays.
  held.finishing = false;
  held.release();
  const resumed = await afterPublish;
  t.equal(resumed.session.id, first.session.id, 'then the waiting put resumes the session');
  const again = new HeldUpload(registry, resumed);

  const second = await registry.claim(request('a.bin'), notOurs);
  t.match(again.aborted, { code: 'EBUSY' }, 'after the grace, the old attachment is aborted');
  t.equal(second.session.id, first.session.id, 'the new claim resumes the same session');
  t.notOk(registry.isPublishing('a.bin'));
  second.cancel();
  const third = await registry.claim(request('a.bin'), notOurs);
  t.equal(third.session.id, first.session.id, 'a cancelled claim lets go of the name');
  third.cancel();
});

t.test('a put waits for a put of the name still being set up, then sees what it became', async (t) => {
  const { registry } = fixture(t);
  const first = registry.claim(request('race.bin'), notOurs);
  const second = registry.claim(request('race.bin', 5), notOurs);
  const held = new HeldUpload(registry, await first);
  await t.rejects(second, { code: 'EBUSY' }, 'the second, another file, waited for the first to attach, then got EBUSY');
  held.release();
});

t.test('quota: an unfinished upload counts what it received plus a reserve, not what it declared', async (t) => {
  const { registry } = fixture(t, { maxStorageBytes: 2 * GiB, maxFileSizeBytes: 2 * GiB, sessionReserveBytes: 8 * MiB });
  // Four puts that each declare 1.5 GiB and send nothing: counted by what they declared, they
  // would hold 6 GiB of a 2 GiB quota and lock everyone out.
  const claims: ClaimedUpload[] = [];
  for (let index = 0; index < 4; index += 1) claims.push(await registry.claim(request(`huge/${index}`, 1.5 * GiB), notOurs));
  t.equal(registry.usedBytes, 4 * 8 * MiB, 'each counts only its reserve');
  claims.push(await registry.claim(request('small.bin', 100 * MiB), notOurs));
  t.equal(registry.usedBytes, 5 * 8 * MiB, 'another upload still gets in');
  await t.rejects(registry.claim(request('too-big.bin', 3 * GiB), notOurs), { code: 'EQUOTA' }, 'over the file size limit: EQUOTA');

  // As data arrives the charge grows with it, and stops at the quota.
  registry.chargeReceived(claims[0]!.session, GiB);
  t.equal(registry.usedBytes, GiB + 5 * 8 * MiB, 'the charge follows what was received, plus the reserve');
  await t.rejects(
    registry.claim(request('no-room.bin', GiB), notOurs),
    { code: 'EQUOTA' },
    'a declared size that cannot fit: EQUOTA up front',
  );
  t.throws(() => registry.chargeReceived(claims[1]!.session, GiB), { code: 'EQUOTA' }, 'receiving past the quota: EQUOTA');
  t.equal(registry.usedBytes, GiB + 5 * 8 * MiB, 'a refused charge counts nothing');
  for (const claim of claims) claim.cancel();
});

t.test('puts racing for the last free bytes: the check and the reserve are one step', async (t) => {
  const { registry } = fixture(t, { maxStorageBytes: MiB });
  const outcomes = await Promise.allSettled(
    Array.from({ length: 4 }, (_, index) => registry.claim(request(`q/${index}`, 600 * KiB), notOurs)),
  );
  t.same(outcomes.map((outcome) => outcome.status).sort(), ['fulfilled', 'rejected', 'rejected', 'rejected']);
  for (const outcome of outcomes) if (outcome.status === 'fulfilled') outcome.value.cancel();
});

t.test('unfinished sessions are limited in all and per owner; resuming one adds none', async (t) => {
  const { registry } = fixture(t, { maxSessions: 3, maxSessionsPerOwner: 2 });
  for (const name of ['a', 'b']) (await registry.claim(request(name), notOurs)).cancel();
  await t.rejects(registry.claim(request('c'), notOurs), { code: 'EQUOTA', message: /10\.0\.0\.0\/24 has 2 unfinished uploads/u });
  (await registry.claim(request('a'), notOurs)).cancel();
  t.pass('resuming its own session is allowed at the limit');
  (await registry.claim(request('c', 100 * KiB, { owner: '10.0.1.0/24' }), notOurs)).cancel();
  await t.rejects(registry.claim(request('d', 100 * KiB, { owner: '10.0.2.0/24' }), notOurs), {
    code: 'EQUOTA',
    message: /limit of 3 unfinished uploads/u,
  });
  t.equal(registry.sessionCount, 3);
});

t.test('idle sessions expire while the server runs; one that is attached does not', async (t) => {
  const { registry, store, layout } = fixture(t, { sessionTtlMs: 60_000 });
  const idle = await registry.claim(request('idle.bin'), notOurs);
  idle.cancel();
  const busy = new HeldUpload(registry, await registry.claim(request('busy.bin'), notOurs));
  t.same(await registry.expireIdle(Date.now() + 30_000), [], 'nothing is past the TTL yet');
  t.same(await registry.expireIdle(Date.now() + 120_000), ['idle.bin'], 'the idle one expires; the attached one stays');
  t.equal(store.session('idle.bin'), undefined);
  t.notOk(existsSync(layout.partialPath(idle.session.id)), 'its partial file is gone');
  t.ok(store.session('busy.bin'));
  t.equal(registry.sessionCount, 1);
  busy.release();
});

t.test('running hash states: kept for the most recently detached uploads, dropped beyond that', async (t) => {
  const { registry } = fixture(t, { maxDetachedHashStates: 2 });
  const states = new Map<string, unknown>();
  for (const name of ['h1', 'h2', 'h3']) {
    const claim = await registry.claim(request(name), notOurs);
    states.set(name, claim.hashState);
    new HeldUpload(registry, claim).release();
    registry.detached(claim.session);
  }
  for (const name of ['h3', 'h2', 'h1']) {
    const claim = await registry.claim(request(name), notOurs);
    t.equal(
      claim.hashState === states.get(name),
      name !== 'h1',
      name === 'h1' ? 'the oldest was dropped' : `${name} goes on from its kept state`,
    );
    claim.cancel();
  }
});

t.test('a dropped session loses its records and partial file; a published one stops counting', async (t) => {
  const { registry, store, layout } = fixture(t);
  const claim = await registry.claim(request('gone.bin'), notOurs);
  claim.cancel();
  await registry.dropSession(claim.session);
  t.equal(store.session('gone.bin'), undefined);
  t.notOk(existsSync(layout.partialPath(claim.session.id)));
  t.equal(registry.sessionCount, 0);
  const kept = await registry.claim(request('kept.bin'), notOurs);
  kept.cancel();
  registry.published(kept.session, 0);
  t.equal(registry.sessionCount, 0, 'published: no longer an unfinished upload');
});

t.test('a name that is, or lies under, a stored file cannot be claimed', async (t) => {
  const { registry, store } = fixture(t);
  const now = Date.now();
  await store.commitFile({
    name: 'dir/file',
    size: 1,
    sha256: 'a'.repeat(64),
    chunkSize: 64 * KiB,
    hashes: new Uint8Array(8),
    created: now,
    modified: now,
  });
  await t.rejects(registry.claim(request('dir/file'), notOurs), { code: 'EEXIST', message: /already exists/u });
  await t.rejects(registry.claim(request('dir/file/x'), notOurs), { code: 'EEXIST', message: /is a file, not a folder/u });
  await t.rejects(registry.claim(request('dir'), notOurs), { code: 'EEXIST', message: /folder of stored files/u });
  (await registry.claim(request('dir/file', 100, { force: true }), notOurs)).cancel();
  t.pass('with force, a stored file may be replaced');
});

t.test('on a case-insensitive file system, names that differ only by case are one file: the folded-key rule', async (t) => {
  t.equal(foldName('Straße/Report.TXT'), foldName('STRASSE/report.txt'), 'case folded: ß and SS meet');
  t.equal(foldName('A\u030A.txt'), foldName('\u00e5.TXT'), 'and NFC first');
  t.not(foldName('a.txt'), foldName('a.txt '), 'but a different name stays different');

  const { registry, store } = fixture(t, { caseInsensitiveNames: true });
  const now = Date.now();
  await store.commitFile({
    name: 'Report.txt',
    size: 1,
    sha256: 'a'.repeat(64),
    chunkSize: 64 * KiB,
    hashes: new Uint8Array(8),
    created: now,
    modified: now,
  });
  await t.rejects(registry.claim(request('REPORT.TXT'), notOurs), { code: 'EEXIST', message: /same file as Report\.txt/u });
  await t.rejects(
    registry.claim(request('report.txt', 100, { force: true }), notOurs),
    { code: 'EEXIST' },
    'force replaces a name, never another name that shares its file',
  );
  (await registry.claim(request('Report.txt', 100, { force: true }), notOurs)).cancel();
  t.pass('the name itself may still be replaced with force');

  const held = new HeldUpload(registry, await registry.claim(request('data.bin', 100, { fingerprint: 'same' }), notOurs));
  await t.rejects(registry.claim(request('DATA.bin', 200), notOurs), { code: 'EBUSY' }, 'one writer per folded name');
  await t.rejects(
    registry.claim(request('DATA.BIN', 100, { fingerprint: 'same' }), notOurs),
    { code: 'EBUSY', message: /data\.bin, the same file as DATA\.BIN/u },
    'the same bytes under another case do not take the upload over',
  );
  t.equal(held.aborted, undefined, 'the upload of data.bin goes on');
  held.release();

  await store.commitFile({
    name: 'Dir/file',
    size: 1,
    sha256: 'a'.repeat(64),
    chunkSize: 64 * KiB,
    hashes: new Uint8Array(8),
    created: now,
    modified: now,
  });
  await t.rejects(
    registry.claim(request('dir'), notOurs),
    { code: 'EEXIST', message: /folder of Dir\/file/u },
    'a file where another case of it is a folder',
  );
  await t.rejects(
    registry.claim(request('DIR/FILE/x'), notOurs),
    { code: 'EEXIST', message: /Dir\/file is a file, not a folder/u },
    'under another case of a file',
  );
  (await registry.claim(request('DIR/other'), notOurs)).cancel();
  t.pass('beside it, in the same folder under another case, is fine');

  await store.deleteFile('Report.txt');
  (await registry.claim(request('REPORT.TXT'), notOurs)).cancel();
  t.pass('once deleted, the folded name is free');

  const sensitive = fixture(t);
  const later = Date.now();
  await sensitive.store.commitFile({
    name: 'Report.txt',
    size: 1,
    sha256: 'a'.repeat(64),
    chunkSize: 64 * KiB,
    hashes: new Uint8Array(8),
    created: later,
    modified: later,
  });
  (await sensitive.registry.claim(request('REPORT.TXT'), notOurs)).cancel();
  t.pass('on a case-sensitive file system the two are different files');
});
