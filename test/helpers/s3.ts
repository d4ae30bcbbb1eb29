import { CreateBucketCommand } from '@aws-sdk/client-s3';
import type { Test } from 'tap';
import { type S3Settings, makeS3Client } from '../../src/object-store/s3-client.js';

/** The S3 endpoint of this test run (test/s3/with-s3-endpoint.sh starts one for `npm test`), if any. */
export const s3Endpoint =
  process.env['S3_ENDPOINT'] && process.env['S3_ACCESS_KEY'] && process.env['S3_SECRET_KEY']
    ? {
        endpoint: process.env['S3_ENDPOINT'],
        accessKeyId: process.env['S3_ACCESS_KEY'],
        secretAccessKey: process.env['S3_SECRET_KEY'],
        region: process.env['S3_REGION'] ?? 'us-east-1',
      }
    : undefined;

/** Why the S3 tests do not run here, printed by tap as the skip's reason; undefined when they do. */
export const s3Skip: string | undefined = s3Endpoint
  ? undefined
  : (process.env['FERRY_S3_SKIP'] ?? 'no S3 endpoint: S3_ENDPOINT is not set (npm test starts a Ceph RGW where one is installed)');

/** The environment a `ferry serve` child needs to reach the test endpoint (its credentials the SDK's usual way). */
export function s3ServerEnv(): NodeJS.ProcessEnv {
  if (!s3Endpoint) throw new Error(s3Skip);
  return { ...process.env, AWS_ACCESS_KEY_ID: s3Endpoint.accessKeyId, AWS_SECRET_ACCESS_KEY: s3Endpoint.secretAccessKey };
}

let buckets = 0;

/** A new, empty bucket on the test endpoint for this test, and the settings that reach it (under `prefix`). */
export async function freshS3Bucket(t: Test, prefix = ''): Promise<S3Settings> {
  if (!s3Endpoint) throw new Error(s3Skip);
  buckets += 1;
  const settings: S3Settings = {
    bucket: `ferry-test-${process.pid}-${buckets}-${Date.now().toString(36)}`,
    prefix,
    endpoint: s3Endpoint.endpoint,
    region: s3Endpoint.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s3Endpoint.accessKeyId, secretAccessKey: s3Endpoint.secretAccessKey },
  };
  const client = makeS3Client(settings);
  t.teardown(() => client.destroy());
  await client.send(new CreateBucketCommand({ Bucket: settings.bucket }));
  return settings;
}

/** An SDK client on the same bucket, for a test that reaches behind Ferry (to damage or inspect what it stored). */
export function rawS3Client(t: Test, settings: S3Settings): ReturnType<typeof makeS3Client> {
  const client = makeS3Client(settings);
  t.teardown(() => client.destroy());
  return client;
}
