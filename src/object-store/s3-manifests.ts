import { z } from 'zod';
import { FerryError } from '../protocol/errors.js';

const hex64 = z.string().regex(/^[0-9a-f]{16}$/u);
const count = z.number().int().nonnegative();

/**
 * What the S3 store keeps beside a published file (`manifests/NAME`): the record any server needs
 * to list, serve and verify it. `etag` ties it to the object it describes: a reader asks for the
 * object only `If-Match` that ETag, so an object replaced behind a manifest is never served as the
 * file the manifest describes.
 */
export const s3FileManifestSchema = z.strictObject({
  format: z.literal(1),
  name: z.string(),
  size: count,
  sha256: z.string().regex(/^[0-9a-f]{64}$/u),
  chunkSize: z.number().int().positive(),
  /** The xxh64 of each chunk, 16 hex digits apiece, in chunk order. */
  chunkHashes: z.array(hex64),
  created: z.number(),
  modified: z.number(),
  mode: z.number().int().optional(),
  mtime: z.number().optional(),
  etag: z.string().min(1),
});
export type S3FileManifest = z.infer<typeof s3FileManifestSchema>;

/**
 * An unfinished upload in the S3 store (`uploads/NAME`): the multipart upload that holds its
 * chunks (chunk i is part i + 1), what is known of each chunk that reached the store, and the
 * state of its running SHA-256, so any server can take it up where another left it.
 */
export const s3UploadManifestSchema = z.strictObject({
  format: z.literal(1),
  id: z.string().min(1),
  name: z.string(),
  size: count,
  chunkSize: z.number().int().positive(),
  fingerprint: z.string(),
  owner: z.string().optional(),
  uploadId: z.string().min(1),
  created: z.number(),
  /** Last time a server worked on it: uploads idle past the TTL are aborted. */
  touched: z.number(),
  /** Per chunk: its xxh64 once the chunk is in the store, else null. */
  chunks: z.array(hex64.nullable()),
  /** Chunks [0, hashedChunks) were fed to the running SHA-256 whose state is `sha256State` (sha256-state.ts's text; hash-wasm's base64 before). */
  hashedChunks: count,
  sha256State: z.string().optional(),
  /**
   * An upload from a stream: its size is known only at its end (`size` is 0 and `chunks` lists
   * what came so far, both fixed when it is published); it is never resumed (a stream cannot be
   * sent again), so no other `put` takes it up (its fingerprint is empty).
   */
  streamed: z.literal(true).optional(),
});
export type S3UploadManifest = z.infer<typeof s3UploadManifestSchema>;

/** Parses a manifest read from the store; one that does not parse is the store's damage, said as EIO. */
export function parseManifest<T>(schema: z.ZodType<T>, key: string, text: string): T {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new FerryError('EIO', `the S3 store holds a damaged manifest at ${key}: not JSON`);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    throw new FerryError('EIO', `the S3 store holds a damaged manifest at ${key}: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  }
  return parsed.data;
}
