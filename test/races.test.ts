// Races between clients: two uploads of one name, puts racing for the last bytes of the quota, a
// delete (or a replacement) during a download, a delete while an upload of the name is under way.
// The rule each time: one clear outcome per client, and never a mix of two contents. Every race
// runs on a data directory and again on an S3 store (a real Ceph RGW, where the tests have one).
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { join } from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import t, { type Test } from 'tap';
import { S3Store } from '../src/object-store/s3-store.js';
import { FerryError } from '../src/protocol/errors.js';
import type { ServerConfigInput } from '../src/server/config.js';
import { makeFile, sha256Of } from './helpers/files.js';
import { type ControlMessage, RawClient, chunkFrame, referenceFingerprint } from './helpers/raw-client.js';
import { freshS3Bucket, rawS3Client, s3Skip } from './helpers/s3.js';
import { type RunningServer, startServer } from './helpers/server.js';
import { tempDir } from './helpers/temp-dir.js';

const KiB = 1024;
const MiB = 1024 * KiB;
/**
 * How long a raw request waits for its reply where the store does the work: on S3 a put, a delete
 * or a publish (its parts, the multipart's completion, the manifest) may take seconds on a loaded
 * machine, beyond the raw client's 5 s default.
 */
const storeWaitMs = 60_000;

/** A server the races run against, and the SHA-256 of the bytes its store holds under a name. */
interface RaceServer extends RunningServer {
  storedSha256(name: string): Promise<string>;
}

/** Where the stored bytes live, and the sizes the races use there (S3 parts are 5 MiB at least, and every byte goes through the RGW). */
interface RaceStore {
  name: string;
  skip: string | undefined;
  chunkSize: number;
  start(t: Test, config?: Partial<ServerConfigInput>): Promise<RaceServer>;
  /** Chunks of each racing upload of one name. */
  racerChunks: number;
  /** Chunks of a file downloaded while it is deleted or replaced: enough that most are read after that. */
  heldChunks: number;
  /** A download begun before its file was deleted or replaced still reads the old bytes: on disk the server holds the file open; an S3 object has no handle, so there the download is told ECHANGED. */
  downloadsOutliveReplacement: boolean;
  /**
   * The file a put races with while it is published: its chunks, their size, and whether they are
   * sent last to first (on disk that makes the publish hash the whole file again, which keeps it
   * busy; on S3 the running SHA-256 must be fed in order, and chunks far out of order make the
   * upload start over by design, so they go in order: completing the multipart upload and writing
   * its manifest keep the publish busy there).
   */
  publish: { chunkSize: number; chunks: number; lastToFirst: boolean };
}

const localStore: RaceStore = {
  name: 'on a data directory',
  skip: undefined,
  chunkSize: 64 * KiB,
  async start(t, config = {}) {
    const running = await startServer(t, { chunkSizeBytes: this.chunkSize, ...config });
    return { ...running, storedSha256: (name) => sha256Of(join(running.dataDir, 'files', name)) };
  },
  racerChunks: 64,
  heldChunks: 512,
  downloadsOutliveReplacement: true,
  publish: { chunkSize: MiB, chunks: 24, lastToFirst: true },
};

const s3Store: RaceStore = {
  name: 'on an S3 store',
  skip: s3Skip,
  chunkSize: 5 * MiB,
  async start(t, config = {}) {
    const settings = await freshS3Bucket(t);
    const running = await startServer(t, { chunkSizeBytes: this.chunkSize, ...config }, { s3Store: new S3Store(settings) });
    const s3 = rawS3Client(t, settings);
    return {
      ...running,
      async storedSha256(name) {
        const object = await s3.send(new GetObjectCommand({ Bucket: settings.bucket, Key: `${settings.prefix}files/${name}` }));
        return createHash('sha256')
          .update(await object.Body!.transformToByteArray())
          .digest('hex');
      },
    };
  },
  racerChunks: 3,
  heldChunks: 10,
  downloadsOutliveReplacement: false,
  publish: { chunkSize: 5 * MiB, chunks: 6, lastToFirst: false },
};

/**
 * A raw download of `name` that does not read its socket until told: the server fills the socket
 * buffers and then must read the rest from its store, after whatever the test does meanwhile.
 */
async function heldDownload(
  port: number,
  name: string,
  chunkSize: number,
  test: Test,
): Promise<{ raw: RawClient; stream: number; release: () => Promise<ControlMessage[]> }> {
  const raw = await RawClient.connect(test, port);
  await raw.hello();
  const id = raw.send('get', { name });
  const reply = await raw.reply(id);
  raw.socket.pause();
  const stream = (reply['result'] as { stream: number }).stream;
  return {
    raw,
    stream,
    async release() {
      raw.socket.resume();
      const end = await raw.until(
        'the end of the download',
        () => {
          const abort = raw.controls.find((message) => message['event'] === 'abort' && message['stream'] === stream);
          if (abort) return [abort];
          const received = raw.frames.filter((frame) => frame.kind === 'chunk').length;
          return received === Math.ceil((reply['result'] as { size: number }).size / chunkSize) ? [] : undefined;
        },
        20_000,
      );
      return end;
    },
  };
}

/** Every chunk `raw` received is `content` at its offset. */
function chunksMatch(raw: RawClient, content: Buffer): { received: number; mismatched: number } {
  let received = 0;
  let mismatched = 0;
  for (const frame of raw.frames) {
    if (frame.kind !== 'chunk') continue;
    received += 1;
    const { offset, length } = frame.header;
    if (!frame.payload.equals(content.subarray(offset, offset + length))) mismatched += 1;
  }
  return { received, mismatched };
}

/**
 * What a download that was held while its file went away (or was replaced) must have come to: on
 * disk, every chunk of the old content and no abort; on S3, an abort with ECHANGED after fewer
 * chunks. Either way, no chunk of anything but the old content.
 */
function heldDownloadOutcome(t: Test, store: RaceStore, end: ControlMessage[], raw: RawClient, old: Buffer): void {
  const { received, mismatched } = chunksMatch(raw, old);
  const chunks = Math.ceil(old.length / store.chunkSize);
  if (store.downloadsOutliveReplacement) {
    t.same(end, [], 'no abort: the server holds the file open from the start of the download');
    t.equal(received, chunks, 'every chunk came');
  } else {
    t.match(end, [{ event: 'abort', code: 'ECHANGED' }], 'the download is told the file changed under it');
    t.ok(received < chunks, `it stopped early (${received} of ${chunks} chunks)`);
  }
  t.equal(mismatched, 0, 'every chunk is the old content, the one the reply to get promised');
}

function races(t: Test, store: RaceStore): void {
  const { chunkSize } = store;

  t.test('two clients upload different files to one name at once: one wins whole, the other is told', async (t) => {
    const running = await store.start(t);
    const dir = tempDir(t);
    const a = await makeFile(dir, 'a.bin', store.racerChunks * chunkSize + 1);
    const b = await makeFile(dir, 'b.bin', store.racerChunks * chunkSize + 2);
    const outcomes = await Promise.allSettled([
      running.client().upload(a.path, { name: 'same.bin' }),
      running.client().upload(b.path, { name: 'same.bin' }),
    ]);
    const won = outcomes.flatMap((outcome, index) => (outcome.status === 'fulfilled' ? [[a, b][index]!] : []));
    const lost = outcomes.flatMap((outcome) => (outcome.status === 'rejected' ? [outcome.reason as FerryError] : []));
    t.equal(won.length, 1, 'exactly one upload succeeds');
    t.equal(lost.length, 1);
    t.ok(lost[0] instanceof FerryError && ['EBUSY', 'EEXIST'].includes(lost[0].code), `the other gets EBUSY or EEXIST (${lost[0]?.code})`);
    t.equal(await running.storedSha256('same.bin'), won[0]!.sha256, "the stored bytes are the winner's, whole");
  });

  t.test('puts racing for the last free bytes of the quota: exactly one is accepted', async (t) => {
    const running = await store.start(t, { maxStorageBytes: MiB });
    const racers = await Promise.all(Array.from({ length: 4 }, () => RawClient.connect(t, running.port)));
    await Promise.all(racers.map((raw) => raw.hello()));
    const size = 600 * KiB;
    // All four puts are on the wire before any is answered.
    const ids = racers.map((raw, index) => raw.send('put', { name: `quota/${index}.bin`, size, fingerprint: `f${index}` }));
    const replies = await Promise.all(racers.map((raw, index) => raw.reply(ids[index]!, storeWaitMs)));
    const outcomes = replies.map((reply) => (reply['ok'] === true ? 'ok' : reply['code'])).sort();
    t.same(outcomes, ['EQUOTA', 'EQUOTA', 'EQUOTA', 'ok'], 'one put reserves the space; the others get EQUOTA');
  });

  t.test('a file deleted during a download: no byte of anything but the old content reaches the client', async (t) => {
    const running = await store.start(t);
    const dir = tempDir(t);
    const old = await makeFile(dir, 'old.bin', store.heldChunks * chunkSize);
    await running.client().upload(old.path, { name: 'doomed.bin' });
    const held = await heldDownload(running.port, 'doomed.bin', chunkSize, t);
    await running.client().delete('doomed.bin');
    heldDownloadOutcome(t, store, await held.release(), held.raw, old.bytes);
    await t.rejects(running.client().stat('doomed.bin'), { code: 'ENOENT' });
  });

  t.test('a file replaced during a download: never a chunk of the new content in it, and the new one served next', async (t) => {
    const running = await store.start(t);
    const dir = tempDir(t);
    const old = await makeFile(dir, 'old.bin', store.heldChunks * chunkSize);
    const fresh = await makeFile(dir, 'new.bin', store.heldChunks * chunkSize);
    await running.client().upload(old.path, { name: 'swapped.bin' });
    const held = await heldDownload(running.port, 'swapped.bin', chunkSize, t);
    await running.client().upload(fresh.path, { name: 'swapped.bin', force: true });
    heldDownloadOutcome(t, store, await held.release(), held.raw, old.bytes);
    t.equal((await running.client().stat('swapped.bin')).damaged, undefined, 'the replacement is not mistaken for damage');

    // A new download gets the new content.
    const out = join(dir, 'swapped.out');
    const result = await running.client().download('swapped.bin', { out });
    t.equal(result.sha256, fresh.sha256);
    t.equal(await sha256Of(out), fresh.sha256);
  });

  t.test('delete while an upload of the name is under way: the stored file goes, the upload finishes', async (t) => {
    const running = await store.start(t);
    const dir = tempDir(t);
    const old = await makeFile(dir, 'old.bin', 2 * chunkSize);
    const fresh = await makeFile(dir, 'new.bin', 3 * chunkSize + 7);
    await running.client().upload(old.path, { name: 'busy.bin' });
    const uploader = await RawClient.connect(t, running.port);
    await uploader.hello();
    const fingerprint = await referenceFingerprint(fresh.bytes);
    for (const name of ['busy.bin', 'only-uploading.bin']) {
      const put = await uploader.call('put', { name, size: fresh.bytes.length, fingerprint, force: true }, storeWaitMs);
      t.equal(put['ok'], true, `the upload of ${name} is under way`);
    }
    await running.client().delete('busy.bin');
    await t.rejects(running.client().stat('busy.bin'), { code: 'ENOENT' }, 'delete removed the stored version');
    await t.rejects(running.client().delete('only-uploading.bin'), { code: 'ENOENT' }, 'a name only being uploaded has nothing to delete');
    uploader.destroy();
    // Both uploads resume and finish with the new content: delete did not touch the sessions.
    for (const name of ['busy.bin', 'only-uploading.bin']) {
      const result = await running.client().upload(fresh.path, { name, force: true });
      t.equal(result.sha256, fresh.sha256);
      t.equal(await running.storedSha256(name), fresh.sha256, `${name} holds the new content`);
    }
  });

  t.test('two deletes of one name at once: one removes it, the other gets ENOENT, and the counts stay right', async (t) => {
    const running = await store.start(t);
    const local = await makeFile(tempDir(t), 'twice.bin', 3 * chunkSize);
    const client = running.client();
    await client.upload(local.path, { name: 'twice.bin' });
    await client.upload(local.path, { name: 'kept.bin' });
    const raw = await RawClient.connect(t, running.port);
    await raw.hello();
    const ids = [raw.send('delete', { name: 'twice.bin' }), raw.send('delete', { name: 'twice.bin' })];
    const outcomes = (await Promise.all(ids.map((id) => raw.reply(id, storeWaitMs))))
      .map((reply) => (reply['ok'] === true ? 'ok' : reply['code']))
      .sort();
    t.same(outcomes, ['ENOENT', 'ok']);
    const info = await client.info();
    t.same([info.files, info.bytes], [1, local.bytes.length], 'info counts the one file left');
  });

  t.test('a download with nothing to send ends at once: logged ok, even when its client leaves right after the reply', async (t) => {
    const running = await store.start(t);
    const empty = await makeFile(tempDir(t), 'empty.bin', 0);
    const client = running.client();
    await client.upload(empty.path, { name: 'empty.bin' });
    for (let round = 0; round < 5; round += 1) {
      const raw = await RawClient.connect(t, running.port);
      await raw.hello();
      const reply = await raw.call('get', { name: 'empty.bin' });
      t.match(reply, { ok: true, result: { size: 0, chunkCount: 0 } });
      const closed = once(running.server.connections, 'close');
      raw.destroy();
      await closed;
    }
    // Each download ended (and was logged) before its client left: the log has all five.
    const downloads = (await client.log(20)).filter((entry) => entry.op === 'download');
    t.same(
      downloads.map((entry) => entry.result),
      ['ok', 'ok', 'ok', 'ok', 'ok'],
      'every one of them is logged as done',
    );
    await client.close();
  });

  t.test('a put of the same file while it is being published waits for the publish, then says it exists', async (t) => {
    // What a client whose link dropped after its putEnd sends when it retries: it must learn the
    // outcome (the file is there, with its content), not be told to try again later.
    const big = store.publish.chunkSize;
    const running = await store.start(t, { chunkSizeBytes: big });
    const { bytes } = await makeFile(tempDir(t), 'pub.bin', store.publish.chunks * big + 5);
    const fingerprint = await referenceFingerprint(bytes);
    const first = await RawClient.connect(t, running.port);
    await first.hello();
    const put = await first.call('put', { name: 'pub.bin', size: bytes.length, fingerprint });
    const stream = (put['result'] as { stream: number }).stream;
    const chunks = [];
    for (let offset = 0; offset < bytes.length; offset += big)
      chunks.push(await chunkFrame(stream, offset, bytes.subarray(offset, offset + big)));
    if (store.publish.lastToFirst) chunks.reverse();
    await first.write(chunks);
    const end = first.send('putEnd', { stream, sha256: createHash('sha256').update(bytes).digest('hex') });
    // Frames are handled in order: once the ping is answered, the putEnd has begun.
    await first.call('ping', {}, storeWaitMs);
    const second = await RawClient.connect(t, running.port);
    await second.hello();
    const retry = await second.call('put', { name: 'pub.bin', size: bytes.length, fingerprint }, storeWaitMs);
    t.match(await first.reply(end, storeWaitMs), { ok: true }, 'the first upload is published');
    t.match(retry, { ok: false, code: 'EEXIST' }, 'the second put waited for it: the file exists, no EBUSY');
  });
}

for (const store of [localStore, s3Store]) {
  t.test(store.name, { skip: store.skip }, (t) => {
    races(t, store);
    t.end();
  });
}
