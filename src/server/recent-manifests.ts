import type { S3FileManifest } from '../object-store/s3-manifests.js';

/** How long a manifest the catalog read stays good for opening the file (a download opens it milliseconds after the refresh). */
const freshForMs = 2000;

/**
 * The manifests the shared catalog has just read, handed to the download that asked for the
 * refresh, which would otherwise read the same manifest again to open the file (one GET per
 * download). Each is taken once, and only within `freshForMs` of its read; at most `max` wait (a
 * stat reads one that no download takes), the oldest going first. A manifest taken may still be a
 * moment old: the download's reads are conditional on its ETag, so a file replaced meanwhile is
 * told ECHANGED.
 */
export class RecentManifests {
  readonly #byName = new Map<string, { manifest: S3FileManifest; readAt: number }>();
  readonly #max: number;

  constructor(max = 256) {
    this.#max = max;
  }

  keep(manifest: S3FileManifest): void {
    this.#byName.delete(manifest.name);
    this.#byName.set(manifest.name, { manifest, readAt: performance.now() });
    if (this.#byName.size > this.#max) this.#byName.delete(this.#byName.keys().next().value!);
  }

  forget(name: string): void {
    this.#byName.delete(name);
  }

  take(name: string): S3FileManifest | undefined {
    const kept = this.#byName.get(name);
    this.#byName.delete(name);
    return kept && performance.now() - kept.readAt <= freshForMs ? kept.manifest : undefined;
  }
}
