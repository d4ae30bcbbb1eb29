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
    await this.refreshPage(prefix, undefined, Infinity);
  }

  /**
   * Brings up to date the records a page of a listing shows: under `prefix`, from just after
   * `after`, the next `count` files the store has (or all of them to the end of the prefix, if it
   * has fewer). One page of a listing costs one listing request of the store (two past 1,000 names),
   * not a listing of the whole prefix, however many files it holds.
   */
  async refreshPage(prefix: string, after: string | undefined, count: number): Promise<void> {
    const listed = new Set<string>();
    let last: string | undefined;
    const pageSize = Number.isFinite(count) ? count : 1000;
    for await (const entry of this.#s3.list(prefix, { after, pageSize })) {
      listed.add(entry.name);
      last = entry.name;
      if (this.#seen.get(entry.name) !== entry.manifestEtag || !this.#store.fileRecord(entry.name)) {
        const manifest = await this.#s3.stat(entry.name);
        if (manifest) await this.#record(manifest, entry.manifestEtag);
      }
      if (listed.size >= count) break;
    }
    // Records in the range the store's answer covered that it did not list are gone from the store.
    const reachedEnd = listed.size < count;
    const stale: string[] = [];
    for (const file of this.#store.filesFrom({ prefix, after })) {
      if (!reachedEnd && last !== undefined && Buffer.compare(Buffer.from(file.name), Buffer.from(last)) > 0) break;
      if (!listed.has(file.name)) stale.push(file.name);
    }
    for (const name of stale) await this.#forget(name);
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
