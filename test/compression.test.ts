/**
 * Compression (issue 16): per-chunk codecs, the PACKED frame, the `auto` policy, and transfers
 * through a real server: compressed on the wire (counted by a proxy), verified and stored as the
 * raw bytes, refused when a chunk does not unpack, `auto` turning itself on over a slow link.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { localCodecs, packIfSmaller, probeBytes, unpackInPlace } from '../src/compression/codecs.js';
import { offeredCodecs, packingFor } from '../src/compression/negotiation.js';
import { type PackTicket, PackingPolicy, connectionPolicy } from '../src/compression/packing-policy.js';
import { FrameDecoder, type FrameSink } from '../src/protocol/decoder.js';
import { encodeChunkHead } from '../src/protocol/encoder.js';
import type { FerryError } from '../src/protocol/errors.js';
import { type ChunkHeader, FrameType, codecIds, packedFieldsBytes } from '../src/protocol/frames.js';
import { loadXxh64 } from '../src/hashing/xxh64.js';
import { HashCache } from '../src/client/hash-cache.js';
import { downloadTree, uploadTree } from '../src/client/tree-transfer.js';
import { ferry, jsonOf } from './helpers/cli.js';
import { startCutProxy } from './helpers/cut-proxy.js';
import { sha256Of } from './helpers/files.js';
import { RawClient, referenceFingerprint } from './helpers/raw-client.js';
import { startServer } from './helpers/server.js';
import { spawnServer } from './helpers/server-process.js';
import { tempDir } from './helpers/temp-dir.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Text that compresses several times over, as logs do: lines with varying numbers and words (a 1 MiB block, repeated). */
function compressibleText(bytes: number): Buffer {
  const words = ['transfer', 'chunk', 'verified', 'server', 'client', 'resume', 'offset', 'sha256', 'ferry', 'stream'];
  const lines: string[] = [];
  let size = 0;
  for (let line = 0; size < Math.min(bytes, MiB); line += 1) {
    const text = `${new Date(1_700_000_000_000 + line * 977).toISOString()} ${words[line % 10]} ${words[(line * 7) % 10]} ${(line * 2654435761) % 100000} bytes\n`;
    lines.push(text);
    size += text.length;
  }
  const block = Buffer.from(lines.join(''));
  return Buffer.concat(Array.from({ length: Math.ceil(bytes / block.length) }, () => block)).subarray(0, bytes);
}

t.test('every codec here packs and unpacks a chunk, and gives nothing for data that does not shrink', async (t) => {
  t.ok(localCodecs().has('brotli'), 'brotli is always there');
  t.equal(localCodecs().has('zstd'), 'zstdCompressSync' in (await import('node:zlib')), "zstd where Node's zlib has it");
  const text = compressibleText(256 * KiB);
  for (const codec of localCodecs().values()) {
    const packed = packIfSmaller(codec, text);
    t.ok(packed && packed.length < text.length / 2, `${codec.name}: text packs to ${packed?.length} bytes`);
    const buffer = new SharedArrayBuffer(text.length);
    new Uint8Array(buffer).set(packed!);
    t.equal(unpackInPlace(codec.name, buffer, packed!.length, text.length), undefined, `${codec.name}: it unpacks`);
    t.ok(Buffer.from(buffer).equals(text), `${codec.name}: to the same bytes`);
    t.equal(packIfSmaller(codec, randomBytes(64 * KiB)), undefined, `${codec.name}: random bytes are left raw`);
    // A chunk that says it holds less than it does (a decompression bomb) is refused, not unpacked.
    const small = new ArrayBuffer(text.length);
    new Uint8Array(small).set(packed!);
    t.match(unpackInPlace(codec.name, small, packed!.length, 1000), /does not unpack/u, `${codec.name}: more than rawLength is refused`);
    t.match(
      unpackInPlace(codec.name, small, packed!.length, 2 * text.length),
      /do not fit/u,
      `${codec.name}: more than the buffer is refused`,
    );
    new Uint8Array(small).fill(7, 0, 64);
    t.match(unpackInPlace(codec.name, small, packed!.length, text.length), /does not unpack/u, `${codec.name}: garbage is refused`);
  }
});

t.test('a PACKED frame carries its codec and raw length; a bad one is a protocol error', (t) => {
  const frames: ChunkHeader[] = [];
  const errors: FerryError[] = [];
  const sink: FrameSink = {
    control: () => {},
    chunkStart: (header) => frames.push(header),
    chunkData: () => {},
    chunkEnd: () => {},
    protocolError: (error) => errors.push(error),
  };
  const limits = { maxControlBytes: 1024, maxChunkBytes: 1 * MiB };
  const header: ChunkHeader = {
    stream: 3,
    offset: 4 * MiB,
    xxh64: 0x0123456789abcdefn,
    length: 10,
    packed: { codec: 'brotli', rawLength: 4096 },
  };
  const head = encodeChunkHead(header);
  t.equal(head.length, 5 + packedFieldsBytes, 'a 30-byte head');
  t.equal(head[4], FrameType.packed);
  new FrameDecoder(limits, sink).push(Buffer.concat([head, Buffer.alloc(10)]));
  t.same(frames, [header], 'decoded as encoded');

  const bad = (rawLength: number, codec: number, payload: number): string => {
    const frame = Buffer.concat([encodeChunkHead({ ...header, length: payload }), Buffer.alloc(payload)]);
    frame.writeUInt32BE(rawLength, 25);
    frame.writeUInt8(codec, 29);
    errors.length = 0;
    new FrameDecoder(limits, sink).push(frame);
    return errors.map((error) => `${error.code}: ${error.message}`).join();
  };
  t.match(bad(4096, 99, 10), /^EPROTO: packed chunk with unknown codec 99/u);
  t.match(
    bad(10, codecIds.brotli, 10),
    /^EPROTO: packed chunk of 10 bytes cannot stand for 10 bytes/u,
    'no bigger than what it stands for',
  );
  t.match(bad(2 * MiB, codecIds.brotli, 10), /cannot stand for 2097152 bytes/u, 'nor more than a chunk');
  t.end();
});

t.test('auto packs only while packing is expected to move the file faster', (t) => {
  let now = 0;
  /** A transfer's pace, in bytes per ms: what the link takes, what one codec thread packs, what the sender reads and hashes raw. */
  interface Pace {
    link: number;
    pack: number;
    sender: number;
    ratio: number;
  }
  /**
   * Sends `chunks` chunks of `chunkBytes` at `pace`; returns how many went packed. Their flushes
   * are told `burst` at a time, all at the time of the last, as a socket that drained takes the
   * chunks queued behind it at once (`reversed`: the last of a burst first, as chunks of two
   * transfers on one connection may be). After every `idleEvery` chunks, once all are flushed,
   * the sender has nothing to send for `idleMs` (the next file of a folder being read, say).
   */
  const run = (
    policy: PackingPolicy,
    chunks: number,
    pace: Pace,
    { chunkBytes = MiB, burst = 1, reversed = false, idleEvery = 0, idleMs = 0 } = {},
  ): number => {
    let packedChunks = 0;
    const unflushed: [PackTicket, number][] = [];
    for (let chunk = 0; chunk < chunks; chunk += 1) {
      const ticket = policy.packNext(chunkBytes);
      const { way } = ticket;
      const pack = way === 'pack';
      const shrinks = pace.ratio >= 16 / 15;
      if (way === 'probe')
        policy.packed({ rawBytes: probeBytes, packedBytes: shrinks ? probeBytes / pace.ratio : undefined, ms: probeBytes / pace.pack });
      const wire = pack && shrinks ? chunkBytes / pace.ratio : chunkBytes;
      if (pack) policy.packed({ rawBytes: chunkBytes, packedBytes: shrinks ? wire : undefined, ms: chunkBytes / pace.pack });
      const sending = Math.max(chunkBytes / pace.sender, pack ? chunkBytes / pace.pack : 0);
      const crossing = wire / pace.link;
      if (crossing >= sending) policy.blocked(ticket);
      now += Math.max(crossing, sending);
      unflushed.push([ticket, wire]);
      if (unflushed.length >= burst) {
        const flushing = unflushed.splice(0);
        if (reversed) flushing.reverse();
        for (const [each, bytes] of flushing) policy.flushed(each, bytes);
      }
      if (idleEvery > 0 && (chunk + 1) % idleEvery === 0 && unflushed.length === 0) now += idleMs;
      if (pack) packedChunks += 1;
    }
    return packedChunks;
  };
  const clock = { now: () => now };
  const slowLink: Pace = { link: 10_000, pack: 300_000, sender: 1_000_000, ratio: 4 };
  const loopback: Pace = { link: 400_000, pack: 250_000, sender: 800_000, ratio: 4 };

  const onSlowLink = new PackingPolicy('auto', clock);
  const packedOnSlowLink = run(onSlowLink, 400, slowLink);
  t.ok(onSlowLink.packing, 'a link slower than packing, data that shrinks: packing goes on');
  t.ok(packedOnSlowLink >= 370, `and stays on (${packedOnSlowLink} of 400 chunks packed)`);

  // 4 MiB chunks flushed two at a time: a window timed over one burst would read the link as
  // thousands of times faster than it is (as one over a 100 Mbit/s link once did) and stop packing.
  const inBursts = new PackingPolicy('auto', clock);
  const packedInBursts = run(inBursts, 100, slowLink, { chunkBytes: 4 * MiB, burst: 2 });
  t.ok(inBursts.packing, 'flushes in bursts over a slow link: packing goes on');
  t.ok(packedInBursts >= 90, `and stays on (${packedInBursts} of 100 chunks packed)`);

  const onLoopback = new PackingPolicy('auto', clock);
  const packedOnLoopback = run(onLoopback, 1024, loopback);
  t.notOk(onLoopback.packing, 'a link faster than the compressor: raw');
  t.equal(packedOnLoopback, 0, 'no chunk packed');

  const incompressible = new PackingPolicy('auto', clock);
  t.equal(run(incompressible, 400, { ...slowLink, ratio: 1 }), 0, 'data that does not shrink: raw');

  const laterCompressible = new PackingPolicy('auto', clock);
  run(laterCompressible, 200, { ...slowLink, ratio: 1 });
  t.notOk(laterCompressible.packing, 'random bytes first: raw');
  run(laterCompressible, 200, slowLink);
  t.ok(laterCompressible.packing, 'then text: probed again, and packed');

  const changing = new PackingPolicy('auto', clock);
  run(changing, 200, slowLink);
  t.ok(changing.packing, 'packing while the link is slow');
  run(changing, 1000, loopback);
  t.notOk(changing.packing, 'raw again once the link got fast');

  // A folder of 2 MiB files on loopback, 50 ms between files with nothing to send: timed with
  // those gaps, the link would read as 40 MB/s, slow enough to pack; they are not the link's.
  const folderOnLoopback = new PackingPolicy('auto', clock);
  const packedInFolder = run(folderOnLoopback, 2048, loopback, { idleEvery: 2, idleMs: 50 });
  t.equal(packedInFolder, 0, 'files with pauses between them on loopback: no chunk packed');

  // Two files at a time over a slow link, each of four 256 KiB chunks, their flushes out of the
  // order decided: one policy for the connection measures the link across them.
  const folderOnSlowLink = new PackingPolicy('auto', clock);
  const packedAcrossFiles = run(folderOnSlowLink, 1600, slowLink, {
    chunkBytes: 256 * KiB,
    burst: 2,
    reversed: true,
    idleEvery: 8,
    idleMs: 5,
  });
  t.ok(folderOnSlowLink.packing, 'small files over a slow link, one policy for them all: packing goes on');
  t.ok(packedAcrossFiles >= 1400, `and stays on (${packedAcrossFiles} of 1600 chunks packed)`);

  // A file's last chunk can be a few bytes, which never shrink: a probe waits for a full chunk.
  // (A probe of one, taken as the data's ratio, once kept a folder of logs raw over a slow link.)
  const withTails = new PackingPolicy('auto', { ...clock, windowBytes: 2 * MiB, windowMs: 100 });
  const tailWays: string[] = [];
  let probedFull = false;
  for (let file = 0; file < 10 && !probedFull; file += 1) {
    const full = withTails.packNext(MiB);
    probedFull = full.way === 'probe';
    withTails.blocked(full);
    now += MiB / slowLink.link;
    withTails.flushed(full, MiB);
    const tail = withTails.packNext(3);
    tailWays.push(tail.way);
    withTails.flushed(tail, 3);
  }
  t.ok(probedFull, 'over a slow link, a probe comes, on a full chunk');
  t.same(
    tailWays.filter((way) => way !== 'raw'),
    [],
    `never on a file's 3-byte last chunk (${tailWays.length} of them)`,
  );

  let probes = 0;
  const counting = new PackingPolicy('auto', clock);
  for (let chunk = 0; chunk < 200; chunk += 1) {
    const ticket = counting.packNext(MiB);
    if (ticket.way !== 'raw') probes += 1;
    now += 1;
    counting.flushed(ticket, MiB);
  }
  t.equal(probes, 0, 'a sender the link never holds back never packs, not even a probe');

  t.equal(new PackingPolicy('always').packNext(MiB).way, 'pack');
  t.equal(new PackingPolicy('off').packNext(MiB).way, 'raw');

  const connection = {};
  const shared = connectionPolicy(connection, { codec: 'zstd', mode: 'auto' });
  t.equal(connectionPolicy(connection, { codec: 'zstd', mode: 'auto' }), shared, 'auto: one policy per connection and codec');
  t.not(connectionPolicy(connection, { codec: 'lz4', mode: 'auto' }), shared, 'another codec, another policy');
  t.not(connectionPolicy({}, { codec: 'zstd', mode: 'auto' }), shared, 'another connection, another policy');
  t.end();
});

t.test('the codecs offered are the ones both sides have; one asked for by name must be there', (t) => {
  t.same(offeredCodecs(['resume', 'compress:brotli', 'compress:nope']), ['brotli']);
  t.same(packingFor('auto', ['compress:brotli']), { codec: 'brotli', mode: 'auto' });
  t.equal(packingFor('auto', ['resume']), undefined, 'auto with an older server: off');
  t.equal(packingFor('off', ['compress:brotli']), undefined);
  t.same(packingFor('brotli', ['compress:brotli']), { codec: 'brotli', mode: 'always' });
  t.throws(() => packingFor('brotli', ['compress:lz4']), {
    code: 'ECONFIG',
    message: /does not take brotli-compressed chunks \(it offers lz4\)/u,
  });
  t.end();
});

t.test('uploads and downloads with a codec named: fewer bytes on the wire, the same file stored and fetched', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: 256 * KiB });
  const proxy = await startCutProxy(t, running.port);
  const dir = tempDir(t);
  const text = compressibleText(3 * MiB + 123);
  await writeFile(join(dir, 'log.txt'), text);
  const noise = randomBytes(1 * MiB);
  await writeFile(join(dir, 'noise.bin'), noise);
  const server = ['--server', `127.0.0.1:${proxy.port}`];

  const info = jsonOf<{ capabilities: string[] }>(t, await ferry(['info', '--json', ...server]));
  t.ok(info.capabilities.includes('compress:brotli'), 'info lists the codecs');

  let before = proxy.upstreamBytes;
  const up = await ferry(['upload', join(dir, 'log.txt'), '--compress', 'brotli', '--json', ...server]);
  const uploaded = jsonOf<{ bytesSent: number; wireBytes: number; sha256: string }>(t, up);
  t.equal(uploaded.bytesSent, text.length);
  t.ok(uploaded.wireBytes < text.length / 3, `upload: ${uploaded.wireBytes} payload bytes for ${text.length}`);
  t.ok(proxy.upstreamBytes - before < text.length / 3, `and the link carried ${proxy.upstreamBytes - before} bytes`);
  t.equal(await sha256Of(join(running.dataDir, 'files', 'log.txt')), uploaded.sha256, 'the server stores the raw bytes');

  before = proxy.downstreamBytes;
  const out = join(dir, 'back.txt');
  const down = await ferry(['download', 'log.txt', '--out', out, '--compress', 'brotli', ...server]);
  t.match(down.stdout, /^downloaded log\.txt .*, [\d.]+x smaller on the wire \(/mu, 'the result line says what compression saved');
  t.ok(proxy.downstreamBytes - before < text.length / 3, `download: the link carried ${proxy.downstreamBytes - before} bytes`);
  t.ok((await readFile(out)).equals(text), 'the same bytes');

  before = proxy.upstreamBytes;
  const random = jsonOf<{ wireBytes: number }>(
    t,
    await ferry(['upload', join(dir, 'noise.bin'), '--compress', 'brotli', '--json', ...server]),
  );
  t.equal(random.wireBytes, noise.length, 'data that does not shrink goes raw');
  t.ok(proxy.upstreamBytes - before >= noise.length);

  const off = jsonOf<{ wireBytes: number }>(
    t,
    await ferry(['upload', join(dir, 'log.txt'), '--as', 'plain.txt', '--compress', 'off', '--json', ...server]),
  );
  t.equal(off.wireBytes, text.length, '--compress off sends it raw');
});

t.test('auto turns packing on over a slow link, and the file arrives whole', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: 256 * KiB });
  // Measuring windows are at least 8 MiB and a second, far more than socket buffers: the first
  // ones go raw. A link slow enough to be what holds the sender back even on a busy machine, and
  // to give the policy several windows (raw, 64 MiB would take 8 s over it).
  const proxy = await startCutProxy(t, running.port, { bytesPerSecond: 8 * MiB });
  const dir = tempDir(t);
  const text = compressibleText(64 * MiB);
  await writeFile(join(dir, 'big.log'), text);
  const client = running.client({ port: proxy.port });
  t.teardown(() => client.close());
  const before = proxy.upstreamBytes;
  const result = await client.upload(join(dir, 'big.log'), { name: 'big.log' });
  const carried = proxy.upstreamBytes - before;
  // Raw, it would be all of it: the first windows go raw, then (packed 8x or so) most of the rest goes packed.
  t.ok(carried < text.length * 0.75, `${carried} bytes crossed the link for ${text.length}`);
  t.equal(result.wireBytes < text.length * 0.75, true, 'and the result says so');
  t.equal(await sha256Of(join(running.dataDir, 'files', 'big.log')), result.sha256, 'stored whole and verified');
});

t.test('auto over a slow link packs a folder of files each too small to measure it alone, both ways', async (t) => {
  // Files of 2 MiB: a measuring window takes 8 MiB and a second, so only one policy for the whole
  // connection, measuring across files, ever packs them (one per file sent them all raw).
  const running = await startServer(t, { chunkSizeBytes: 256 * KiB });
  const proxy = await startCutProxy(t, running.port, { bytesPerSecond: 8 * MiB });
  const root = join(tempDir(t), 'logs');
  await mkdir(root);
  const files = 32;
  const text = compressibleText(2 * MiB);
  for (let index = 0; index < files; index += 1)
    await writeFile(join(root, `day${index}.log`), Buffer.concat([Buffer.from(`${index}\n`), text]));
  const total = files * (text.length + 2) + 22; // the first line: `N\n`, 2 or 3 bytes
  const client = running.client({ port: proxy.port });
  t.teardown(() => client.close());
  const cache = HashCache.open(tempDir(t, 'ferry-cache'));
  t.teardown(() => cache.close());

  const up = await uploadTree(client, root, 'logs', { cache });
  t.match(up, { files, moved: files, failed: [] });
  t.ok(proxy.upstreamBytes < total * 0.75, `upload: ${proxy.upstreamBytes} bytes crossed the link for ${total}`);
  t.ok(up.wireBytes < up.bytesMoved * 0.75, `and the summary says so (${up.wireBytes} of ${up.bytesMoved})`);

  const out = join(tempDir(t), 'logs-out');
  const down = await downloadTree(client, 'logs', out, { cache });
  t.match(down, { files, moved: files, failed: [] });
  t.ok(proxy.downstreamBytes < total * 0.75, `download: ${proxy.downstreamBytes} bytes crossed the link for ${total}`);
  t.ok(down.wireBytes < down.bytesMoved * 0.75, `and the summary says so (${down.wireBytes} of ${down.bytesMoved})`);
  for (let index = 0; index < files; index += 1) {
    const name = `day${index}.log`;
    t.ok((await readFile(join(out, name))).equals(await readFile(join(root, name))), `${name} stored and fetched exact`);
  }
});

t.test('small files go packed too (a whole put up, a one-chunk download) when a codec is named', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: 256 * KiB });
  const proxy = await startCutProxy(t, running.port);
  const root = join(tempDir(t), 'notes');
  await mkdir(root);
  const files = 40;
  let total = 0;
  for (let index = 0; index < files; index += 1) {
    const bytes = Buffer.concat([Buffer.from(`${index}\n`), compressibleText(10 * KiB + index * 5000)]);
    await writeFile(join(root, `note${index}.txt`), bytes);
    total += bytes.length;
  }
  const client = running.client({ port: proxy.port });
  t.teardown(() => client.close());
  const cache = HashCache.open(tempDir(t, 'ferry-cache'));
  t.teardown(() => cache.close());

  const up = await uploadTree(client, root, 'notes', { cache, compress: 'brotli' });
  t.match(up, { files, moved: files, failed: [] });
  t.ok(proxy.upstreamBytes < total / 3, `upload: ${proxy.upstreamBytes} bytes crossed the link for ${total}`);
  t.ok(up.wireBytes < up.bytesMoved / 3, `and the summary says so (${up.wireBytes} of ${up.bytesMoved})`);
  const out = join(tempDir(t), 'notes-out');
  const down = await downloadTree(client, 'notes', out, { cache, compress: 'brotli' });
  t.match(down, { files, moved: files, failed: [] });
  t.ok(proxy.downstreamBytes < total / 3, `download: ${proxy.downstreamBytes} bytes crossed the link for ${total}`);
  for (let index = 0; index < files; index += 1) {
    const name = `note${index}.txt`;
    t.ok((await readFile(join(out, name))).equals(await readFile(join(root, name))), `${name} stored and fetched exact`);
  }
});

t.test('where lz4-napi is missing, lz4 is simply not offered: the server and the client go on without it', async (t) => {
  // A preload that makes `require('lz4-napi')` fail, as on a machine where the optional package did not install.
  const hook = join(tempDir(t), 'no-lz4.cjs');
  await writeFile(
    hook,
    `const Module = require('node:module');
const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  if (request === 'lz4-napi') throw Object.assign(new Error("Cannot find module 'lz4-napi'"), { code: 'MODULE_NOT_FOUND' });
  return resolve.call(this, request, ...rest);
};
`,
  );
  const env = { NODE_OPTIONS: `--require ${hook}` };
  const server = await spawnServer(t, tempDir(t, 'ferry-no-lz4'), [], { env });
  const address = ['--server', `127.0.0.1:${server.port}`];
  const info = jsonOf<{ capabilities: string[] }>(t, await ferry(['info', '--json', ...address]));
  t.notOk(info.capabilities.includes('compress:lz4'), 'the server does not offer lz4');
  t.ok(info.capabilities.includes('compress:brotli'), 'and offers the codecs it has');

  const dir = tempDir(t);
  await writeFile(join(dir, 'app.log'), compressibleText(600 * KiB));
  const refused = await ferry(['upload', join(dir, 'app.log'), '--compress', 'lz4', ...address]);
  t.equal(refused.code, 1);
  t.match(
    refused.stderr,
    /the server does not take lz4-compressed chunks \(it offers .*brotli.*\) \(ECONFIG\)/u,
    'lz4 asked of it: ECONFIG',
  );
  const fromClient = await ferry(['upload', join(dir, 'app.log'), '--compress', 'lz4', ...address], { env });
  t.match(
    fromClient.stderr,
    /this client has no lz4 codec \(needs the optional lz4-napi package\) \(ECONFIG\)/u,
    'a client without it says so',
  );
  t.match(
    jsonOf(t, await ferry(['upload', join(dir, 'app.log'), '--json', ...address], { env })),
    { name: 'app.log' },
    'auto works without it',
  );
  t.match(
    jsonOf(t, await ferry(['download', 'app.log', '--out', join(dir, 'back.log'), '--compress', 'brotli', '--json', ...address], { env })),
    {
      name: 'app.log',
    },
  );
  t.ok((await readFile(join(dir, 'back.log'))).equals(await readFile(join(dir, 'app.log'))), 'and the file comes back whole');
});

t.test('a packed chunk corrupted on the way down is refused by the client; nothing is written in its place', async (t) => {
  // Clear text, so that a flipped byte reaches Ferry's own checks (TLS would refuse the record first).
  const running = await startServer(t, { chunkSizeBytes: 256 * KiB, tls: false });
  const dir = tempDir(t);
  const text = compressibleText(4 * MiB);
  await writeFile(join(dir, 'app.log'), text);
  await running.client().upload(join(dir, 'app.log'), { name: 'app.log' });
  const proxy = await startCutProxy(t, running.port);
  const client = running.client({ port: proxy.port, retries: 0 });
  t.teardown(() => client.close());
  await client.info(); // connected and logged in: what comes down next is the download
  // Packed, the 4 MiB are a few hundred KB on the wire: 100 KB in is inside some chunk's payload.
  const corrupted = proxy.corruptAfter(100 * KiB, 'down');
  const out = join(dir, 'back.log');
  await t.rejects(
    client.download('app.log', { out, compress: 'brotli' }),
    { code: 'ECHECKSUM', message: /app\.log: chunk at offset \d+/u },
    "the download fails that chunk's check",
  );
  await corrupted;
  t.notOk(existsSync(out), 'and leaves nothing at the destination');
  const again = await running.client({ port: proxy.port }).download('app.log', { out, compress: 'brotli' });
  t.ok(again.wireBytes < text.length / 3, 'the next download, packed too, comes whole');
  t.ok((await readFile(out)).equals(text), 'and exact');
});

t.test('a packed chunk that does not unpack fails the upload and publishes nothing', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: 256 * KiB });
  const raw = await RawClient.connect(t, running.port);
  await raw.hello();
  const xxh64 = await loadXxh64();
  const content = compressibleText(100 * KiB);
  const put = await raw.call('put', { name: 'bad.txt', size: content.length, fingerprint: await referenceFingerprint(content) });
  const stream = (put['result'] as { stream: number }).stream;
  const garbage = Buffer.alloc(1000, 0x5a);
  const packed = { codec: 'brotli', rawLength: content.length } as const;
  await raw.write(Buffer.concat([encodeChunkHead({ stream, offset: 0, xxh64: xxh64(content), length: garbage.length, packed }), garbage]));
  t.match(
    await raw.event('abort', stream),
    { code: 'ECHECKSUM', message: /brotli data does not unpack/u },
    'the upload is aborted with ECHECKSUM',
  );
  t.match(await raw.call('putEnd', { stream, sha256: '0'.repeat(64) }), { ok: false }, 'it cannot be finished');
  t.match(await raw.call('list', {}), { ok: true, result: { files: [] } }, 'nothing published');
});
