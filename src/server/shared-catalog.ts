import type { S3Store } from '../object-store/s3-store.js';
import type { S3FileManifest } from '../object-store/s3-manifests.js';
import { xxh64FromHex } from '../protocol/frames.js';
import type { MetaStore } from '../store/meta-store.js';
import { type StoredFile, packHashes } from '../store/records.js';
import type { RecentManifests } from './recent-manifests.js';

/**
 * On a store several servers share, the files are what the store's manifests say; this server's
 * LMDB keeps a copy of their records (a cache), brought up to date from the store before a list,
 * a stat or a download answers. A record whose manifest is gone is removed; one whose manifest
 * changed (another server replaced the file) is replaced. Only the manifests this server has not
 * seen, by their ETag, are read.
 */
export class SharedCatalog {
  readonly #s3: S3Store;
  readonly #store: MetaStore;
  /** The manifest ETag behind each record, as last read. */
  readonly #seen = new Map<string, string>();
  readonly #onChange: (name: string, before: number, after: number) => void;
  /** Where `refreshOne` leaves the manifest it read, for a download of the file to open it with. */
  readonly #recent: RecentManifests;

  constructor(s3: S3Store, store: MetaStore, recent: RecentManifests, onChange: (name: string, before: number, after: number) => void) {
    this.#s3 = s3;
    this.#store = store;
    this.#recent = recent;
    this.#onChange = onChange;
  }

  /** Brings the records under `prefix` up to date with the store. */
  async refresh(prefix: string): Promise<void> {
    const listed = new Set<string>();
    for await (const entry of this.#s3.list(prefix)) {
      listed.add(entry.name);
      if (this.#seen.get(entry.name) === entry.manifestEtag && this.#store.fileRecord(entry.name)) continue;
      const manifest = await this.#s3.stat(entry.name);
      if (manifest) await this.#record(manifest, entry.manifestEtag);
    }
    for (const file of [...this.#store.filesFrom({ prefix })]) {
      if (!listed.has(file.name)) await this.#forget(file.name);
    }
  }

  /** Brings the record of `name` up to date with the store. */
  async refreshOne(name: string): Promise<void> {
    const manifest = await this.#s3.stat(name);
    if (!manifest) {
      this.#recent.forget(name);
      return this.#forget(name);
    }
    this.#recent.keep(manifest);
    const current = this.#store.fileRecord(name);
    if (current && current.sha256 === manifest.sha256 && current.modified === manifest.modified) return;
    await this.#record(manifest, undefined);
  }

  async #record(manifest: S3FileManifest, etag: string | undefined): Promise<void> {
    const before = this.#store.fileRecord(manifest.name)?.size ?? 0;
    const file: StoredFile = {
      name: manifest.name,
      size: manifest.size,
      sha256: manifest.sha256,
      chunkSize: manifest.chunkSize,
      hashes: packHashes(manifest.chunkHashes.map(xxh64FromHex)),
      created: manifest.created,
      modified: manifest.modified,
      ...(manifest.mode === undefined ? {} : { mode: manifest.mode }),
      ...(manifest.mtime === undefined ? {} : { mtime: manifest.mtime }),
    };
    await this.#store.commitFile(file);
    if (etag) this.#seen.set(manifest.name, etag);
    else this.#seen.delete(manifest.name);
    this.#onChange(manifest.name, before, manifest.size);
  }

  async #forget(name: string): Promise<void> {
    this.#seen.delete(name);
    const removed = await this.#store.deleteFile(name);
    if (removed) this.#onChange(name, removed.size, 0);
  }
}
