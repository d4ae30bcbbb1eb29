import { S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { FerryError } from '../protocol/errors.js';
import { type S3Location, formatS3Location } from './s3-location.js';

/** How to reach an S3-compatible store (`ferry serve --store ... --s3-endpoint ... --s3-region ...`). */
export interface S3Settings extends S3Location {
  /** The store's URL (`http://127.0.0.1:7480`); absent: AWS S3 itself, by region. */
  endpoint?: string;
  region: string;
  /** Path-style addressing (`endpoint/bucket/key`): the default for any endpoint that is not AWS's own. */
  forcePathStyle: boolean;
  /** Explicit keys (embedding, tests); absent: the SDK's usual chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ...). */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /**
   * Clients may read files from the store themselves, by URLs signed for this endpoint (`ferry
   * serve --s3-direct-reads [URL]`): the store's own, or the address clients reach it at.
   */
  directReadEndpoint?: string;
  /** How long a URL signed for a client's direct reads holds, in seconds (default 900: a download that outlasts it asks for another). */
  directReadSeconds?: number;
  /** Attempts per request, first included (the SDK backs off between them); default 4. */
  maxAttempts?: number;
  /** Milliseconds to connect, and to wait for a response once sent (defaults 5,000 and 60,000). */
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
}

/** The settings from `--store`'s location and the `--s3-*` flags; the region falls back to AWS_REGION, then us-east-1. */
export function s3SettingsOf(
  location: S3Location,
  flags: { endpoint?: string; region?: string; directReads?: string | true },
  env: NodeJS.ProcessEnv = process.env,
): S3Settings {
  const endpoint = flags.endpoint === undefined ? undefined : endpointOf('--s3-endpoint', flags.endpoint);
  const region = flags.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1';
  const directReadEndpoint =
    flags.directReads === undefined
      ? undefined
      : flags.directReads === true
        ? (endpoint ?? `https://s3.${region}.amazonaws.com`)
        : endpointOf('--s3-direct-reads', flags.directReads);
  return {
    ...location,
    endpoint,
    region,
    forcePathStyle: endpoint !== undefined && !/\.amazonaws\.com$/u.test(new URL(endpoint).hostname),
    ...(directReadEndpoint === undefined ? {} : { directReadEndpoint }),
  };
}

/** The origin of an http:// or https:// URL given to `flag`, or EUSAGE. */
function endpointOf(flag: string, given: string): string {
  let url: URL;
  try {
    url = new URL(given);
  } catch {
    throw new FerryError('EUSAGE', `not a URL: ${flag} ${given} (e.g. http://127.0.0.1:7480)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new FerryError('EUSAGE', `${flag} must be an http:// or https:// URL, not ${given}`);
  }
  return url.origin;
}

/** An SDK client for the settings, with bounded timeouts and retries (with backoff) on what may pass. */
export function makeS3Client(settings: S3Settings): S3Client {
  // The SDK warns on Node 20 that its releases after early January 2027 will need Node 22: the
  // version package.json pins supports Node 20, so the warning is noise on every start.
  process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';
  return new S3Client({
    endpoint: settings.endpoint,
    region: settings.region,
    forcePathStyle: settings.forcePathStyle,
    credentials: settings.credentials,
    maxAttempts: settings.maxAttempts ?? 4,
    // Ferry checks every byte itself (xxh64 per chunk, SHA-256 per file); the SDK's CRC32 checksums
    // (on by default since 3.729) are not understood by every S3-compatible store (Ceph RGW 16.2).
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: {
      connectionTimeout: settings.connectTimeoutMs ?? 5000,
      requestTimeout: settings.requestTimeoutMs ?? 60_000,
      httpAgent: { keepAlive: true, maxSockets: 64 },
      httpsAgent: { keepAlive: true, maxSockets: 64 },
    },
  });
}

/** The HTTP status of a failed S3 call, if the store answered at all. */
export function s3StatusOf(error: unknown): number | undefined {
  if (error instanceof S3ServiceException) return error.$metadata.httpStatusCode;
  return undefined;
}

/** The S3 error code of a failed call (`NoSuchKey`, `NoSuchUpload`, ...), if the store answered. */
export function s3CodeOf(error: unknown): string | undefined {
  return error instanceof S3ServiceException ? error.name : undefined;
}

/**
 * A failed S3 call as the one-line error a client or operator sees: the store not answering or
 * failing is EIO (a transfer keeps what it had, and resumes once the store is back); a bucket
 * that is missing or credentials the store refuses are ECONFIG (the server's setup, not the client).
 */
export function s3Failure(settings: S3Settings, doing: string, error: unknown): FerryError {
  if (error instanceof FerryError) return error;
  const where = `${formatS3Location(settings)}${settings.endpoint ? ` at ${settings.endpoint}` : ''}`;
  // A HEAD has no body to name the error: the SDK calls it 'Unknown' (or the status as text).
  const named = s3CodeOf(error);
  const code = named === 'Unknown' || (named !== undefined && /^\d+$/u.test(named)) ? undefined : named;
  const status = s3StatusOf(error);
  if (code === 'NoSuchBucket' || (status === 404 && doing === 'checking the bucket')) {
    return new FerryError('ECONFIG', `the S3 store ${where}: bucket ${settings.bucket} does not exist (create it first)`, { cause: error });
  }
  if (status === 403 || code === 'InvalidAccessKeyId' || code === 'SignatureDoesNotMatch' || code === 'AccessDenied') {
    return new FerryError(
      'ECONFIG',
      `the S3 store ${where} refused our credentials while ${doing} (${code ?? `HTTP ${status}`}): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)`,
      { cause: error },
    );
  }
  if (status !== undefined)
    return new FerryError('EIO', `the S3 store ${where} failed while ${doing}: ${code ?? 'error'} (HTTP ${status})`, { cause: error });
  const reason =
    error instanceof Error
      ? ((error as NodeJS.ErrnoException).code ?? error.name) + (error.message ? `: ${error.message}` : '')
      : String(error);
  if (/credential/iu.test(reason)) {
    return new FerryError('ECONFIG', `no S3 credentials for ${where}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)`, {
      cause: error,
    });
  }
  return new FerryError('EIO', `the S3 store ${where} cannot be reached while ${doing}: ${reason.split('\n')[0]}`, { cause: error });
}
