import { Upload } from 'tus-js-client';
import t from 'tap';
import { S3Store } from '../src/object-store/s3-store.js';
import { makeFile } from './helpers/files.js';
import { bearer, startHttpSide } from './helpers/http.js';
import { freshS3Bucket, s3Endpoint, s3Skip } from './helpers/s3.js';
import { startServer } from './helpers/server.js';
import { tempDir } from './helpers/temp-dir.js';

// The HTTP side of a server on a shared S3 store (a real Ceph RGW): tus uploads and ranged downloads.

const MiB = 1024 * 1024;
const chunkSize = 5 * MiB;

t.test('against a real S3 engine', { skip: s3Skip }, (t) => {
  t.test('a tus upload in PATCHes that do not line up with chunks, then a download and a range of it', async (t) => {
    const settings = await freshS3Bucket(t);
    const running = await startServer(
      t,
      { chunkSizeBytes: chunkSize },
      { s3Store: new S3Store({ ...settings, endpoint: s3Endpoint!.endpoint }) },
    );
    const http = await startHttpSide(running);
    const file = await makeFile(tempDir(t), 'movie.bin', 2 * chunkSize + 4321);
    const error = await new Promise<Error | undefined>((resolve) => {
      const upload = new Upload(file.bytes, {
        endpoint: `${http.base}/tus/`,
        headers: bearer(running.token),
        metadata: { filename: 'films/movie.bin', sha256: file.sha256 },
        chunkSize: 3 * MiB + 7,
        retryDelays: null,
        onSuccess: () => resolve(undefined),
        onError: resolve,
      });
      upload.start();
    });
    t.equal(error, undefined, 'the tus upload succeeds');
    const store = new S3Store(settings);
    t.teardown(() => store.close());
    t.equal((await store.stat('films/movie.bin'))?.sha256, file.sha256, 'published in the store');
    const whole = await http.request('/files/films/movie.bin', { headers: bearer(running.token) });
    t.equal(whole.status, 200);
    t.equal(whole.body.compare(file.bytes), 0, 'downloads byte for byte');
    const from = chunkSize - 100;
    const range = await http.request('/files/films/movie.bin', {
      headers: { ...bearer(running.token), Range: `bytes=${from}-${from + 199}` },
    });
    t.equal(range.status, 206);
    t.equal(range.body.compare(file.bytes.subarray(from, from + 200)), 0, 'a range across a chunk boundary');
    const listed = (await http.request('/api/files?prefix=films/', { headers: bearer(running.token) })).json<{
      files: { name: string }[];
    }>();
    t.same(
      listed.files.map((entry) => entry.name),
      ['films/movie.bin'],
      'listed by the JSON API',
    );
  });
  t.end();
});
