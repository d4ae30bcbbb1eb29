/**
 * tus 1.0.0 uploads on the HTTP side (docs/http.md), with tus-js-client, the reference client,
 * from Node: what a tus user relies on (a resumed upload after a cut link and after the server is
 * killed with kill -9, the whole file verified against its sha256, nothing published otherwise),
 * and the protocol's rules on offsets, termination and names.
 */
import t from 'tap';
import { DetailedError, Upload } from 'tus-js-client';
import { tokenFor } from './helpers/accounts.js';
import { startCutProxy } from './helpers/cut-proxy.js';
import { makeFile } from './helpers/files.js';
import { bearer, freePort, send, startHttpSide } from './helpers/http.js';
import { type ServerProcess, spawnServer } from './helpers/server-process.js';
import { startServer } from './helpers/server.js';
import { tempDir } from './helpers/temp-dir.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const tusHeaders = { 'Tus-Resumable': '1.0.0' };

interface TusRun {
  url: string | null;
  error?: Error;
}

/** Uploads `bytes` with tus-js-client; resolves when it succeeds or gives up. */
function tusUpload(bytes: Buffer, options: ConstructorParameters<typeof Upload>[1], onUpload?: (upload: Upload) => void): Promise<TusRun> {
  return new Promise((resolve) => {
    const upload = new Upload(bytes, {
      retryDelays: null,
      ...options,
      onSuccess: () => resolve({ url: upload.url }),
      onError: (error) => resolve({ url: upload.url, error }),
    });
    onUpload?.(upload);
    upload.start();
  });
}

function statusOf(error: Error | undefined): number | undefined {
  return error instanceof DetailedError ? error.originalResponse?.getStatus() : undefined;
}

t.test('discovery: OPTIONS without credentials; everything else needs them and Tus-Resumable', async (t) => {
  const running = await startServer(t);
  const http = await startHttpSide(running);
  const options = await http.request('/tus/', { method: 'OPTIONS' });
  t.equal(options.status, 204, 'OPTIONS: 204');
  t.equal(options.headers['tus-version'], '1.0.0', 'Tus-Version');
  t.equal(options.headers['tus-extension'], 'creation,creation-with-upload,termination,expiration', 'Tus-Extension');
  t.ok(Number(options.headers['tus-max-size']) > 0, 'Tus-Max-Size');
  const anonymous = await http.request('/tus/', { method: 'POST', headers: { ...tusHeaders, 'Upload-Length': '10' } });
  t.equal(anonymous.status, 401, 'a creation without credentials: 401');
  const noVersion = await http.request('/tus/', { method: 'POST', headers: { ...bearer(running.token), 'Upload-Length': '10' } });
  t.equal(noVersion.status, 412, 'without Tus-Resumable: 412');
});

t.test('tus-js-client uploads in PATCHes that do not line up with chunks; the file is verified against its sha256', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: 256 * KiB });
  const http = await startHttpSide(running);
  const file = await makeFile(tempDir(t), 'photo.jpg', 3 * MiB + 12345);
  const progress: number[] = [];
  const run = await tusUpload(file.bytes, {
    endpoint: `${http.base}/tus/`,
    headers: bearer(running.token),
    metadata: { filename: 'albums/photo.jpg', sha256: file.sha256 },
    chunkSize: 100 * KiB + 7,
    onProgress: (sent) => progress.push(sent),
  });
  t.equal(run.error, undefined, 'the upload succeeds');
  t.match(run.url, new RegExp(`^${http.base}/tus/[0-9a-f-]{36}$`, 'u'), 'at a URL under /tus/');
  t.ok(progress.length > 10, 'with progress along the way');
  const stored = await running.client().stat('albums/photo.jpg');
  t.equal(stored.sha256, file.sha256, 'stored, with the SHA-256 of the local file');
  const downloaded = await http.request('/files/albums/photo.jpg', { headers: bearer(running.token) });
  t.equal(downloaded.body.compare(file.bytes), 0, 'and downloads byte for byte');
  const head = await http.request(new URL(run.url!).pathname, { method: 'HEAD', headers: { ...tusHeaders, ...bearer(running.token) } });
  t.equal(head.status, 404, 'the finished upload is gone from /tus/');
  const log = (await http.request('/api/log', { headers: bearer(running.token) })).json<{ entries: { op: string; name: string }[] }>();
  t.match(
    log.entries.find((entry) => entry.op === 'upload'),
    { op: 'upload', name: 'albums/photo.jpg' },
    'in the transfer log',
  );

  const unverified = await tusUpload(file.bytes, {
    endpoint: `${http.base}/tus/`,
    headers: bearer(running.token),
    metadata: { filename: 'no-hash.jpg' },
  });
  t.equal(unverified.error, undefined, 'without a sha256 the upload succeeds too');
  t.equal((await running.client().stat('no-hash.jpg')).sha256, file.sha256, 'and the server computed the same SHA-256');
});

t.test('a wrong sha256: 460, and nothing is published', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: 256 * KiB });
  const http = await startHttpSide(running);
  const file = await makeFile(tempDir(t), 'a.bin', 1 * MiB);
  const run = await tusUpload(file.bytes, {
    endpoint: `${http.base}/tus/`,
    headers: bearer(running.token),
    metadata: { filename: 'a.bin', sha256: '0'.repeat(64) },
  });
  t.equal(statusOf(run.error), 460, 'refused with 460');
  const stat = await http.request('/api/files/a.bin', { headers: bearer(running.token) });
  t.equal(stat.status, 404, 'no file was published');
  const head = await http.request(new URL(run.url!).pathname, { method: 'HEAD', headers: { ...tusHeaders, ...bearer(running.token) } });
  t.equal(head.status, 404, 'and the upload session is gone');
});

t.test('offsets, names, termination and other accounts, by the protocol', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: 64 * KiB });
  const http = await startHttpSide(running);
  const auth = { ...tusHeaders, ...bearer(running.token) };
  const file = await makeFile(tempDir(t), 'x.bin', 200 * KiB);
  const metadata = (name: string, extra = ''): string => `filename ${Buffer.from(name).toString('base64')}${extra}`;

  const created = await http.request('/tus/', {
    method: 'POST',
    headers: { ...auth, 'Upload-Length': String(file.bytes.length), 'Upload-Metadata': metadata('x.bin') },
  });
  t.equal(created.status, 201, 'creation: 201');
  const location = created.headers['location']!;
  t.match(location, /^\/tus\/[0-9a-f-]{36}$/u, 'with a Location');
  t.ok(Date.parse(String(created.headers['upload-expires'])) > Date.now(), 'and Upload-Expires');
  const patch = (offset: number, body: Buffer) =>
    http.request(location, {
      method: 'PATCH',
      headers: { ...auth, 'Content-Type': 'application/offset+octet-stream', 'Upload-Offset': String(offset) },
      body,
    });
  // Two PATCHes of the same upload at once: one is taken, the other refused (not a takeover of the first).
  const both = await Promise.all([patch(0, file.bytes.subarray(0, 100 * KiB)), patch(0, file.bytes.subarray(0, 100 * KiB))]);
  const [first, racing] = both[0].status === 204 ? both : [both[1], both[0]];
  t.same([first.status, first.headers['upload-offset']], [204, String(100 * KiB)], 'a PATCH: 204 and the new offset');
  t.ok([423, 409].includes(racing.status), `the other PATCH at once: refused (${racing.status})`);
  const wrong = await patch(5, file.bytes.subarray(5, 10));
  t.equal(wrong.status, 409, 'a PATCH at another offset: 409');
  const head = await http.request(location, { method: 'HEAD', headers: auth });
  t.same(
    [head.headers['upload-offset'], head.headers['upload-length']],
    [String(100 * KiB), String(file.bytes.length)],
    'HEAD: offset and length',
  );
  t.equal(head.headers['cache-control'], 'no-store', 'not cached');
  const past = await patch(100 * KiB, Buffer.concat([file.bytes.subarray(100 * KiB), Buffer.alloc(10)]));
  t.equal(past.status, 400, 'a PATCH past Upload-Length: 400');
  t.equal((await http.request('/api/files/x.bin', { headers: bearer(running.token) })).status, 404, 'nothing published from it');

  const { accounts } = running.server;
  const other = await accounts.add('olga', 'olga-password', { role: 'write', root: '' });
  const olga = { ...tusHeaders, ...bearer((await accounts.issueToken(other)).token) };
  t.equal((await http.request(location, { method: 'HEAD', headers: olga })).status, 404, "another account's upload: 404");
  const reader = await accounts.add('rita', 'rita-password', { role: 'read' });
  const rita = { ...tusHeaders, ...bearer((await accounts.issueToken(reader)).token) };
  const readerCreates = await http.request('/tus/', {
    method: 'POST',
    headers: { ...rita, 'Upload-Length': '1', 'Upload-Metadata': metadata('r.bin') },
  });
  t.equal(readerCreates.status, 403, 'a reader creating an upload: 403');

  const terminated = await http.request(location, { method: 'DELETE', headers: auth });
  t.equal(terminated.status, 204, 'termination: 204');
  t.equal((await http.request(location, { method: 'HEAD', headers: auth })).status, 404, 'then the upload is gone');

  await running.client().upload(file.path, { name: 'taken.bin' });
  const exists = await http.request('/tus/', {
    method: 'POST',
    headers: { ...auth, 'Upload-Length': '3', 'Upload-Metadata': metadata('taken.bin') },
  });
  t.equal(exists.status, 409, 'a name that exists: 409');
  const replace = await http.request('/tus/', {
    method: 'POST',
    headers: {
      ...auth,
      'Upload-Length': '3',
      'Upload-Metadata': metadata('taken.bin', ',overwrite'),
      'Content-Type': 'application/offset+octet-stream',
    },
    body: Buffer.from('new'),
  });
  t.same(
    [replace.status, replace.headers['upload-offset']],
    [201, '3'],
    'with overwrite, creation-with-upload of the whole file: 201, offset 3',
  );
  t.equal((await running.client().stat('taken.bin')).size, 3, 'the file was replaced');
  for (const name of ['../escape', '/abs']) {
    const bad = await http.request('/tus/', {
      method: 'POST',
      headers: { ...auth, 'Upload-Length': '1', 'Upload-Metadata': metadata(name) },
    });
    t.equal(bad.status, 400, `filename ${name}: 400`);
  }
});

t.test('a link cut mid-upload: tus-js-client resumes from the server offset, not from the start', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: 256 * KiB });
  const http = await startHttpSide(running);
  const proxy = await startCutProxy(t, http.port);
  const file = await makeFile(tempDir(t), 'big.bin', 8 * MiB);
  const cut = proxy.cutAfter(5 * MiB, 'up');
  const run = await tusUpload(file.bytes, {
    endpoint: `http://127.0.0.1:${proxy.port}/tus/`,
    headers: bearer(running.token),
    metadata: { filename: 'big.bin', sha256: file.sha256 },
    retryDelays: [0, 50, 100],
  });
  await cut;
  t.equal(run.error, undefined, 'the upload succeeds after the cut');
  t.equal((await running.client().stat('big.bin')).sha256, file.sha256, 'the stored file is the local file');
  t.ok(proxy.upstreamBytes < file.bytes.length + 2 * MiB, `it resumed: ${proxy.upstreamBytes} bytes went up for ${file.bytes.length}`);
});

t.test('ferry serve killed with kill -9 mid-upload: after a restart the upload resumes from the recorded offset', async (t) => {
  const dataDir = tempDir(t, 'ferry-data');
  const httpPort = await freePort();
  const file = await makeFile(tempDir(t), 'big.bin', 48 * MiB);
  const start = (): Promise<ServerProcess> => spawnServer(t, dataDir, ['--http-port', String(httpPort), '--sync-every', '4MiB']);
  const first = await start();
  const token = tokenFor(first.port)!;
  let killed = false;
  // In PATCHes of 8 MiB: the kill lands in the middle of the third, and the next one cannot
  // start before the third's reply, so the upload cannot finish ahead of the kill however fast
  // the server is (with one PATCH for the whole file, a fast server sometimes finished first).
  const cut = await tusUpload(file.bytes, {
    endpoint: `http://127.0.0.1:${httpPort}/tus/`,
    headers: bearer(token),
    metadata: { filename: 'big.bin', sha256: file.sha256 },
    chunkSize: 8 * MiB,
    onProgress: (sent) => {
      if (!killed && sent > 20 * MiB) {
        killed = true;
        first.child.kill('SIGKILL');
      }
    },
  });
  t.ok(cut.error, 'the upload failed when the server was killed');
  t.ok(cut.url, 'after its creation');
  await first.exited;

  await start();
  const path = new URL(cut.url!).pathname;
  const head = await send(`http://127.0.0.1:${httpPort}${path}`, { method: 'HEAD', headers: { ...tusHeaders, ...bearer(token) } });
  const offset = Number(head.headers['upload-offset']);
  t.ok(offset > 0 && offset < file.bytes.length, `the recorded offset survived (${offset} bytes)`);
  const resumed = await tusUpload(file.bytes, { uploadUrl: cut.url, headers: bearer(token), metadata: { filename: 'big.bin' } });
  t.equal(resumed.error, undefined, 'the resumed upload succeeds');
  const stat = await send(`http://127.0.0.1:${httpPort}/api/files/big.bin`, { headers: bearer(token) });
  t.equal(stat.json<{ sha256: string }>().sha256, file.sha256, 'the stored file is the local file');
});
