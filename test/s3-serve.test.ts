import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { assertFailed, assertUsage, closedPort, ferry } from './helpers/cli.js';
import { freshS3Bucket, s3Endpoint, s3ServerEnv, s3Skip } from './helpers/s3.js';
import { tempDir } from './helpers/temp-dir.js';

// `ferry serve --store s3://...`: the flags, and the store checked before anything is served.

t.test('--store flags are checked before anything is served', async (t) => {
  const data = tempDir(t);
  const serve = (...args: string[]) => ferry(['serve', '--data', data, '--port', '0', '--http-port', '0', ...args], { anonymous: true });
  assertUsage(t, await serve('--s3-endpoint', 'http://127.0.0.1:1'), /--s3-endpoint needs --store s3:\/\/BUCKET/);
  assertUsage(t, await serve('--store', '/srv/files'), /not an S3 location: \/srv\/files/);
  assertUsage(t, await serve('--store', 's3://Bad_Bucket'), /not an S3 bucket name/);
  assertUsage(t, await serve('--store', 's3://ferry-data', '--chunk-size', '1MiB'), /too small for the S3 store.*at least 5 MiB/);
  const anonymous = await ferry(
    ['serve', '--data', data, '--port', '0', '--store', 's3://ferry-data', '--s3-endpoint', 'http://127.0.0.1:1'],
    {
      anonymous: true,
      env: { AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '', AWS_PROFILE: '', HOME: data },
    },
  );
  assertFailed(t, anonymous, 'ECONFIG');
  t.match(anonymous.stderr, /no S3 credentials .*set AWS_ACCESS_KEY_ID/);
  const port = await closedPort();
  const unreachable = await ferry(
    [
      'serve',
      '--data',
      data,
      '--port',
      '0',
      '--http-port',
      '0',
      '--store',
      's3://ferry-data/team',
      '--s3-endpoint',
      `http://127.0.0.1:${port}`,
    ],
    { anonymous: true, env: { AWS_ACCESS_KEY_ID: 'k', AWS_SECRET_ACCESS_KEY: 's' } },
  );
  assertFailed(t, unreachable, 'EIO');
  t.match(unreachable.stderr, `the S3 store s3://ferry-data/team/ at http://127.0.0.1:${port} cannot be reached`);
});

/** `ferry serve` on the test endpoint with `data` as its data directory; `env` over the endpoint's credentials. */
function serveOnEndpoint(data: string, args: string[], env: Record<string, string> = {}) {
  return ferry(['serve', '--data', data, '--port', '0', '--http-port', '0', '--s3-endpoint', s3Endpoint!.endpoint, ...args], {
    anonymous: true,
    env: { ...(s3ServerEnv() as Record<string, string>), ...env },
  });
}

t.test('a store that answers', { skip: s3Skip }, async (t) => {
  const settings = await freshS3Bucket(t);
  const data = tempDir(t);
  const missing = await serveOnEndpoint(data, ['--store', `s3://${settings.bucket}-missing`]);
  assertFailed(t, missing, 'ECONFIG');
  t.match(missing.stderr, /bucket .*-missing does not exist/);
  const refused = await serveOnEndpoint(data, ['--store', `s3://${settings.bucket}`], { AWS_SECRET_ACCESS_KEY: 'wrong' });
  assertFailed(t, refused, 'ECONFIG');
  t.match(refused.stderr, /refused our credentials/);
});

t.test('a data directory serves its own files or caches one store, never both', { skip: s3Skip }, async (t) => {
  const settings = await freshS3Bucket(t);
  const own = tempDir(t);
  mkdirSync(join(own, 'files'), { recursive: true });
  writeFileSync(join(own, 'files', 'mine.txt'), 'mine');
  const refused = await serveOnEndpoint(own, ['--store', `s3://${settings.bucket}`]);
  assertFailed(t, refused, 'ECONFIG');
  t.match(refused.stderr, /holds files of its own: a server on s3:\/\/.* needs another --data/);
  t.equal(readFileSync(join(own, 'files', 'mine.txt'), 'utf8'), 'mine', 'its files are untouched');

  const cache = tempDir(t);
  writeFileSync(join(cache, 'store'), `s3://${settings.bucket}/\n`);
  mkdirSync(join(cache, 'files'));
  const local = await ferry(['serve', '--data', cache, '--port', '0', '--http-port', '0'], { anonymous: true });
  assertFailed(t, local, 'ECONFIG');
  t.match(local.stderr, new RegExp(`caches the records of the shared store s3://${settings.bucket}/: serve it with --store`));
  const other = await serveOnEndpoint(cache, ['--store', `s3://${settings.bucket}/elsewhere`]);
  assertFailed(t, other, 'ECONFIG');
  t.match(other.stderr, /not s3:\/\/.*\/elsewhere\/: use another --data/);
});
