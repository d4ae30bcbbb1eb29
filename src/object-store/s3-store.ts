import { randomUUID } from 'node:crypto';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { setTimeout } from 'node:timers/promises';
import { FerryError } from '../protocol/errors.js';
import { xxh64ToHex } from '../protocol/frames.js';
import { checkName } from '../protocol/names.js';
import { chunkCountOf, chunkLengthOf } from '../store/records.js';
import { readRange } from './ranged-get.js';
import { type S3Settings, makeS3Client, s3CodeOf, s3Failure, s3StatusOf } from './s3-client.js';
import { s3MaxParts } from './s3-limits.js';
import { type S3FileManifest, type S3UploadManifest, parseManifest, s3FileManifestSchema, s3UploadManifestSchema } from './s3-manifests.js';

/** How long a URL the server signs for its own reads holds (it is used for a minute less). */
const readUrlSeconds = 5 * 60;

/** What a new upload in the store is for. */
export interface S3UploadRequest {
  /** The upload's id (the server's session id); a new one if absent. */
  id?: string;
  name: string;
  /** Undefined: an upload from a stream, whose size is known only when it is published. */
  size: number | undefined;
  chunkSize: number;
  /** What a later `put` of the same file matches on to resume it (size + client fingerprint). */
  fingerprint: string;
  owner?: string;
}

/**
 * Whether a failed call on a multipart upload says the upload is gone (aborted or completed):
 * NoSuchUpload, or (Ceph RGW, racing an abort) a plain 404.
 */
function uploadIsGone(error: unknown): boolean {
  const cause = error instanceof FerryError ? error.cause : error;
  return s3CodeOf(cause) === 'NoSuchUpload' || s3StatusOf(cause) === 404;
}

/** S3's limit on a key's length, in UTF-8 bytes. */
const s3MaxKeyBytes = 1024;

/** A published file's record, with whatever the client said of its local file. */
export interface S3PublishRequest {
  sha256: string;
  chunkHashes: readonly bigint[];
  mode?: number;
  mtime?: number;
  /** Replace a file of the same name (else EEXIST). */
  force: boolean;
}

/** One listed file: its name and its manifest's version (a server's cache compares it to what it holds). */
export interface S3ListedFile {
  name: string;
  manifestEtag: string;
  lastModified: number;
}

/**
 * Ferry's files and unfinished uploads in an S3-compatible bucket, under a prefix:
 *   files/NAME      the bytes of a published file (one object; complete only once verified)
 *   manifests/NAME  its record (S3FileManifest): size, SHA-256, chunk hashes, the object's ETag
 *   uploads/NAME    an unfinished upload (S3UploadManifest): its multipart upload, chunk hashes, hash state
 * An upload is a multipart upload of files/NAME, chunk i its part i + 1; publishing completes it
 * (the object appears whole, at once) and then writes the manifest, which is what makes it a file
 * to Ferry. Several servers may share one bucket: everything a server needs is found here.
 * Names are checked by the caller's rules and again here: nothing leaves the prefix.
 */
export class S3Store {
  readonly settings: S3Settings;
  readonly #client: S3Client;
  /** Signs the URLs clients read files by (`directReadEndpoint`): the store's client, or one for the address clients reach it at. */
  readonly #signer: S3Client | undefined;
  /** URLs this server signed for its own reads, by name, and until when it uses them. */
  readonly #readUrls = new Map<string, { url: URL; until: number }>();

  constructor(settings: S3Settings, client: S3Client = makeS3Client(settings)) {
    this.settings = settings;
    this.#client = client;
    const direct = settings.directReadEndpoint;
    this.#signer =
      direct === undefined ? undefined : direct === settings.endpoint ? client : makeS3Client({ ...settings, endpoint: direct });
  }

  /** A store whose bucket answers: an unreachable store, a missing bucket or refused credentials are one clear error. */
  static async connect(settings: S3Settings): Promise<S3Store> {
    const store = new S3Store(settings);
    try {
      await store.#call('checking the bucket', () => store.#client.send(new HeadBucketCommand({ Bucket: settings.bucket })));
    } catch (error) {
      store.close();
      throw error;
    }
    return store;
  }

  close(): void {
    this.#client.destroy();
    this.#signer?.destroy();
  }

  /**
   * A URL that reads the published file `name`'s bytes (GET, with the reader's Range and If-Match)
   * for `seconds`, signed with the server's keys for that object alone; undefined when direct
   * reads are off. No request is made: anyone holding it may read that key until it lapses.
   */
  async signedReadUrl(name: string, seconds: number): Promise<string | undefined> {
    if (!this.#signer) return undefined;
    const command = new GetObjectCommand({ Bucket: this.settings.bucket, Key: this.#key('files', name) });
    return getSignedUrl(this.#signer, command, { expiresIn: seconds });
  }

  // ---- unfinished uploads ----------------------------------------------------------------------

  /** Starts an upload: a multipart upload of the file's key, and its manifest (which replaces any earlier one of the name). */
  async createUpload(request: S3UploadRequest): Promise<S3UploadManifest> {
    const streamed = request.size === undefined;
    const chunks = request.size === undefined ? 0 : chunkCountOf(request.size, request.chunkSize);
    if (chunks > s3MaxParts) {
      throw new FerryError(
        'EQUOTA',
        `${request.name}: ${request.size} bytes is ${chunks} chunks of ${request.chunkSize} bytes; the S3 store takes at most ${s3MaxParts} (a larger --chunk-size takes larger files)`,
      );
    }
    const key = this.#key('files', request.name);
    const created = await this.#call(`starting the upload of ${request.name}`, () =>
      this.#client.send(new CreateMultipartUploadCommand({ Bucket: this.settings.bucket, Key: key })),
    );
    if (!created.UploadId) throw new FerryError('EIO', `the S3 store gave no upload id for ${request.name}`);
    const now = Date.now();
    const upload: S3UploadManifest = {
      format: 1,
      id: request.id ?? randomUUID(),
      name: request.name,
      size: request.size ?? 0,
      chunkSize: request.chunkSize,
      fingerprint: request.fingerprint,
      ...(request.owner === undefined ? {} : { owner: request.owner }),
      uploadId: created.UploadId,
      created: now,
      touched: now,
      chunks: Array.from({ length: chunks }, () => null),
      hashedChunks: 0,
      ...(streamed ? { streamed: true as const } : {}),
    };
    await this.saveUpload(upload);
    return upload;
  }

  /**
   * The unfinished upload of `name`, as any server left it; undefined if there is none, or if its
   * multipart upload is gone (aborted or completed meanwhile: its manifest is removed).
   */
  async findUpload(name: string): Promise<S3UploadManifest | undefined> {
    const key = this.#key('uploads', name);
    const text = await this.#readText(key, `reading the upload of ${name}`);
    if (text === undefined) return undefined;
    const upload = parseManifest(s3UploadManifestSchema, key, text);
    if (upload.name !== name) throw new FerryError('EIO', `the S3 store holds a damaged manifest at ${key}: it names ${upload.name}`);
    try {
      await this.storedParts(upload);
    } catch (error) {
      if (!uploadIsGone(error)) throw error;
      await this.#deleteKey(key, `removing the stale upload of ${name}`);
      return undefined;
    }
    return upload;
  }

  /** Writes the upload's manifest (a checkpoint): call it only once the chunks it calls stored are. */
  async saveUpload(upload: S3UploadManifest): Promise<void> {
    upload.touched = Date.now();
    await this.#putText(this.#key('uploads', upload.name), JSON.stringify(upload), `saving the upload of ${upload.name}`);
  }

  /** Stores chunk `index` as part `index + 1` (a second copy replaces the first). Durable in the store on return. */
  async writePart(upload: S3UploadManifest, index: number, bytes: Uint8Array): Promise<void> {
    if (upload.streamed) {
      // From a stream, in order (the engine checks): whole chunks but the last, up to S3's part count.
      if (index >= s3MaxParts) {
        throw new FerryError(
          'EQUOTA',
          `${upload.name}: an upload from a stream to the S3 store holds at most ${s3MaxParts} chunks of ${upload.chunkSize} bytes (a larger --chunk-size takes larger files)`,
        );
      }
      if (!(index >= 0) || bytes.byteLength === 0 || bytes.byteLength > upload.chunkSize) {
        throw new FerryError('EPROTO', `chunk ${index} of ${upload.name}: ${bytes.byteLength} bytes, more than a chunk or none`);
      }
    } else {
      const expected = chunkLengthOf(index, upload.size, upload.chunkSize);
      if (!(index >= 0 && index < upload.chunks.length) || bytes.byteLength !== expected) {
        throw new FerryError('EPROTO', `chunk ${index} of ${upload.name}: ${bytes.byteLength} bytes where ${expected} belong`);
      }
    }
    await this.#call(`storing chunk ${index} of ${upload.name}`, () =>
      this.#client.send(
        new UploadPartCommand({
          Bucket: this.settings.bucket,
          Key: this.#key('files', upload.name),
          UploadId: upload.uploadId,
          PartNumber: index + 1,
          Body: bytes,
          ContentLength: bytes.byteLength,
        }),
      ),
    );
  }

  /** The parts the store holds for the upload, by chunk index: size and ETag. */
  async storedParts(upload: S3UploadManifest): Promise<Map<number, { size: number; etag: string }>> {
    const parts = new Map<number, { size: number; etag: string }>();
    let marker: string | undefined;
    for (;;) {
      const page = await this.#call(`listing the chunks of ${upload.name}`, () =>
        this.#client.send(
          new ListPartsCommand({
            Bucket: this.settings.bucket,
            Key: this.#key('files', upload.name),
            UploadId: upload.uploadId,
            PartNumberMarker: marker,
          }),
        ),
      );
      for (const part of page.Parts ?? []) {
        if (part.PartNumber !== undefined && part.ETag) parts.set(part.PartNumber - 1, { size: part.Size ?? 0, etag: part.ETag });
      }
      if (!page.IsTruncated || page.NextPartNumberMarker === undefined) return parts;
      marker = page.NextPartNumberMarker;
    }
  }

  /**
   * Makes the upload a file: every chunk must be in the store at its length (EINCOMPLETE
   * otherwise, and the upload stays as it is); the caller has verified the SHA-256 and the chunk
   * hashes. Completes the multipart upload (the object appears whole, at once), then writes the
   * manifest, then drops the upload's manifest.
   */
  async publish(upload: S3UploadManifest, file: S3PublishRequest): Promise<S3FileManifest> {
    const { name, size, chunkSize } = upload;
    if (!file.force && (await this.stat(name))) throw new FerryError('EEXIST', `${name} already exists (replace it with --force)`);
    const chunks = upload.chunks.length;
    if (file.chunkHashes.length !== chunks)
      throw new FerryError('EPROTO', `${name}: ${file.chunkHashes.length} chunk hashes for ${chunks} chunks`);
    const fileKey = this.#key('files', name);
    const parts = await this.storedParts(upload);
    const missing = Array.from({ length: chunks }, (_, index) => index).filter(
      (index) => parts.get(index)?.size !== chunkLengthOf(index, size, chunkSize),
    );
    if (missing.length > 0) throw new FerryError('EINCOMPLETE', `${missing.length} of ${chunks} chunks of ${name} are not in the store`);
    if (chunks === 0) {
      // S3 completes no multipart upload without a part: an empty file is one empty object.
      await this.#putText(fileKey, '', `storing ${name}`);
      await this.#abort(upload);
    } else {
      await this.#call(`publishing ${name}`, () =>
        this.#client.send(
          new CompleteMultipartUploadCommand({
            Bucket: this.settings.bucket,
            Key: fileKey,
            UploadId: upload.uploadId,
            MultipartUpload: { Parts: [...parts].map(([index, part]) => ({ PartNumber: index + 1, ETag: part.etag })) },
          }),
        ),
      );
    }
    // Some stores (Ceph RGW 16.2) leave the ETag out of CompleteMultipartUpload's answer: ask.
    const head = await this.#call(`checking ${name} once published`, () =>
      this.#client.send(new HeadObjectCommand({ Bucket: this.settings.bucket, Key: fileKey })),
    );
    if (head.ContentLength !== size || !head.ETag) {
      throw new FerryError('EIO', `the S3 store holds ${head.ContentLength ?? '?'} bytes for ${name} once published, not ${size}`);
    }
    const manifest = await this.#record({ name, size, chunkSize, created: upload.created, etag: head.ETag }, file);
    await this.#deleteKey(this.#key('uploads', name), `removing the finished upload of ${name}`);
    return manifest;
  }

  /**
   * Stores a whole small file, its bytes checked by the caller (one chunk of `chunkSize` at most),
   * in one PUT (the object appears whole, at once), then writes its manifest.
   */
  async putWhole(name: string, bytes: Uint8Array, chunkSize: number, file: S3PublishRequest): Promise<S3FileManifest> {
    if (!file.force && (await this.stat(name))) throw new FerryError('EEXIST', `${name} already exists (replace it with --force)`);
    const put = await this.#call(`storing ${name}`, () =>
      this.#client.send(
        new PutObjectCommand({ Bucket: this.settings.bucket, Key: this.#key('files', name), Body: bytes, ContentLength: bytes.byteLength }),
      ),
    );
    if (!put.ETag) throw new FerryError('EIO', `the S3 store gave no ETag for ${name}`);
    return this.#record({ name, size: bytes.byteLength, chunkSize, created: Date.now(), etag: put.ETag }, file);
  }

  /** Writes the manifest that makes the object at files/NAME, with `etag`, a file to Ferry. */
  async #record(
    object: { name: string; size: number; chunkSize: number; created: number; etag: string },
    file: S3PublishRequest,
  ): Promise<S3FileManifest> {
    const manifest: S3FileManifest = {
      format: 1,
      name: object.name,
      size: object.size,
      sha256: file.sha256,
      chunkSize: object.chunkSize,
      chunkHashes: file.chunkHashes.map(xxh64ToHex),
      created: object.created,
      modified: Date.now(),
      ...(file.mode === undefined ? {} : { mode: file.mode }),
      ...(file.mtime === undefined ? {} : { mtime: file.mtime }),
      etag: object.etag,
    };
    await this.#putText(this.#key('manifests', object.name), JSON.stringify(manifest), `recording ${object.name}`);
    return manifest;
  }

  /** Drops an unfinished upload: its parts and its manifest. */
  async abortUpload(upload: S3UploadManifest): Promise<void> {
    await this.#abort(upload);
    // The name's manifest may be another server's newer upload by now: only this upload's goes.
    const key = this.#key('uploads', upload.name);
    const text = await this.#readText(key, `reading the upload of ${upload.name}`);
    if (text !== undefined && parseManifest(s3UploadManifestSchema, key, text).id !== upload.id) return;
    await this.#deleteKey(key, `removing the upload of ${upload.name}`);
  }

  /**
   * Aborts the multipart uploads under the prefix that nobody has touched since `cutoff`
   * (milliseconds since the epoch): by their manifest's `touched`, or, for one without a manifest
   * (a server that died between the two), by when it began. Returns the names they were for.
   */
  async expireUploads(cutoff: number): Promise<string[]> {
    const expired: string[] = [];
    const filesPrefix = this.#key('files', '');
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      const page = await this.#call('listing unfinished uploads', () =>
        this.#client.send(
          new ListMultipartUploadsCommand({
            Bucket: this.settings.bucket,
            Prefix: filesPrefix,
            KeyMarker: keyMarker,
            UploadIdMarker: uploadIdMarker,
          }),
        ),
      );
      for (const pending of page.Uploads ?? []) {
        if (!pending.Key || !pending.UploadId) continue;
        const name = pending.Key.slice(filesPrefix.length);
        const key = this.#key('uploads', name);
        const text = await this.#readText(key, `reading the upload of ${name}`);
        const manifest = text === undefined ? undefined : parseManifest(s3UploadManifestSchema, key, text);
        const ours = manifest?.uploadId === pending.UploadId;
        const lastTouched = ours ? manifest.touched : (pending.Initiated?.getTime() ?? 0);
        if (lastTouched >= cutoff) continue;
        await this.#call(`aborting the upload of ${name}`, () =>
          this.#client.send(
            new AbortMultipartUploadCommand({ Bucket: this.settings.bucket, Key: pending.Key, UploadId: pending.UploadId }),
          ),
        ).catch((error: unknown) => {
          if (!uploadIsGone(error)) throw error;
        });
        if (ours) await this.#deleteKey(key, `removing the expired upload of ${name}`);
        expired.push(name);
      }
      if (!page.IsTruncated) return expired;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
  }

  // ---- published files --------------------------------------------------------------------------

  /** The record of a published file, or undefined. */
  async stat(name: string): Promise<S3FileManifest | undefined> {
    const key = this.#key('manifests', name);
    const text = await this.#readText(key, `reading the record of ${name}`);
    if (text === undefined) return undefined;
    const manifest = parseManifest(s3FileManifestSchema, key, text);
    if (manifest.name !== name || manifest.chunkHashes.length !== chunkCountOf(manifest.size, manifest.chunkSize)) {
      throw new FerryError('EIO', `the S3 store holds a damaged manifest at ${key}`);
    }
    return manifest;
  }

  /**
   * Reads `length` bytes of the file at `offset` into `target` (from its start): the very object
   * the manifest describes, or ECHANGED if it was replaced or deleted since. By a ranged GET of a
   * URL signed for the object (`readRange`: a socket reading into a buffer of its own, where the
   * SDK's stream allocated 64 KiB a read), tried again with backoff as the SDK's calls are.
   */
  async readRange(file: S3FileManifest, offset: number, length: number, target: Uint8Array): Promise<void> {
    if (length === 0) return;
    const into = Buffer.from(target.buffer, target.byteOffset, target.byteLength);
    const attempts = this.settings.maxAttempts ?? 4;
    for (let attempt = 1; ; attempt += 1) {
      try {
        await readRange(await this.#readUrl(file.name), file.etag, offset, length, into);
        return;
      } catch (error) {
        // The next try signs afresh: a URL the store refused, or one of a name read no more, is not kept.
        this.#readUrls.delete(file.name);
        if (error instanceof FerryError && error.code === 'ECHANGED') {
          throw new FerryError('ECHANGED', `${file.name} was replaced or deleted in the S3 store while it was being read`, {
            cause: error,
          });
        }
        const failure = error instanceof FerryError ? error : this.#failure(`reading ${file.name}`, error);
        // A cut, a stall or an error of the store's may pass; a refused URL or a store that breaks the protocol will not.
        const passing = failure.code === 'EIO' || failure.code === 'ETIMEDOUT';
        if (!passing || attempt >= attempts)
          throw new FerryError(failure.code, `reading ${file.name}: ${failure.message}`, { cause: error });
        await setTimeout(Math.min(2000, 100 * 2 ** (attempt - 1) * (0.5 + Math.random())));
      }
    }
  }

  /** A URL signed for GETs of `name`'s object, made once a minute at most per name (a file's chunks share it). */
  async #readUrl(name: string): Promise<URL> {
    const now = Date.now();
    const known = this.#readUrls.get(name);
    if (known && known.until > now) return known.url;
    const command = new GetObjectCommand({ Bucket: this.settings.bucket, Key: this.#key('files', name) });
    const url = new URL(await getSignedUrl(this.#client, command, { expiresIn: readUrlSeconds }));
    // Few names are read at once; the map is emptied now and then rather than kept in order.
    if (this.#readUrls.size >= 1024) this.#readUrls.clear();
    this.#readUrls.set(name, { url, until: now + (readUrlSeconds - 60) * 1000 });
    return url;
  }

  /** Deletes a published file (its manifest first: from then on no server lists it); false if there was none. */
  async delete(name: string): Promise<boolean> {
    if (!(await this.stat(name))) return false;
    await this.#deleteKey(this.#key('manifests', name), `deleting ${name}`);
    await this.#deleteKey(this.#key('files', name), `deleting ${name}`);
    return true;
  }

  /**
   * The published files whose names start with `prefix`, in name order (by their UTF-8 bytes),
   * page by page from the store: from just after `after` if given, asking `pageSize` at a time
   * (at most 1,000, S3's own limit). Stop iterating and no further page is asked for.
   */
  async *list(prefix = '', { after, pageSize = 1000 }: { after?: string; pageSize?: number } = {}): AsyncGenerator<S3ListedFile> {
    const manifests = this.#key('manifests', '');
    const startAfter = after === undefined ? undefined : manifests + after;
    let token: string | undefined;
    do {
      const page = await this.#call('listing files', () =>
        this.#client.send(
          new ListObjectsV2Command({
            Bucket: this.settings.bucket,
            Prefix: manifests + prefix,
            ContinuationToken: token,
            ...(token === undefined && startAfter !== undefined ? { StartAfter: startAfter } : {}),
            MaxKeys: Math.min(1000, Math.max(1, pageSize)),
          }),
        ),
      );
      for (const entry of page.Contents ?? []) {
        if (!entry.Key || !entry.ETag) continue;
        yield { name: entry.Key.slice(manifests.length), manifestEtag: entry.ETag, lastModified: entry.LastModified?.getTime() ?? 0 };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  // ---- keys and calls ---------------------------------------------------------------------------

  #key(area: 'files' | 'manifests' | 'uploads', name: string): string {
    const key = `${this.settings.prefix}${area}/${name === '' ? '' : checkName(name)}`;
    if (Buffer.byteLength(key) > s3MaxKeyBytes) {
      throw new FerryError('EBADNAME', `${name}: too long for this S3 store (its keys are at most ${s3MaxKeyBytes} bytes with the prefix)`);
    }
    return key;
  }

  async #abort(upload: S3UploadManifest): Promise<void> {
    await this.#call(`dropping the upload of ${upload.name}`, () =>
      this.#client.send(
        new AbortMultipartUploadCommand({ Bucket: this.settings.bucket, Key: this.#key('files', upload.name), UploadId: upload.uploadId }),
      ),
    ).catch((error: unknown) => {
      if (!uploadIsGone(error)) throw error;
    });
  }

  async #readText(key: string, doing: string): Promise<string | undefined> {
    try {
      const response = await this.#client.send(new GetObjectCommand({ Bucket: this.settings.bucket, Key: key }));
      return await response.Body!.transformToString('utf8');
    } catch (error) {
      if (s3CodeOf(error) === 'NoSuchKey' || s3StatusOf(error) === 404) return undefined;
      throw this.#failure(doing, error);
    }
  }

  async #putText(key: string, text: string, doing: string): Promise<void> {
    await this.#call(doing, () =>
      this.#client.send(new PutObjectCommand({ Bucket: this.settings.bucket, Key: key, Body: text, ContentType: 'application/json' })),
    );
  }

  async #deleteKey(key: string, doing: string): Promise<void> {
    await this.#call(doing, () => this.#client.send(new DeleteObjectCommand({ Bucket: this.settings.bucket, Key: key })));
  }

  /** Runs one S3 call; its failure becomes a FerryError that keeps the SDK's error as its cause. */
  async #call<T>(doing: string, send: () => Promise<T>): Promise<T> {
    try {
      return await send();
    } catch (error) {
      throw this.#failure(doing, error);
    }
  }

  #failure(doing: string, error: unknown): FerryError {
    return s3Failure(this.settings, doing, error);
  }
}
