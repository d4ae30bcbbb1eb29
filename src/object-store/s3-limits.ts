import { FerryError } from '../protocol/errors.js';

/** S3's limits on multipart uploads: parts of at least 5 MiB but the last, at most 10,000 of them. */
export const s3MinPartBytes = 5 * 1024 * 1024;
export const s3MaxParts = 10_000;
/** The chunk size of a server on the S3 store unless `--chunk-size` says otherwise (at least s3MinPartBytes). */
export const s3DefaultChunkSize = 8 * 1024 * 1024;

/** Refuses a chunk size S3's multipart rules cannot take (every part but the last is a whole chunk). */
export function checkS3ChunkSize(chunkSize: number): void {
  if (chunkSize < s3MinPartBytes) {
    throw new FerryError(
      'EUSAGE',
      `--chunk-size ${chunkSize} is too small for the S3 store: each chunk is a multipart part, and S3 takes parts of at least 5 MiB (default there: 8 MiB)`,
    );
  }
}
