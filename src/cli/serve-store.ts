import { FerryError } from '../protocol/errors.js';
import type { S3Store } from '../object-store/s3-store.js';

/** `ferry serve`'s flags that say where files live. */
export interface StoreFlags {
  store?: string;
  s3Endpoint?: string;
  s3Region?: string;
  /** `--s3-direct-reads [url]`: clients may read files from the store themselves (at `url`, else the endpoint). */
  s3DirectReads?: string | true;
  chunkSize?: number;
}

/**
 * The S3 store `--store` names, checked (location, endpoint, chunk size) and reached (its bucket
 * must answer): undefined for the data directory, the default. An `--s3-*` flag without
 * `--store` is a usage error rather than silently ignored.
 */
export async function s3StoreOf(flags: StoreFlags): Promise<S3Store | undefined> {
  if (flags.store === undefined) {
    const stray =
      flags.s3Endpoint !== undefined
        ? '--s3-endpoint'
        : flags.s3Region !== undefined
          ? '--s3-region'
          : flags.s3DirectReads !== undefined
            ? '--s3-direct-reads'
            : undefined;
    if (stray) throw new FerryError('EUSAGE', `${stray} needs --store s3://BUCKET[/PREFIX]`);
    return undefined;
  }
  // Loaded only here: the S3 SDK costs start-up time that the data directory's server does not pay.
  const [{ parseS3Location }, { s3SettingsOf }, { S3Store }, { checkS3ChunkSize }] = await Promise.all([
    import('../object-store/s3-location.js'),
    import('../object-store/s3-client.js'),
    import('../object-store/s3-store.js'),
    import('../object-store/s3-limits.js'),
  ]);
  const settings = s3SettingsOf(parseS3Location(flags.store), {
    endpoint: flags.s3Endpoint,
    region: flags.s3Region,
    ...(flags.s3DirectReads === undefined ? {} : { directReads: flags.s3DirectReads }),
  });
  if (flags.chunkSize !== undefined) checkS3ChunkSize(flags.chunkSize);
  return S3Store.connect(settings);
}
