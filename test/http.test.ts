/**
 * The HTTP side (docs/http.md): credentials (Bearer, Basic, the page's cookie and its same-origin
 * rule), the JSON API on the same handlers and rules as the Ferry protocol, and downloads with
 * ranges, validators and digests, checked chunk by chunk as a Ferry download is.
 */
import { createHash } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import { connect } from 'node:net';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { makeFile } from './helpers/files.js';
import { basic, bearer, startHttpSide } from './helpers/http.js';
import { testPassword, testUser } from './helpers/accounts.js';
import { startServer } from './helpers/server.js';
import { tempDir } from './helpers/temp-dir.js';

const KiB = 1024;
/** Small chunks, so ranges cross chunk boundaries with small files. */
const chunkSizeBytes = 64 * KiB;

t.test('without credentials, or with wrong ones: 401 with the schemes to use; nothing is served', async (t) => {
  const running = await startServer(t);
  const http = await startHttpSide(running);
  const dir = tempDir(t);
  const file = await makeFile(dir, 'secret.bin', 1000);
  await running.client().upload(file.path, { name: 'secret.bin' });
  for (const [label, path, headers] of [
    ['no credentials, API', '/api/files', {}],
    ['no credentials, download', '/files/secret.bin', {}],
    ['an unknown token', '/files/secret.bin', bearer('A'.repeat(43))],
    ['a malformed token', '/api/me', bearer('not-a-token')],
    ['a wrong password', '/files/secret.bin', basic(testUser, 'wrong-password')],
    ['an unknown scheme', '/api/me', { Authorization: 'Digest abc' }],
  ] as const) {
    const answer = await http.request(path, { headers });
    t.equal(answer.status, 401, `${label}: 401`);
    t.equal(answer.json<{ error: { code: string } }>().error.code, 'EAUTH', `${label}: code EAUTH`);
    t.match(
      answer.headers['www-authenticate'],
      /Bearer realm="ferry".*Basic realm="ferry"/u,
      `${label}: Bearer and Basic offered (loopback)`,
    );
    t.notOk(answer.body.includes(file.bytes.subarray(0, 100)), `${label}: no byte of the file`);
  }
});

t.test('the JSON API: the same answers as the Ferry protocol, named relative to the account', async (t) => {
  const running = await startServer(t, { chunkSizeBytes });
  const http = await startHttpSide(running);
  const dir = tempDir(t);
  const client = running.client();
  for (const name of ['a.bin', 'b.bin', 'c/d.bin']) await client.upload((await makeFile(dir, name.replace('/', '_'), 3000)).path, { name });
  const auth = bearer(running.token);

  const me = await http.request('/api/me', { headers: auth });
  t.same(me.json(), { user: testUser, role: 'admin', root: '' }, 'me: the account');
  t.equal(me.headers['cache-control'], 'no-store', 'API answers are not cached');

  const firstPage = (await http.request('/api/files?limit=2', { headers: auth })).json<{ files: { name: string }[]; next: string }>();
  t.same(
    firstPage.files.map((file) => file.name),
    ['a.bin', 'b.bin'],
    'files: the first page',
  );
  const secondPage = (await http.request(`/api/files?limit=2&after=${encodeURIComponent(firstPage.next)}`, { headers: auth })).json<{
    files: { name: string }[];
    next?: string;
  }>();
  t.same(
    secondPage.files.map((file) => file.name),
    ['c/d.bin'],
    'files: the page after',
  );
  t.equal(secondPage.next, undefined, 'files: no page after the last');
  const prefixed = (await http.request('/api/files?prefix=c%2F', { headers: auth })).json<{ files: { name: string }[] }>();
  t.same(
    prefixed.files.map((file) => file.name),
    ['c/d.bin'],
    'files: by prefix',
  );

  const stat = await http.request('/api/files/c%2Fd.bin', { headers: auth });
  t.equal(stat.status, 200, 'stat of a name with a slash, encoded');
  t.same(stat.json(), await client.stat('c/d.bin'), 'stat: what the Ferry protocol answers');
  t.same((await http.request('/api/files/c/d.bin', { headers: auth })).json(), stat.json(), 'stat: the slash may stay as it is');

  const missing = await http.request('/api/files/nope.bin', { headers: auth });
  t.equal(missing.status, 404, 'stat of a missing file: 404');
  t.equal(missing.json<{ error: { code: string } }>().error.code, 'ENOENT', 'with ENOENT');

  const info = (await http.request('/api/info', { headers: auth })).json<Record<string, unknown>>();
  const { version, files, bytes, capabilities } = await client.info();
  t.match(info, { version, files, bytes, capabilities }, 'info: what the protocol answers');
  t.equal(info['files'], 3, 'info: the files');

  const log = (await http.request('/api/log?limit=2', { headers: auth })).json<{ entries: { op: string; name: string }[] }>();
  t.equal(log.entries.length, 2, 'log: limit');
  t.same(
    log.entries.map((entry) => entry.op),
    ['upload', 'upload'],
    'log: the transfers',
  );

  const badLimit = await http.request('/api/files?limit=lots', { headers: auth });
  t.equal(badLimit.status, 400, 'a bad limit: 400');
  t.equal(badLimit.json<{ error: { code: string } }>().error.code, 'EPROTO', 'with EPROTO, from the request schema');
  const wrongMethod = await http.request('/api/info', { method: 'POST', headers: auth });
  t.equal(wrongMethod.status, 400, 'a method the API does not take: 400');
  t.equal(wrongMethod.headers['allow'], 'GET', 'with Allow');
  t.equal((await http.request('/api/nothing', { headers: auth })).status, 404, 'an unknown API path: 404');
  t.equal((await http.request('/', { headers: auth })).status, 200, 'the page');
});

t.test("roles and roots: each account sees its own files; another account's file is 404; a reader cannot delete", async (t) => {
  const running = await startServer(t);
  const http = await startHttpSide(running);
  const { accounts } = running.server;
  const alice = await accounts.add('alice', 'alice-password', { role: 'write' });
  const reader = await accounts.add('rita', 'rita-password', { role: 'read', root: 'alice/' });
  const aliceAuth = bearer((await accounts.issueToken(alice)).token);
  const readerAuth = bearer((await accounts.issueToken(reader)).token);
  const dir = tempDir(t);
  const client = running.client();
  const mine = await makeFile(dir, 'mine.bin', 2000);
  await client.upload(mine.path, { name: 'alice/mine.bin' });
  await client.upload((await makeFile(dir, 'other.bin', 2000)).path, { name: 'bob/other.bin' });

  const listed = (await http.request('/api/files', { headers: aliceAuth })).json<{ files: { name: string }[] }>();
  t.same(
    listed.files.map((file) => file.name),
    ['mine.bin'],
    'alice lists her root only, by her names',
  );
  t.equal((await http.request('/files/mine.bin', { headers: aliceAuth })).body.compare(mine.bytes), 0, 'and downloads her file');
  for (const path of ['/files/..%2Fbob%2Fother.bin', '/files/../bob/other.bin']) {
    const escape = await http.request(path, { headers: aliceAuth });
    t.equal(escape.status, 400, `${path}: 400, the name guard runs before the root is joined`);
    t.equal(escape.json<{ error: { code: string } }>().error.code, 'EBADNAME', `${path}: EBADNAME`);
  }
  const others = await http.request('/files/other.bin', { headers: aliceAuth });
  t.equal(others.status, 404, "another account's file: 404, as if it did not exist");

  const refused = await http.request('/api/files/mine.bin', { method: 'DELETE', headers: readerAuth });
  t.equal(refused.status, 403, 'a reader deleting: 403');
  t.equal(refused.json<{ error: { code: string } }>().error.code, 'EPERM', 'with EPERM');
  t.equal((await http.request('/files/mine.bin', { headers: readerAuth })).status, 200, 'a reader downloads');

  const deleted = await http.request('/api/files/mine.bin', { method: 'DELETE', headers: aliceAuth });
  t.equal(deleted.status, 200, 'alice deletes her file');
  t.equal((await http.request('/api/files/mine.bin', { headers: aliceAuth })).status, 404, 'it is gone');
  const log = (await http.request('/api/log', { headers: bearer(running.token) })).json<{
    entries: { op: string; user?: string; name: string }[];
  }>();
  t.match(
    log.entries.find((entry) => entry.op === 'delete'),
    { op: 'delete', user: 'alice', name: 'alice/mine.bin' },
    'the transfer log names the account',
  );
});

t.test('downloads: validators, digest, ranges, If-Range, HEAD, 304, 416', async (t) => {
  const running = await startServer(t, { chunkSizeBytes });
  const http = await startHttpSide(running);
  const dir = tempDir(t);
  const file = await makeFile(dir, 'data.bin', 5 * chunkSizeBytes + 123);
  const name = 'folder/naïve €.bin';
  await running.client().upload(file.path, { name });
  const path = `/files/${encodeURIComponent(name)}`;
  const auth = bearer(running.token);

  const whole = await http.request(path, { headers: auth });
  t.equal(whole.status, 200, 'GET: 200');
  t.equal(whole.body.compare(file.bytes), 0, 'the bytes, all of them');
  t.equal(whole.headers['content-length'], String(file.bytes.length), 'Content-Length');
  t.equal(whole.headers['etag'], `"${file.sha256}"`, 'a strong ETag from the SHA-256');
  t.equal(
    whole.headers['repr-digest'],
    `sha-256=:${createHash('sha256').update(file.bytes).digest('base64')}:`,
    'Repr-Digest: the SHA-256 of the whole file (RFC 9530)',
  );
  t.equal(whole.headers['accept-ranges'], 'bytes', 'Accept-Ranges');
  t.match(
    whole.headers['content-disposition'],
    /^attachment; filename="na.ve .\.bin"; filename\*=UTF-8''na%C3%AFve%20%E2%82%AC\.bin$/u,
    'Content-Disposition with filename* (RFC 6266)',
  );
  t.ok(whole.headers['last-modified'], 'Last-Modified');

  const head = await http.request(path, { method: 'HEAD', headers: auth });
  t.equal(head.status, 200, 'HEAD: 200');
  t.equal(head.body.length, 0, 'HEAD: no body');
  t.same(
    [head.headers['etag'], head.headers['content-length'], head.headers['repr-digest']],
    [whole.headers['etag'], whole.headers['content-length'], whole.headers['repr-digest']],
    'HEAD: the same headers',
  );

  // Across two chunk boundaries, from inside one chunk to inside another.
  const start = chunkSizeBytes - 10;
  const end = 3 * chunkSizeBytes + 5;
  const part = await http.request(path, { headers: { ...auth, Range: `bytes=${start}-${end}` } });
  t.equal(part.status, 206, 'Range: 206');
  t.equal(part.body.compare(file.bytes.subarray(start, end + 1)), 0, 'exactly the bytes asked for');
  t.equal(part.headers['content-range'], `bytes ${start}-${end}/${file.bytes.length}`, 'Content-Range');
  const tail = await http.request(path, { headers: { ...auth, Range: 'bytes=-100' } });
  t.equal(tail.body.compare(file.bytes.subarray(-100)), 0, 'a suffix range: the last bytes');
  const open = await http.request(path, { headers: { ...auth, Range: `bytes=${file.bytes.length - 1}-` } });
  t.equal(open.body.compare(file.bytes.subarray(-1)), 0, 'an open range from the last byte');

  const resumed = await http.request(path, { headers: { ...auth, Range: 'bytes=1000-', 'If-Range': `"${file.sha256}"` } });
  t.equal(resumed.status, 206, 'If-Range with the current ETag: the range');
  const changed = await http.request(path, { headers: { ...auth, Range: 'bytes=1000-', 'If-Range': `"${'0'.repeat(64)}"` } });
  t.equal(changed.status, 200, 'If-Range with another ETag: the whole file');
  t.equal(changed.body.compare(file.bytes), 0, 'all of it');
  const byDate = await http.request(path, { headers: { ...auth, Range: 'bytes=1000-', 'If-Range': whole.headers['last-modified']! } });
  t.equal(byDate.status, 206, 'If-Range with the Last-Modified date: the range');

  const several = await http.request(path, { headers: { ...auth, Range: 'bytes=0-0,10-20' } });
  t.equal(several.status, 200, 'several ranges: the whole file (RFC 9110 lets a server ignore Range)');
  t.equal(several.body.compare(file.bytes), 0, 'all of it');
  const malformed = await http.request(path, { headers: { ...auth, Range: 'bytes=abc' } });
  t.equal(malformed.status, 200, 'a malformed Range: the whole file');

  const beyond = await http.request(path, { headers: { ...auth, Range: `bytes=${file.bytes.length}-` } });
  t.equal(beyond.status, 416, 'a range past the end: 416');
  t.equal(beyond.headers['content-range'], `bytes */${file.bytes.length}`, 'with the size');
  t.equal(beyond.json<{ error: { code: string } }>().error.code, 'ERANGE', 'and ERANGE');

  const cached = await http.request(path, { headers: { ...auth, 'If-None-Match': `"${file.sha256}"` } });
  t.equal(cached.status, 304, 'If-None-Match with the ETag: 304');
  t.equal(cached.body.length, 0, 'no body');

  const empty = await makeFile(dir, 'empty.bin', 0);
  await running.client().upload(empty.path, { name: 'empty.bin' });
  const nothing = await http.request('/files/empty.bin', { headers: auth });
  t.same([nothing.status, nothing.body.length, nothing.headers['content-length']], [200, 0, '0'], 'an empty file: 200, no bytes');

  const logged = (await http.request('/api/log', { headers: auth })).json<{ entries: { op: string; bytes: number; result: string }[] }>();
  t.match(
    logged.entries.filter((entry) => entry.op === 'download').at(0),
    { bytes: file.bytes.length, result: 'ok' },
    'downloads are in the transfer log',
  );
});

t.test('a stored chunk that no longer matches its XXH64: the response is cut, the file flagged damaged, never served', async (t) => {
  const running = await startServer(t, { chunkSizeBytes });
  const http = await startHttpSide(running);
  const dir = tempDir(t);
  const file = await makeFile(dir, 'rot.bin', 4 * chunkSizeBytes);
  await running.client().upload(file.path, { name: 'rot.bin' });
  const stored = await open(join(running.dataDir, 'files', 'rot.bin'), 'r+');
  await stored.write(Buffer.from([file.bytes[2 * chunkSizeBytes + 7]! ^ 0xff]), 0, 1, 2 * chunkSizeBytes + 7);
  await stored.close();
  const auth = bearer(running.token);

  const cut = await http.request('/files/rot.bin', { headers: auth }).then(
    (answer) => answer,
    (error: Error) => error,
  );
  if (cut instanceof Error) t.pass(`the response was cut (${cut.message})`);
  else t.ok(cut.body.length < file.bytes.length, `the body stops short (${cut.body.length} of ${file.bytes.length} bytes)`);
  if (!(cut instanceof Error)) t.equal(cut.body.compare(file.bytes.subarray(0, cut.body.length)), 0, 'what came is right');

  const again = await http.request('/files/rot.bin', { headers: auth });
  t.equal(again.status, 500, 'then: 500');
  t.equal(again.json<{ error: { code: string } }>().error.code, 'ECORRUPT', 'ECORRUPT');
  const listed = (await http.request('/api/files', { headers: auth })).json<{ files: { damaged?: string }[] }>();
  t.ok(listed.files[0]?.damaged, 'listed as damaged');
});

t.test('the page login: a session cookie (HttpOnly, SameSite=Strict), refused across sites, ended by logout', async (t) => {
  const running = await startServer(t);
  const http = await startHttpSide(running);
  const dir = tempDir(t);
  await running.client().upload((await makeFile(dir, 'keep.bin', 100)).path, { name: 'keep.bin' });
  const login = (body: unknown, headers: Record<string, string> = {}) =>
    http.request('/api/login', { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify(body) });

  const wrong = await login({ user: testUser, password: 'not-it' });
  t.equal(wrong.status, 401, 'a wrong password: 401');
  t.equal(wrong.headers['set-cookie'], undefined, 'and no cookie');
  const unknown = await login({ user: 'nobody', password: 'not-it' });
  t.same(unknown.json(), wrong.json(), 'an unknown user: the same answer');
  t.equal(
    (await login({ user: testUser, password: testPassword }, { Origin: 'https://evil.example' })).status,
    403,
    'a login from another site: 403',
  );

  const ok = await login({ user: testUser, password: testPassword }, { Origin: http.base });
  t.equal(ok.status, 200, 'the right password: 200');
  t.match(ok.json(), { user: testUser, role: 'admin' }, 'with the account');
  const setCookie = ok.headers['set-cookie']?.[0] ?? '';
  t.match(
    setCookie,
    /^ferry_session=[A-Za-z0-9_-]{43}; Max-Age=\d+; Path=\/; HttpOnly; SameSite=Strict$/u,
    'an HttpOnly, SameSite=Strict cookie (no Secure over plain HTTP)',
  );
  const cookie = { Cookie: setCookie.split(';')[0]! };

  t.equal((await http.request('/api/me', { headers: cookie })).status, 200, 'the cookie logs requests in');
  for (const [label, headers] of [
    ['Origin of another site', { Origin: 'https://evil.example' }],
    ['Sec-Fetch-Site: cross-site', { 'Sec-Fetch-Site': 'cross-site' }],
    ['Sec-Fetch-Site: same-site', { 'Sec-Fetch-Site': 'same-site' }],
  ] as const) {
    const forged = await http.request('/api/files/keep.bin', { method: 'DELETE', headers: { ...cookie, ...headers } });
    t.equal(forged.status, 403, `a delete with the cookie and ${label}: 403`);
  }
  t.equal((await http.request('/api/files/keep.bin', { headers: cookie })).status, 200, 'the file is still there');
  const sameOrigin = await http.request('/api/files/keep.bin', {
    method: 'DELETE',
    headers: { ...cookie, Origin: http.base, 'Sec-Fetch-Site': 'same-origin' },
  });
  t.equal(sameOrigin.status, 200, 'from the same origin: deleted');

  const out = await http.request('/api/logout', { method: 'POST', headers: { ...cookie, Origin: http.base } });
  t.equal(out.status, 200, 'logout: 200');
  t.match(out.headers['set-cookie']?.[0], /^ferry_session=; Max-Age=0;/u, 'the cookie is cleared');
  t.equal((await http.request('/api/me', { headers: cookie })).status, 401, 'and its session is revoked');
});

t.test("over HTTPS: Basic works, the cookie is Secure, the certificate is the Ferry side's, and a download is whole", async (t) => {
  const chunkSize = 256 * 1024;
  const running = await startServer(t, { chunkSizeBytes: chunkSize });
  const http = await startHttpSide(running, { tls: true });
  t.match(http.base, /^https:/u, 'https');
  const me = await http.request('/api/me', { headers: basic(testUser, testPassword) });
  t.equal(me.status, 200, 'Basic over TLS: 200');
  const login = await http.request('/api/login', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ user: testUser, password: testPassword }),
  });
  t.match(login.headers['set-cookie']?.[0], /; Secure; SameSite=Strict$/u, 'the cookie is Secure');
  // Chunks written while the last is still going out reach TLS one by one (writeLargeBuffersAlone): every byte arrives, in order.
  const file = await makeFile(tempDir(t), 'big.bin', 9 * chunkSize + 12_345);
  await running.client().upload(file.path, { name: 'big.bin' });
  const download = await http.request('/files/big.bin', { headers: bearer(running.token) });
  t.equal(download.status, 200, 'a download over HTTPS: 200');
  t.equal(download.body.compare(file.bytes), 0, 'the whole file, byte for byte');
});

t.test('hostile requests: each gets a clear refusal, and the server goes on serving', async (t) => {
  const running = await startServer(t, { handshakeTimeoutMs: 1000 });
  const http = await startHttpSide(running);
  const dir = tempDir(t);
  const file = await makeFile(dir, 'ok.bin', 5000);
  await running.client().upload(file.path, { name: 'ok.bin' });
  const auth = bearer(running.token);

  for (const [path, label] of [
    ['/files/..%2f..%2fetc%2fpasswd', 'encoded traversal'],
    ['/files/%2Fetc%2Fpasswd', 'an absolute name'],
    ['/files/a%00b', 'a NUL'],
    ['/files/%C0%AE%C0%AE%2Fetc', 'overlong UTF-8'],
    ['/files/%E0%A4%A', 'a broken escape'],
  ] as const) {
    const answer = await http.request(path, { headers: auth });
    t.equal(answer.status, 400, `${label}: 400`);
    t.equal(answer.json<{ error: { code: string } }>().error.code, 'EBADNAME', `${label}: EBADNAME`);
  }
  const longUrl = await http.request(`/files/${'a'.repeat(20 * 1024)}`, { headers: auth });
  t.equal(longUrl.status, 431, 'a URL longer than the head allows: 431');
  const manyRanges = await http.request('/files/ok.bin', { headers: { ...auth, Range: `bytes=${'0-0,'.repeat(10_000)}0-0` } });
  t.equal(manyRanges.status, 431, 'a Range of 10,000 parts: 431 (over the 16 KiB head)');
  const apart = Array.from({ length: 1_000 }, (_, index) => `${index * 2}-${index * 2}`).join(',');
  const someRanges = await http.request('/files/ok.bin', { headers: { ...auth, Range: `bytes=${apart}` } });
  t.same(
    [someRanges.status, someRanges.body.compare(file.bytes)],
    [200, 0],
    '1,000 separate ranges that fit the head: the whole file, once',
  );
  const repeated = await http.request('/files/ok.bin', { headers: { ...auth, Range: `bytes=${'0-0,'.repeat(1_000)}0-0` } });
  t.same([repeated.status, repeated.body.length], [206, 1], 'the same range 1,001 times: that one byte, once');

  const garbage = await rawExchange(http.port, 'GARBAGE\r\n\r\n');
  t.match(garbage.text, /^HTTP\/1\.1 400/u, 'a garbage request line: 400, then closed');

  // One byte of the head every 200 ms: the head is not whole within the handshake timeout (1 s).
  const started = performance.now();
  const trickled = await rawExchange(http.port, 'GET /api/me HTTP/1.1\r\nHost: x\r\nX-Slow: ' + 'a'.repeat(100), 200);
  t.ok(trickled.closedBeforeAllSent, 'a head trickled a byte at a time: dropped before it was all sent');
  t.ok(performance.now() - started < 10_000, 'within a few seconds');

  const after = await http.request('/files/ok.bin', { headers: auth });
  t.same([after.status, after.body.compare(file.bytes)], [200, 0], 'and the server still serves');
});

t.test('a client that stops reading is dropped after the stall timeout, and holds up no other download', async (t) => {
  const serverLog = new EventEmitter();
  const logger = pino({ level: 'info' }, { write: (line: string) => void serverLog.emit('line', line) });
  // Two chunk buffers in the whole server, so a stalled download that kept what it holds would show.
  const chunk = 1024 * KiB;
  const running = await startServer(t, { chunkSizeBytes: chunk, inflightBudgetBytes: 2 * chunk, stallTimeoutMs: 1000 }, { logger });
  const http = await startHttpSide(running);
  const dir = tempDir(t);
  // Larger than what loopback's socket buffers hold for a client that reads nothing (a few MiB).
  const file = await makeFile(dir, 'big.bin', 32 * chunk);
  await running.client().upload(file.path, { name: 'big.bin' });
  const dropped = new Promise<void>((resolve) =>
    serverLog.on('line', (line: string) => /"op":"download".*"result":"ECONNLOST"/u.test(line) && resolve()),
  );

  const stalled = connect(http.port, '127.0.0.1');
  stalled.write(`GET /files/big.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${running.token}\r\n\r\n`);
  // The answer has begun; from here nothing more is read (the kernel holds a few MiB, then the server waits).
  await once(stalled, 'readable');
  const next = await http.request('/files/big.bin', { headers: bearer(running.token) });
  t.same([next.status, next.body.compare(file.bytes)], [200, 0], 'another download meanwhile: the whole file');
  await dropped;
  t.pass('the server dropped the stalled download (logged as ECONNLOST)');
  let stalledBytes = 0;
  stalled.on('data', (piece: Buffer) => (stalledBytes += piece.length));
  stalled.on('error', () => undefined);
  stalled.resume();
  await once(stalled, 'close');
  t.ok(stalledBytes < file.bytes.length, `the stalled client got only part of the file (${stalledBytes} of ${file.bytes.length} bytes)`);
});

/**
 * Writes `text` to the HTTP port (a byte every `byteEveryMs` if given, else at once) and collects
 * what comes back until the server closes.
 */
async function rawExchange(port: number, text: string, byteEveryMs?: number): Promise<{ text: string; closedBeforeAllSent: boolean }> {
  const socket = connect(port, '127.0.0.1');
  const pieces: Buffer[] = [];
  socket.on('data', (piece: Buffer) => pieces.push(piece));
  socket.on('error', () => undefined);
  const closed = once(socket, 'close');
  let sent = 0;
  if (byteEveryMs === undefined) {
    socket.write(text);
    sent = text.length;
  } else {
    let open = true;
    void closed.then(() => (open = false));
    while (open && sent < text.length) {
      socket.write(text[sent]!);
      sent += 1;
      await new Promise((resolve) => setTimeout(resolve, byteEveryMs));
    }
  }
  await closed;
  return { text: Buffer.concat(pieces).toString('latin1'), closedBeforeAllSent: sent < text.length };
}
