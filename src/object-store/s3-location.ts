import { FerryError } from '../protocol/errors.js';

/** Where in an S3-compatible store Ferry keeps its data: a bucket, and a key prefix in it ('' or ending in '/'). */
export interface S3Location {
  bucket: string;
  prefix: string;
}

/**
 * Parses `s3://BUCKET[/PREFIX]` (`--store`). The bucket name follows S3's rules for new buckets
 * (3-63 of a-z, 0-9, '.', '-', starting and ending with a letter or digit); the prefix is kept
 * as given, with one '/' added at its end, so `s3://b/team` and `s3://b/team/` are one place.
 */
export function parseS3Location(text: string): S3Location {
  const match = /^s3:\/\/([^/]*)(?:\/(.*))?$/u.exec(text);
  if (!match) throw new FerryError('EUSAGE', `not an S3 location: ${text} (expected s3://BUCKET or s3://BUCKET/PREFIX)`);
  const bucket = match[1] ?? '';
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/u.test(bucket) || bucket.includes('..')) {
    throw new FerryError(
      'EUSAGE',
      `not an S3 bucket name: "${bucket}" (3 to 63 of a-z, 0-9, '.' and '-', starting and ending with a letter or digit)`,
    );
  }
  const prefix = (match[2] ?? '').replace(/\/+$/u, '');
  if (prefix.split('/').some((segment) => segment === '' || segment === '.' || segment === '..') && prefix !== '') {
    throw new FerryError('EUSAGE', `not an S3 key prefix: "${prefix}" (no empty, '.' or '..' segments)`);
  }
  return { bucket, prefix: prefix === '' ? '' : `${prefix}/` };
}

/** The location as `s3://BUCKET/PREFIX/`, for messages and logs. */
export function formatS3Location({ bucket, prefix }: S3Location): string {
  return `s3://${bucket}/${prefix}`;
}
