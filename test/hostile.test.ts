// Hostile-input tests for the server: garbage bytes, frames that break the limits, requests that
// break the schema, bad names, bad chunks, peers that vanish or never read, and many clients at
// once. Every subtest gets a server of its own (no state passed between tests) and ends by checking
// that an ordinary client can still upload and download a file on it, so damage from its case (a
// leaked buffer, a name left claimed, a wedged decoder) shows up there.
import { createHash, randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t, { type Test } from 'tap';
import { localCodec } from '../src/compression/codecs.js';
import { loadXxh64 } from '../src/hashing/xxh64.js';
import { encodeChunkHead, encodeControl } from '../src/protocol/encoder.js';
import { makeFile, sha256Of } from './helpers/files.js';
import { type ControlMessage, RawClient, chunkFrame, frameHead, referenceFingerprint } from './helpers/raw-client.js';
import { type RunningServer, startServer } from './helpers/server.js';
import { tempDir } from './helpers/temp-dir.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const chunkSize = 64 * KiB;
const maxControlBytes = 16 * KiB;
const CONTROL = 1;
const CHUNK = 2;

// Each subtest's data dir sits alone in a directory of its own, so "nothing was created outside
// the data dir" is checkable: that directory must never hold anything but `data`.
let root: string;
let dataDir: string;
let work: string;
let running: RunningServer;
t.beforeEach(async (t) => {
  root = tempDir(t, 'ferry-hostile');
  dataDir = join(root, 'data');
  work = tempDir(t, 'ferry-hostile-local');
  running = await startServer(t, { dataDir, chunkSizeBytes: chunkSize, inflightBudgetBytes: MiB, maxControlBytes });
});

let aliveRuns = 0;
/** An ordinary client can still upload and download a small file, byte-exact. */
async function assertServing(t: Test): Promise<void> {
  const n = ++aliveRuns;
  const local = await makeFile(work, `alive-${n}.bin`, 2 * chunkSize + 1234);
  const client = running.client();
  try {
    const up = await client.upload(local.path, { name: `alive/${n}.bin` });
    const out = join(work, `alive-${n}.out`);
    const down = await client.download(`alive/${n}.bin`, { out });
    t.ok(
      up.sha256 === local.sha256 && down.sha256 === local.sha256 && (await sha256Of(out)) === local.sha256,
      'the server still serves: a normal upload + download is exact',
    );
  } finally {
    await client.close();
  }
}

async function connectRaw(t: Test): Promise<RawClient> {
  return RawClient.connect(t, running.port);
}

/** A raw connection that has said hello and started an upload of `local` as `name`. */
async function rawUpload(
  t: Test,
  local: { bytes: Buffer },
  name: string,
): Promise<{ raw: RawClient; put: ControlMessage; stream: number; chunk: (index: number) => Buffer }> {
  const raw = await connectRaw(t);
  await raw.hello();
  const put = await raw.call('put', { name, size: local.bytes.length, fingerprint: await referenceFingerprint(local.bytes) });
  const stream = (put['result'] as { stream: number } | undefined)?.stream ?? 0;
  const chunk = (index: number): Buffer => local.bytes.subarray(index * chunkSize, Math.min((index + 1) * chunkSize, local.bytes.length));
  return { raw, put, stream, chunk };
}

/** The server sent `bye` with EPROTO as its last frame and closed the connection. */
async function expectByeAndClose(t: Test, raw: RawClient, what: string): Promise<void> {
  await raw.waitClosed();
  const byes = raw.controls.filter((message) => message['event'] === 'bye');
  t.equal(byes.length, 1, `${what}: exactly one bye`);
  t.match(byes[0], { event: 'bye', code: 'EPROTO', message: String }, `${what}: bye EPROTO`);
  t.same(raw.frames.at(-1), { kind: 'control', message: byes[0] }, `${what}: nothing follows the bye`);
  t.notOk(
    raw.frames.some((frame) => frame.kind === 'undecodable'),
    `${what}: what the server sent decodes`,
  );
  t.ok(raw.closed, `${what}: the server closed the connection`);
}

/** A control frame from literal JSON text (for keys JSON.stringify cannot produce, like `__proto__`). */
function controlFromJson(json: string): Buffer {
  const body = Buffer.from(json, 'utf8');
  return Buffer.concat([frameHead(1 + body.length, CONTROL), body]);
}

/** Every file and directory under `dir`, relative, sorted. */
async function tree(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true });
  return entries.map(String).sort();
}

t.test('garbage as the first bytes gets bye EPROTO and a close', async (t) => {
  const http = Buffer.from('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n\r\n', 'latin1');
  const raw = await connectRaw(t);
  await raw.write(http);
  await expectByeAndClose(t, raw, 'an HTTP request line');

  // With maxControlBytes 16 KiB and 64 KiB chunks, any first frame random bytes can declare is
  // settled within its first 16 KiB + 5 bytes: an unknown type, a size over a limit, a CONTROL
  // body that is not JSON, or a CHUNK (before hello, for a stream that does not exist).
  for (let round = 0; round < 8; round += 1) {
    const garbage = randomBytes(64 * KiB);
    const raw = await connectRaw(t);
    await raw.write(garbage);
    await expectByeAndClose(t, raw, `random bytes starting ${garbage.subarray(0, 8).toString('hex')}`);
  }

  // Also after a good handshake.
  const greeted = await connectRaw(t);
  await greeted.hello();
  await greeted.write(http);
  await expectByeAndClose(t, greeted, 'an HTTP request line after hello');
  await assertServing(t);
});

t.test('framing violations after hello get bye EPROTO and a close', async (t) => {
  const offsetHead = (offset: bigint): Buffer => {
    const head = Buffer.alloc(25 + 5);
    head.writeUInt32BE(1 + 20 + 5, 0);
    head.writeUInt8(CHUNK, 4);
    head.writeUInt32BE(1, 5);
    head.writeBigUInt64BE(offset, 9);
    return head;
  };
  const cases: [string, Buffer][] = [
    ['body length 0', frameHead(0, CONTROL)],
    ['an empty control body', frameHead(1, CONTROL)],
    ['frame type 0', Buffer.concat([frameHead(3, 0), Buffer.from('{}')])],
    ['frame type 3', Buffer.concat([frameHead(3, 3), Buffer.from('{}')])],
    ['frame type 255', Buffer.concat([frameHead(3, 255), Buffer.from('{}')])],
    ['a JSON array', controlFromJson('[{"id":1,"op":"info"}]')],
    ['a JSON string', controlFromJson('"info"')],
    ['JSON null', controlFromJson('null')],
    ['a JSON number', controlFromJson('42')],
    ['truncated JSON', controlFromJson('{"id":1,"op":"info"')],
    ['JSON with a byte-order mark', controlFromJson('\ufeff{"id":1,"op":"info"}')],
    ['a NUL byte', controlFromJson('\u0000')],
    ['two objects in one frame', controlFromJson('{"id":1,"op":"info"}{"id":2,"op":"info"}')],
    ['chunk offset 2^53', offsetHead(2n ** 53n)],
    ['chunk offset 2^64 - 1', offsetHead(2n ** 64n - 1n)],
  ];
  for (const [what, bytes] of cases) {
    const raw = await connectRaw(t);
    await raw.hello();
    await raw.write(bytes);
    await expectByeAndClose(t, raw, what);
  }
  // Before hello, a deeply nested body is just an invalid first message.
  const raw = await connectRaw(t);
  await raw.write(controlFromJson(`{"id":1,"op":"hello","protocol":${'['.repeat(8000)}${']'.repeat(8000)}}`));
  await expectByeAndClose(t, raw, 'a hello nested 8000 arrays deep');
  await assertServing(t);
});

t.test('a control frame declaring more than maxControlBytes is refused on its 5-byte head', async (t) => {
  for (const bodyLength of [0xffffffff, maxControlBytes + 2]) {
    for (const greet of [false, true]) {
      const raw = await connectRaw(t);
      if (greet) await raw.hello();
      // Only the head is sent: a server that waited for the body would never answer.
      await raw.write(frameHead(bodyLength, CONTROL));
      await expectByeAndClose(t, raw, `bodyLength ${bodyLength}${greet ? ' after hello' : ''}`);
    }
  }
  // The limit itself is fine: a control body of exactly maxControlBytes is read (it is not a valid
  // request, so it gets an ordinary error reply).
  const raw = await connectRaw(t);
  await raw.hello();
  const prefix = '{"id":77,"op":"info","pad":"';
  const exact = prefix + 'x'.repeat(maxControlBytes - prefix.length - 2) + '"}';
  t.equal(Buffer.byteLength(exact), maxControlBytes);
  await raw.write(controlFromJson(exact));
  t.match(await raw.reply(77), { ok: false, code: 'EPROTO' }, 'a control body of exactly maxControlBytes is read and answered');
  t.match(await raw.call('info'), { ok: true }, 'and the connection goes on');
  await assertServing(t);
});

t.test('a chunk frame declaring more than the chunk size is refused on its 5-byte head', async (t) => {
  for (const bodyLength of [1 + 20 + chunkSize + 1, 0xffffffff]) {
    const raw = await connectRaw(t);
    await raw.hello();
    const put = await raw.call('put', { name: `oversize/${bodyLength}.bin`, size: 3 * chunkSize, fingerprint: 'hostile' });
    t.match(put, { ok: true, result: { stream: Number, chunkSize } });
    await raw.write(frameHead(bodyLength, CHUNK));
    await expectByeAndClose(t, raw, `chunk bodyLength ${bodyLength}`);
  }
  // Shorter than its own fields.
  const raw = await connectRaw(t);
  await raw.hello();
  await raw.write(frameHead(20, CHUNK));
  await expectByeAndClose(t, raw, 'chunk bodyLength 20');
  await assertServing(t);
});

t.test('a first request that is not hello gets bye EPROTO and a close', async (t) => {
  const cases: [string, Buffer | Promise<Buffer>][] = [
    ['list', encodeControl({ id: 1, op: 'list' })],
    ['info', encodeControl({ id: 1, op: 'info' })],
    ['stat', encodeControl({ id: 1, op: 'stat', name: 'a' })],
    ['put', encodeControl({ id: 1, op: 'put', name: 'a', size: 1, fingerprint: 'f' })],
    ['hello without an id', encodeControl({ op: 'hello', protocol: 1, client: 'x', capabilities: [] })],
    ['hello with an extra field', encodeControl({ id: 1, op: 'hello', protocol: 1, client: 'x', capabilities: [], token: 'secret' })],
    ['hello missing capabilities', encodeControl({ id: 1, op: 'hello', protocol: 1, client: 'x' })],
    ['an unknown op', encodeControl({ id: 1, op: 'frobnicate' })],
    ['an empty object', encodeControl({})],
    ['a chunk frame', chunkFrame(1, 0, Buffer.from('hello'))],
  ];
  for (const [what, frame] of cases) {
    const raw = await connectRaw(t);
    await raw.write(await frame);
    await expectByeAndClose(t, raw, what);
    t.notOk(
      raw.controls.some((message) => 'id' in message),
      `${what}: no reply, only the bye`,
    );
  }
  await assertServing(t);
});

t.test('hello with protocol 999 gets EVERSION and the connection ends', async (t) => {
  for (const protocol of [999, 0, 1, 3]) {
    const raw = await connectRaw(t);
    const reply = await raw.call('hello', { protocol, client: 'future/9', capabilities: [] });
    t.match(reply, { id: Number, ok: false, code: 'EVERSION', message: String }, `protocol ${protocol}: EVERSION`);
    await raw.waitClosed();
    t.ok(raw.closed, `protocol ${protocol}: the server closed the connection`);
    t.notOk(
      raw.controls.some((message) => message['event'] === 'bye'),
      `protocol ${protocol}: no bye (documented)`,
    );
  }
  // Requests pipelined behind a refused hello are not served.
  const raw = await connectRaw(t);
  await raw.write(
    Buffer.concat([
      encodeControl({ id: 1, op: 'hello', protocol: 999, client: '', capabilities: [] }),
      encodeControl({ id: 2, op: 'info' }),
    ]),
  );
  await raw.waitClosed();
  t.match(
    raw.controls.find((message) => message['id'] === 1),
    { ok: false, code: 'EVERSION' },
    'the refused hello is still answered EVERSION',
  );
  t.notOk(
    raw.controls.some((message) => message['id'] === 2 && message['ok'] === true),
    'a request pipelined behind a refused hello is not served',
  );
  await assertServing(t);
});

t.test('after hello, invalid requests get EPROTO replies and the same connection goes on', async (t) => {
  const raw = await connectRaw(t);
  await raw.hello();
  const sha = 'a'.repeat(64);
  const bad: [string, ControlMessage | string][] = [
    ['unknown op', { op: 'frobnicate' }],
    ['op constructor', { op: 'constructor' }],
    ['op __proto__', { op: '__proto__' }],
    ['op toString', { op: 'toString' }],
    ['op is a number', { op: 7 }],
    ['op missing', {}],
    ['info with an extra key', { op: 'info', extra: 1 }],
    ['stat with an extra key', { op: 'stat', name: 'a', force: true }],
    ['__proto__ key', '{"id":ID,"op":"info","__proto__":{"polluted":true}}'],
    ['constructor.prototype key', '{"id":ID,"op":"info","constructor":{"prototype":{"polluted":true}}}'],
    ['a name nested 6000 arrays deep', `{"id":ID,"op":"stat","name":${'['.repeat(6000)}${']'.repeat(6000)}}`],
    ['an extra key nested 6000 objects deep', `{"id":ID,"op":"info","x":${'{"a":'.repeat(2500)}1${'}'.repeat(2500)}}`],
    ['stat name is a number', { op: 'stat', name: 42 }],
    ['stat name is null', { op: 'stat', name: null }],
    ['stat name is an array', { op: 'stat', name: ['a'] }],
    ['stat name missing', { op: 'stat' }],
    ['stat name over 4096 code units', { op: 'stat', name: 'a'.repeat(4097) }],
    ['list limit is a string', { op: 'list', limit: 'ten' }],
    ['list limit 0', { op: 'list', limit: 0 }],
    ['list limit 1001', { op: 'list', limit: 1001 }],
    ['log limit 1.5', { op: 'log', limit: 1.5 }],
    ['hashes from -1', { op: 'hashes', name: 'a', from: -1, count: 1 }],
    ['hashes count 4097', { op: 'hashes', name: 'a', from: 0, count: 4097 }],
    ['hashes with name and stream', { op: 'hashes', name: 'a', stream: 1, from: 0, count: 1 }],
    ['hashes with neither name nor stream', { op: 'hashes', from: 0, count: 1 }],
    ['put size 1.5', { op: 'put', name: 'a', size: 1.5, fingerprint: 'f' }],
    ['put size -1', { op: 'put', name: 'a', size: -1, fingerprint: 'f' }],
    ['put size 2^53', { op: 'put', name: 'a', size: 2 ** 53, fingerprint: 'f' }],
    ['put size as a string', { op: 'put', name: 'a', size: '10', fingerprint: 'f' }],
    ['put empty fingerprint', { op: 'put', name: 'a', size: 1, fingerprint: '' }],
    ['put fingerprint of 129 characters', { op: 'put', name: 'a', size: 1, fingerprint: 'f'.repeat(129) }],
    ['put force is a string', { op: 'put', name: 'a', size: 1, fingerprint: 'f', force: 'yes' }],
    ['putEnd stream 0', { op: 'putEnd', stream: 0, sha256: sha }],
    ['putEnd stream 2^32', { op: 'putEnd', stream: 2 ** 32, sha256: sha }],
    ['putEnd uppercase sha256', { op: 'putEnd', stream: 1, sha256: 'A'.repeat(64) }],
    ['putEnd short sha256', { op: 'putEnd', stream: 1, sha256: 'a'.repeat(63) }],
    ['get fromChunk -1', { op: 'get', name: 'a', fromChunk: -1 }],
    ['get fromChunk 2^60', { op: 'get', name: 'a', fromChunk: 2 ** 60 }],
    ['getDirect fromChunk -1', { op: 'getDirect', name: 'a', fromChunk: -1 }],
    ['getDirectEnd result not a code', { op: 'getDirectEnd', name: 'a', sha256: sha, bytes: 1, durationMs: 1, result: 'fine' }],
    ['getDirectEnd bytes -1', { op: 'getDirectEnd', name: 'a', sha256: sha, bytes: -1, durationMs: 1, result: 'ok' }],
    ['a second hello', { op: 'hello', protocol: 1, client: 'again', capabilities: [] }],
    ['hello client over 200 characters', { op: 'hello', protocol: 1, client: 'c'.repeat(201), capabilities: [] }],
    ['hello with 65 capabilities', { op: 'hello', protocol: 1, client: 'x', capabilities: Array.from({ length: 65 }, () => 'c') }],
  ];
  let id = 1000;
  for (const [what, request] of bad) {
    id += 1;
    const frame = typeof request === 'string' ? controlFromJson(request.replace('ID', String(id))) : encodeControl({ id, ...request });
    await raw.write(frame);
    const reply = await raw.reply(id);
    t.match(reply, { id, ok: false, code: 'EPROTO', message: String }, `${what}: EPROTO reply`);
    t.match(await raw.call('info'), { ok: true, result: { protocolVersion: 2 } }, `${what}: the same connection still answers info`);
  }
  // Whole-number ids out of range are echoed in the error reply.
  for (const badId of [-1, 2 ** 32]) {
    await raw.write({ id: badId, op: 'info' });
    t.match(await raw.reply(badId), { ok: false, code: 'EPROTO' }, `id ${badId}: EPROTO reply`);
  }
  // A server on its data directory offers no direct reads: asking for one, or reporting one (a log entry of the client's making), is ECONFIG.
  t.match(await raw.call('getDirect', { name: 'a' }), { ok: false, code: 'ECONFIG' }, 'getDirect: ECONFIG');
  const report = { name: 'a', sha256: sha, bytes: 1, durationMs: 1, result: 'ok' };
  t.match(await raw.call('getDirectEnd', report), { ok: false, code: 'ECONFIG' }, 'getDirectEnd: ECONFIG');
  // Sizes no disk holds: refused up front by the file size limit, never a crash or EINTERNAL.
  for (const size of [2 ** 53 - 1, 2 ** 50]) {
    const reply = await raw.call('put', { name: `huge/${size}.bin`, size, fingerprint: 'hostile' });
    t.match(reply, { ok: false, code: 'EQUOTA' }, `put size ${size}: EQUOTA`);
  }
  t.match(await raw.call('info'), { ok: true }, 'the connection still answers info after all of them');
  t.notOk(raw.closed, 'and is still open');
  t.equal(({} as Record<string, unknown>)['polluted'], undefined, 'no prototype pollution in this process');
  raw.destroy();

  // Without a numeric id the server cannot reply: bye, even after hello.
  for (const [what, message] of [
    ['id as a string', { id: '7', op: 'info' }],
    ['no id', { op: 'info' }],
    ['id null', { id: null, op: 'info' }],
    // An id that is not a whole number is no id: never echoed back as 1.5 or 1e+300.
    ['id 1.5', { id: 1.5, op: 'info' }],
    ['id 1e300', { id: 1e300, op: 'info' }],
  ] as const) {
    const raw = await connectRaw(t);
    await raw.hello();
    await raw.write(message);
    await expectByeAndClose(t, raw, `after hello, ${what}`);
  }
  await assertServing(t);
});

t.test('bad names get EBADNAME from every operation, and nothing escapes the data dir', async (t) => {
  const rootBefore = await readdir(root);
  t.same(rootBefore, ['data'], 'the data dir is alone in its parent');
  const segment256 = 'a'.repeat(256);
  // Five segments of at most 255 bytes: 255 * 3 + 254 + 4 slashes = 1023 bytes, plus the last one.
  const longName = (last: string): string => ['b'.repeat(255), 'b'.repeat(255), 'b'.repeat(255), 'b'.repeat(254), last].join('/');
  const name1024 = longName('c');
  const name1025 = longName('cc');
  t.equal(Buffer.byteLength(name1024), 1024);
  t.equal(Buffer.byteLength(name1025), 1025);
  const badNames: [string, string][] = [
    ['empty', ''],
    ['../x', '../x'],
    ['../escape', '../escape'],
    ['../../escape', '../../escape'],
    ['../../../escape', '../../../escape'],
    ['/etc/passwd', '/etc/passwd'],
    ['a/../b', 'a/../b'],
    ['a/../../escape', 'a/../../escape'],
    ['a//b', 'a//b'],
    ['a/', 'a/'],
    ['/', '/'],
    ['.', '.'],
    ['..', '..'],
    ['./a', './a'],
    ['a/.', 'a/.'],
    ['a/./b', 'a/./b'],
    ['a\\b', 'a\\b'],
    ['..\\escape', '..\\escape'],
    ['NUL inside', 'a\u0000b'],
    ['NUL at the end', 'escape\u0000'],
    ['newline inside', 'a\nb'],
    ['DEL', 'a\u007fb'],
    ['C1 control U+0085', 'a\u0085b'],
    ['lone surrogate', 'a\ud800b'],
    ['256-byte segment', segment256],
    ['256-byte segment in a path', `dir/${segment256}`],
    ['256 bytes of multi-byte UTF-8 in a segment', 'é'.repeat(128)],
    ['1025-byte name', name1025],
  ];
  const raw = await connectRaw(t);
  await raw.hello();
  const ops: [string, (name: string) => ControlMessage][] = [
    ['stat', (name) => ({ name })],
    ['put', (name) => ({ name, size: 10, fingerprint: 'hostile' })],
    ['put force', (name) => ({ name, size: 0, fingerprint: 'hostile', force: true })],
    ['delete', (name) => ({ name })],
    ['get', (name) => ({ name })],
    ['hashes', (name) => ({ name, from: 0, count: 1 })],
  ];
  // All pipelined in one write, then every reply checked.
  const sent: { what: string; id: number }[] = [];
  for (const [op, fields] of ops) {
    for (const [label, name] of badNames) {
      sent.push({ what: `${op} ${label}`, id: raw.send(op.split(' ')[0]!, fields(name)) });
    }
  }
  for (const { what, id } of sent) {
    t.match(await raw.reply(id), { ok: false, code: 'EBADNAME' }, `${what}: EBADNAME`);
  }
  t.match(await raw.call('info'), { ok: true }, 'the connection still answers info');

  // The limits themselves are valid names (not found, not refused), so the cases above are not vacuous.
  for (const [label, name] of [
    ['255-byte segment', 'a'.repeat(255)],
    ['1024-byte name', name1024],
    ['dots inside a segment', 'a..b/...'],
    ['spaces and punctuation', 'a b:*?"<>|'],
  ] as const) {
    t.match(await raw.call('stat', { name }), { ok: false, code: 'ENOENT' }, `${label}: a valid name (ENOENT)`);
  }

  // A put with an escaping name, followed by chunks and a putEnd for the stream it would have had.
  const put = await raw.call('put', { name: '../escape', size: 5, fingerprint: 'hostile' });
  t.match(put, { ok: false, code: 'EBADNAME' });
  t.match(await raw.call('putEnd', { stream: 1, sha256: 'a'.repeat(64) }), { ok: false, code: 'ENOENT' }, 'no stream was opened for it');
  raw.destroy();

  t.same(await readdir(root), ['data'], 'the parent of the data dir has no new entries');
  const inside = await tree(dataDir);
  t.same(
    inside.filter((path) => /escape|passwd/u.test(path)),
    [],
    'nothing named after a refused name exists anywhere in the data dir',
  );
  t.same(
    (await readdir(dataDir)).sort(),
    ['admin-password', 'db', 'files', 'partial', 'server.pid', 'tls'],
    'the data dir holds only its own directories, lock, first admin password and certificate',
  );
  await assertServing(t);
});

t.test('a chunk for a stream that was never opened gets bye EPROTO and a close', async (t) => {
  const raw = await connectRaw(t);
  await raw.hello();
  await raw.write(await chunkFrame(7, 0, Buffer.from('hello')));
  await expectByeAndClose(t, raw, 'chunk for stream 7');

  // Also a stream already ended by putEnd, and a download stream.
  const bytes = randomBytes(100);
  const other = await connectRaw(t);
  await other.hello();
  const put = await other.call('put', { name: 'streams/one.bin', size: bytes.length, fingerprint: 'hostile' });
  t.match(put, { ok: true, result: { stream: 1 } });
  await other.write(await chunkFrame(1, 0, bytes));
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  t.match(await other.call('putEnd', { stream: 1, sha256 }), { ok: true, result: { name: 'streams/one.bin', sha256 } });
  await other.write(await chunkFrame(1, 0, bytes));
  await expectByeAndClose(t, other, 'chunk for a stream ended by putEnd');

  const third = await connectRaw(t);
  await third.hello();
  const get = await third.call('get', { name: 'streams/one.bin' });
  t.match(get, { ok: true, result: { stream: 1, size: 100 } });
  await third.until('the download chunk', () => third.frames.find((frame) => frame.kind === 'chunk'));
  await third.write(await chunkFrame(1, 0, bytes));
  await expectByeAndClose(t, third, 'chunk on a download stream');
  await assertServing(t);
});

t.test('chunks sent out of order, and a chunk sent twice, still give the file its true SHA-256', async (t) => {
  const local = await makeFile(work, 'unordered.bin', 5 * chunkSize + 321);
  // The server hashes chunks as they land, in order; these orders defeat that and must fall back.
  const orders: [string, number[]][] = [
    ['reversed', [5, 4, 3, 2, 1, 0]],
    ['one late', [0, 2, 3, 4, 5, 1]],
    ['chunk 2 twice', [0, 1, 2, 2, 3, 4, 5]],
  ];
  for (const [what, order] of orders) {
    const name = `unordered/${what.replaceAll(' ', '-')}.bin`;
    const { raw, stream, chunk } = await rawUpload(t, local, name);
    await raw.write(await Promise.all(order.map((index) => chunkFrame(stream, index * chunkSize, chunk(index)))));
    const end = await raw.call('putEnd', { stream, sha256: local.sha256 });
    t.match(
      end,
      { ok: true, result: { name, size: local.bytes.length, sha256: local.sha256 } },
      `${what}: putEnd accepts the true SHA-256`,
    );
    raw.destroy();
    const client = running.client();
    const out = join(work, `unordered-${what.replaceAll(' ', '-')}.out`);
    await client.download(name, { out });
    t.equal(await sha256Of(out), local.sha256, `${what}: the stored bytes are exact`);
    await client.close();
  }
  // And a wrong SHA-256 is still refused when the chunks came in order.
  const { raw, stream, chunk } = await rawUpload(t, local, 'unordered/wrong.bin');
  await raw.write(await Promise.all([0, 1, 2, 3, 4, 5].map((index) => chunkFrame(stream, index * chunkSize, chunk(index)))));
  t.match(await raw.call('putEnd', { stream, sha256: 'f'.repeat(64) }), { ok: false, code: 'ECHECKSUM' }, 'a wrong SHA-256 gets ECHECKSUM');
  raw.destroy();
});

t.test('a chunk whose xxh64 does not match gets an abort ECHECKSUM, and the name can be uploaded afterwards', async (t) => {
  const local = await makeFile(work, 'checksum.bin', 3 * chunkSize + 100);
  const name = 'checksum/bad.bin';
  const { raw, put, stream, chunk } = await rawUpload(t, local, name);
  t.match(put, { ok: true, result: { stream: Number, resumed: false } });
  const good = await chunkFrame(stream, 0, chunk(0));
  const bad = await chunkFrame(stream, chunkSize, chunk(1), 0x0123456789abcdefn);
  await raw.write([good, bad]);
  const abort = await raw.event('abort', stream);
  t.match(abort, { event: 'abort', stream, code: 'ECHECKSUM', message: String }, 'abort ECHECKSUM for the stream');
  // Late chunks of the aborted stream are skipped, not fatal; the connection goes on.
  await raw.write(await chunkFrame(stream, 2 * chunkSize, chunk(2)));
  t.match(await raw.call('info'), { ok: true }, 'the connection still answers after the abort');
  t.notOk(raw.closed, 'the connection is not closed by a bad chunk');
  t.notOk(
    raw.controls.some((message) => message['event'] === 'bye'),
    'no bye',
  );

  const fresh = running.client();
  const up = await fresh.upload(local.path, { name });
  t.equal(up.sha256, local.sha256, 'a fresh client uploads the same name');
  const out = join(work, 'checksum.out');
  await fresh.download(name, { out });
  t.equal(await sha256Of(out), local.sha256, 'and it downloads exact');
  await fresh.close();
  raw.destroy();
  await assertServing(t);
});

t.test('a packed chunk that unpacks to bytes other than its xxh64 describes gets the same abort ECHECKSUM as a raw one', async (t) => {
  const local = await makeFile(work, 'packed-checksum.bin', 3 * chunkSize + 100);
  const xxh64 = await loadXxh64();
  // Valid brotli of other bytes, as many as chunk 1 has: it unpacks cleanly, so only the xxh64 can tell.
  const other = Buffer.alloc(chunkSize, 0x61);
  const packedOther = localCodec('brotli')!.compress(other);
  const aborts: ControlMessage[] = [];
  for (const kind of ['packed', 'raw'] as const) {
    const name = `checksum/${kind}.bin`;
    const { raw, stream, chunk } = await rawUpload(t, local, name);
    const bad =
      kind === 'packed'
        ? Buffer.concat([
            encodeChunkHead({
              stream,
              offset: chunkSize,
              xxh64: xxh64(chunk(1)),
              length: packedOther.length,
              packed: { codec: 'brotli', rawLength: chunkSize },
            }),
            packedOther,
          ])
        : await chunkFrame(stream, chunkSize, other, xxh64(chunk(1)));
    await raw.write([await chunkFrame(stream, 0, chunk(0)), bad]);
    const abort = await raw.event('abort', stream);
    t.match(
      abort,
      { event: 'abort', stream, code: 'ECHECKSUM', message: `chunk at offset ${chunkSize}: xxh64 mismatch` },
      `${kind}: abort ECHECKSUM about the xxh64`,
    );
    aborts.push({ ...abort, stream: undefined });
    t.match(await raw.call('putEnd', { stream, sha256: local.sha256 }), { ok: false }, `${kind}: the upload cannot be finished`);
    t.notOk(raw.closed, `${kind}: the connection is not closed by a bad chunk`);
    raw.destroy();
  }
  t.same(aborts[0], aborts[1], 'the packed chunk is refused exactly as the raw one is');
  const client = running.client();
  t.teardown(() => client.close());
  t.same(await client.list(), [], 'nothing is published');
  // The other bytes were not kept as verified chunk 1: an upload of the name afterwards stores the exact file.
  await client.upload(local.path, { name: 'checksum/packed.bin' });
  const out = join(work, 'packed-checksum.out');
  await client.download('checksum/packed.bin', { out });
  t.equal(await sha256Of(out), local.sha256, 'the name is then uploaded exact');
  await assertServing(t);
});

t.test('one upload per name: a second put of a name being uploaded gets EBUSY', async (t) => {
  // Sequential puts on one connection: the documented rule holds.
  const raw = await connectRaw(t);
  await raw.hello();
  t.match(await raw.call('put', { name: 'writer/seq.bin', size: 100, fingerprint: 'one' }), { ok: true });
  t.match(
    await raw.call('put', { name: 'writer/seq.bin', size: 100, fingerprint: 'two' }),
    { ok: false, code: 'EBUSY' },
    'sequential: EBUSY',
  );

  // The same two puts pipelined in one write.
  await raw.write([
    encodeControl({ id: 501, op: 'put', name: 'writer/pipelined.bin', size: 100, fingerprint: 'one' }),
    encodeControl({ id: 502, op: 'put', name: 'writer/pipelined.bin', size: 100, fingerprint: 'two' }),
  ]);
  const replies = [await raw.reply(501), await raw.reply(502)];
  t.same(
    replies.map((reply) => (reply['ok'] === true ? 'ok' : reply['code'])),
    ['ok', 'EBUSY'],
    'pipelined: the second put of the name gets EBUSY',
  );
  raw.destroy();

  // Two reconnecting clients waiting to take over the same upload: at most one may end up with it.
  const holder = await connectRaw(t);
  await holder.hello();
  t.match(await holder.call('put', { name: 'writer/takeover.bin', size: 100, fingerprint: 'same' }), { ok: true });
  const [b, c] = [await connectRaw(t), await connectRaw(t)];
  await b.hello();
  await c.hello();
  const idB = b.send('put', { name: 'writer/takeover.bin', size: 100, fingerprint: 'same' });
  const idC = c.send('put', { name: 'writer/takeover.bin', size: 100, fingerprint: 'same' });
  // A round trip on each: both puts have been read and are waiting for the holder.
  await b.call('info');
  await c.call('info');
  holder.destroy();
  const replyB = await b.reply(idB, 10_000);
  const replyC = await c.reply(idC, 10_000);
  // Round trips again, so an abort sent before the later reply has arrived.
  await b.call('info');
  await c.call('info');
  const live = [
    [b, replyB],
    [c, replyC],
  ].filter(([raw, reply]) => {
    const message = reply as ControlMessage;
    if (message['ok'] !== true) return false;
    const stream = (message['result'] as { stream: number }).stream;
    return !(raw as RawClient).controls.some((event) => event['event'] === 'abort' && event['stream'] === stream);
  });
  t.equal(
    live.length,
    1,
    `exactly one of the two waiting clients holds the upload (replies: ${JSON.stringify(replyB['code'] ?? 'ok')}, ${JSON.stringify(replyC['code'] ?? 'ok')})`,
  );
  b.destroy();
  c.destroy();
  await assertServing(t);
});

t.test('a second put of the same file on the same connection gets EBUSY, and its first upload goes on', async (t) => {
  const local = await makeFile(work, 'twice.bin', 2 * chunkSize + 5);
  const fingerprint = await referenceFingerprint(local.bytes);
  const { raw, stream, chunk } = await rawUpload(t, local, 'twice/file.bin');
  t.match(
    await raw.call('put', { name: 'twice/file.bin', size: local.bytes.length, fingerprint }),
    { ok: false, code: 'EBUSY' },
    'the second put: EBUSY',
  );
  t.notOk(
    raw.controls.some((message) => message['event'] === 'abort'),
    'the first upload was not aborted',
  );
  const chunks = [0, 1, 2].map(chunk);
  await raw.write(await Promise.all(chunks.map((bytes, index) => chunkFrame(stream, index * chunkSize, bytes))));
  t.match(await raw.call('putEnd', { stream, sha256: local.sha256 }), { ok: true, result: { sha256: local.sha256 } }, 'and it completes');
  // After putEnd, the stream is closed: a chunk for it is a protocol error.
  await raw.write(await chunkFrame(stream, 0, chunks[0]!));
  await expectByeAndClose(t, raw, 'a chunk after putEnd');
  await assertServing(t);
});

t.test('a folder emptied by delete can become a file name', async (t) => {
  const local = await makeFile(work, 'prune.bin', 1000);
  const client = running.client();
  await client.upload(local.path, { name: 'prune/deep/file.bin' });
  await client.delete('prune/deep/file.bin');
  const up = await client.upload(local.path, { name: 'prune/deep' });
  t.equal(up.sha256, local.sha256, 'prune/deep, a folder until its file was deleted, is now a file');
  await t.rejects(client.upload(local.path, { name: 'prune' }), { code: 'EEXIST' }, 'prune is still a folder (of prune/deep)');
  await client.close();
});

t.test('a chunk at a misaligned offset or of the wrong length gets bye EPROTO and a close', async (t) => {
  const size = 3 * chunkSize + 100;
  const cases: [string, number, number][] = [
    ['offset 1000', 1000, chunkSize],
    ['offset chunkSize - 1', chunkSize - 1, chunkSize],
    ['offset 0, 100 bytes', 0, 100],
    ['offset 0, 0 bytes', 0, 0],
    ['offset chunkSize, chunkSize - 1 bytes', chunkSize, chunkSize - 1],
    ['last chunk, a whole chunk of bytes', 3 * chunkSize, chunkSize],
    ['last chunk, 99 bytes', 3 * chunkSize, 99],
    ['past the end', 4 * chunkSize, 100],
    ['far past the end', 2 ** 40, 100],
  ];
  let n = 0;
  for (const [what, offset, length] of cases) {
    n += 1;
    const raw = await connectRaw(t);
    await raw.hello();
    const put = await raw.call('put', { name: `misaligned/${n}.bin`, size, fingerprint: 'hostile' });
    t.match(put, { ok: true, result: { stream: Number } });
    const stream = (put['result'] as { stream: number }).stream;
    await raw.write(await chunkFrame(stream, offset, randomBytes(length)));
    await expectByeAndClose(t, raw, what);
  }
  await assertServing(t);
});

t.test('a peer that vanishes mid-chunk leaves the server up, and the upload resumes', async (t) => {
  const local = await makeFile(work, 'vanish.bin', 5 * chunkSize + 777);
  const name = 'vanish/file.bin';
  const { raw, put, stream, chunk } = await rawUpload(t, local, name);
  t.match(put, { ok: true, result: { stream: Number, resumed: false } });
  await raw.write([await chunkFrame(stream, 0, chunk(0)), await chunkFrame(stream, chunkSize, chunk(1))]);
  // A control frame after them is read only once both chunks have been taken in.
  t.match(await raw.call('info'), { ok: true }, 'the server took in two whole chunks');
  const third = await chunkFrame(stream, 2 * chunkSize, chunk(2));
  t.equal(await raw.write(third.subarray(0, 25 + chunkSize / 2)), undefined, 'half of the third chunk is handed to the OS');
  raw.destroy();
  await raw.waitClosed();

  const client = running.client();
  const up = await client.upload(local.path, { name });
  t.equal(up.sha256, local.sha256, 'the upload completes with the right sha256');
  t.equal(up.resumed, true, 'it resumes the session the vanished peer left');
  t.ok(up.bytesSent <= local.bytes.length - 2 * chunkSize, `the two whole chunks are not sent again (${up.bytesSent} bytes sent)`);
  const out = join(work, 'vanish.out');
  await client.download(name, { out });
  t.equal(await sha256Of(out), local.sha256, 'and downloads exact');
  await client.close();

  // The same, with the head of a control frame cut short.
  const cut = await connectRaw(t);
  await cut.hello();
  await cut.write(encodeControl({ id: 9, op: 'list', prefix: 'x'.repeat(100) }).subarray(0, 40));
  cut.destroy();
  await cut.waitClosed();
  await assertServing(t);
});

t.test('a client that sends many requests without reading replies does not hurt the server', async (t) => {
  for (const [what, count, request] of [
    ['info', 2000, { op: 'info' }],
    // Bigger replies: several MiB in all, more than the socket buffers hold, so the server must
    // stop reading this client until it reads.
    ['log limit 1000', 2000, { op: 'log', limit: 1000 }],
  ] as const) {
    const raw = await connectRaw(t);
    await raw.hello();
    raw.socket.pause();
    const firstId = 10_000;
    const frames = Array.from({ length: count }, (_, index) => encodeControl({ id: firstId + index, ...request }));
    const written = raw.write(frames);
    // While this client reads nothing, another one is served.
    const other = running.client();
    t.match(await other.info(), { protocolVersion: 2 }, `${what}: another client is served while this one does not read`);
    await other.close();
    let replyBytes = 0;
    raw.socket.on('data', (data: Buffer) => {
      replyBytes += data.length;
    });
    raw.socket.resume();
    await raw.until(`${count} replies`, () => (raw.controls.length >= count + 1 ? true : undefined), 20_000);
    t.equal(await written, undefined, `${what}: every request was written`);
    const ids = raw.controls.map((message) => message['id']).filter((id): id is number => typeof id === 'number' && id >= firstId);
    t.equal(new Set(ids).size, count, `${what}: ${count} distinct replies (${replyBytes} bytes)`);
    t.ok(
      raw.controls.slice(1).every((message) => message['ok'] === true),
      `${what}: all ok`,
    );
    t.match(await raw.call('info'), { ok: true }, `${what}: the connection still works`);
    raw.destroy();
  }
  await assertServing(t);
});

t.test('a client that opens many downloads and never reads them does not starve other clients', async (t) => {
  const big = await makeFile(work, 'stall.bin', MiB);
  const setup = running.client();
  await setup.upload(big.path, { name: 'stall/big.bin' });
  await setup.close();
  const { descriptors } = running.server;
  const descriptorsBefore = descriptors.inUse;
  const raw = await connectRaw(t);
  await raw.hello();
  const gets = 48;
  const ids = Array.from({ length: gets }, () => raw.send('get', { name: 'stall/big.bin' }));
  // Read until every get is answered (each download has started), then read nothing more.
  await raw.until('every get reply', () => (ids.every((id) => raw.controls.some((message) => message['id'] === id)) ? true : undefined));
  raw.socket.pause();

  const victim = await makeFile(work, 'victim.bin', MiB);
  const client = running.client();
  const upload = client.upload(victim.path, { name: 'stall/victim.bin' });
  const bound = 5000;
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    upload.then(
      () => 'done',
      (error: unknown) => `failed: ${String(error)}`,
    ),
    new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve('still waiting'), bound);
    }),
  ]);
  clearTimeout(timer);
  t.equal(outcome, 'done', `another client's 1 MiB upload completes within ${bound} ms while this client reads nothing`);

  raw.destroy();
  await raw.waitClosed();
  const result = await Promise.race([
    upload,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('the upload did not complete after the stalled client left')), 10_000);
    }),
  ]);
  clearTimeout(timer);
  t.equal(result.sha256, victim.sha256, 'once the stalled client is gone, the upload completes exact');
  await client.close();
  // The stalled downloads' files are closed (also those of downloads left waiting for a buffer),
  // their descriptors back in the budget. Closing is asynchronous, with no event to wait for: poll.
  const deadline = Date.now() + 5000;
  while (descriptors.inUse > descriptorsBefore && Date.now() < deadline) await sleep(20);
  t.ok(descriptors.inUse <= descriptorsBefore, `no file left open (${descriptors.inUse} descriptors in use, ${descriptorsBefore} before)`);
  await assertServing(t);
});

t.test('32 clients at once each upload and download a distinct 1 MiB file', async (t) => {
  const admin = running.client();
  const before = (await admin.info()).files;
  const clients = 32;
  const results = await Promise.allSettled(
    Array.from({ length: clients }, async (_, index) => {
      const local = await makeFile(work, `many-${index}.bin`, MiB + index * 4099);
      const client = running.client();
      try {
        const name = `many/${index}.bin`;
        const up = await client.upload(local.path, { name });
        const out = join(work, `many-${index}.out`);
        const down = await client.download(name, { out });
        const onDisk = await sha256Of(out);
        return up.sha256 === local.sha256 && down.sha256 === local.sha256 && onDisk === local.sha256;
      } finally {
        await client.close();
      }
    }),
  );
  const errors = results.flatMap((result) => (result.status === 'rejected' ? [String(result.reason)] : []));
  t.same(errors, [], '0 errors');
  t.equal(
    results.filter((result) => result.status === 'fulfilled' && result.value).length,
    clients,
    `all ${clients} round trips are exact (sha256)`,
  );
  const info = await admin.info();
  t.equal(info.files, before + clients, `info counts ${clients} more files`);
  const listed = (await admin.list('many/')).length;
  t.equal(listed, clients, 'and list shows them');
  await admin.close();
  await assertServing(t);
});

t.test('putEnd before every chunk arrived gets EINCOMPLETE, and the upload can still be finished', async (t) => {
  const local = await makeFile(work, 'incomplete.bin', 3 * chunkSize + 10);
  const { raw, stream, chunk } = await rawUpload(t, local, 'incomplete/file.bin');
  await raw.write(await chunkFrame(stream, 0, chunk(0)));
  t.match(
    await raw.call('putEnd', { stream, sha256: local.sha256 }),
    { ok: false, code: 'EINCOMPLETE', message: /3 of 4/u },
    'EINCOMPLETE names what is missing',
  );
  raw.destroy();
  const client = running.client();
  const up = await client.upload(local.path, { name: 'incomplete/file.bin' });
  t.equal(up.sha256, local.sha256, 'a later upload resumes and completes it');
  t.equal(up.bytesSent, local.bytes.length - chunkSize, 'without sending the chunk the server already had');
  await client.close();
});

t.test('get with the sha256 of other content gets ECHANGED', async (t) => {
  const local = await makeFile(work, 'changed.bin', 1000);
  const client = running.client();
  await client.upload(local.path, { name: 'changed/file.bin' });
  await client.close();
  const raw = await connectRaw(t);
  await raw.hello();
  t.match(await raw.call('get', { name: 'changed/file.bin', sha256: '0'.repeat(64) }), { ok: false, code: 'ECHANGED' }, 'ECHANGED');
  raw.destroy();
});

t.test('a file stored with bigger chunks than the server now uses: get answers ECONFIG, nothing else breaks', async (t) => {
  const dataDir = tempDir(t, 'ferry-data');
  const local = await makeFile(work, 'notyet.bin', 300 * KiB);
  const big = await startServer(t, { dataDir, chunkSizeBytes: 128 * KiB, inflightBudgetBytes: MiB });
  const writer = big.client();
  await writer.upload(local.path, { name: 'notyet.bin' });
  await writer.close();
  await big.server.close();
  const small = await startServer(t, { dataDir, chunkSizeBytes: 64 * KiB, inflightBudgetBytes: MiB });
  const reader = small.client();
  t.match(await reader.stat('notyet.bin'), { size: local.bytes.length, sha256: local.sha256, chunkSize: 128 * KiB }, 'stat still works');
  await t.rejects(reader.download('notyet.bin', { out: join(work, 'notyet.out') }), { code: 'ECONFIG' }, 'download: ECONFIG');
  await reader.close();
});
