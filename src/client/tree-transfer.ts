import { setMaxListeners } from 'node:events';
import { type Stats, chmodSync, lstatSync, mkdirSync, statSync, utimesSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { type ErrorCode, FerryError } from '../protocol/errors.js';
import type { FileInfo, FileSummary } from '../protocol/messages.js';
import { checkName } from '../protocol/names.js';
import { fromSystemError } from '../system-errors.js';
import type { FerryClient, TransferControl } from './client.js';
import { type CompressChoice, packingFor } from '../compression/negotiation.js';
import type { HashCache } from './hash-cache.js';
import { type InFlightLimits, inFlight } from './in-flight.js';
import { type LocalTreeEntry, walkLocalTree } from './local-tree.js';
import type { ProgressListener, StartListener } from './progress.js';

/** What a folder transfer reports as it goes. */
export interface TreeHooks extends TransferControl {
  /** A file is about to be sent or fetched (not called for files that are already the same on both sides). */
  onFile?: (file: { name: string; path: string; size: number }) => void;
  /** The current file's progress and start, as for one transfer. */
  onProgress?: ProgressListener;
  onStart?: StartListener;
  /** Something in the tree was not sent (a link, a device, an empty folder): one call each. */
  onSkipped?: (skipped: TreeSkip) => void;
  /** A file could not be sent or fetched; the rest goes on. */
  onFailed?: (failure: TreeFailure) => void;
  /** A file is done: sent, fetched, or found the same on both sides. */
  onDone?: (file: { name: string; path: string; size: number; moved: boolean }) => void;
  /** A line for the user about the current transfer (a partial download discarded). */
  onNotice?: (text: string) => void;
  /** How many files, and bytes of files, are in flight at once on the connection (default: `defaultUploadInFlight` or `defaultDownloadInFlight`). */
  inFlight?: InFlightLimits;
  /** Whether each file's chunks go compressed (default `auto`). */
  compress?: CompressChoice;
}

/**
 * Files in flight at once by default in a tree's download: enough that small files do not each
 * wait for their own round trips (the server handles 16 requests of a connection at once; the
 * rest wait in the socket, ready the moment one ends), and big files nearly one at a time (the
 * bytes' limit: a cut run leaves one or two partial files). 96 against 16 took a tenth off a tree
 * download's time; 160 did no better than 96 (docs/perf-notes.md, "Whole puts in flight").
 */
export const defaultDownloadInFlight: InFlightLimits = { count: 96, bytes: 32 * 1024 * 1024 };

/**
 * Files in flight at once by default in a tree's upload: the server handles up to 128 whole puts
 * of a connection at once, and the more of them wait for durability together, the fewer folder
 * fsyncs and LMDB commits each costs (docs/perf-notes.md, "Whole puts in flight"). Big files go
 * nearly one at a time, as in a download.
 */
export const defaultUploadInFlight: InFlightLimits = { count: 128, bytes: 32 * 1024 * 1024 };

export interface TreeSkip {
  path: string;
  why: string;
}

export interface TreeFailure {
  /** The local path (an upload) or the stored name (a download). */
  item: string;
  code: ErrorCode;
  message: string;
}

/** The outcome of a folder transfer. */
export interface TreeSummary {
  /** Regular files met, made it or not. */
  files: number;
  /** Files sent or fetched in this run. */
  moved: number;
  /** Files left alone: the other side already had the same bytes (same size and SHA-256). */
  unchanged: number;
  /** Bytes of the files that made it (moved or unchanged). */
  bytes: number;
  /** Payload bytes that crossed the network in this run. */
  bytesMoved: number;
  /** What those bytes took on the wire: fewer where chunks went compressed. */
  wireBytes: number;
  /** Empty folders kept (a `.ferry-folder` marker stored, or a folder made for one). */
  folders: number;
  /** Things not sent on purpose (links, devices, sockets, FIFOs), by count. */
  skipped: number;
  failed: TreeFailure[];
  /** Set when the run stopped before the end: why (the connection gave up, or a cancel). */
  stopped?: FerryError;
}

/**
 * How an empty folder is kept on the server, where only files are stored: an empty file of this
 * name inside it (`PREFIX/x/empty/.ferry-folder`), as `.gitkeep` does for git and a `x/empty/`
 * object does for S3 consoles. `download -r` makes the folder and writes no file for it.
 */
export const folderMarker = '.ferry-folder';

/** Whether a stored file is an empty folder's marker: empty, and so named (a file of that name with bytes in it is a file). */
export function isFolderMarker(file: { name: string; size: number }): boolean {
  return file.size === 0 && (file.name === folderMarker || file.name.endsWith(`/${folderMarker}`));
}

/** A name under a folder: `prefix/relative` (`relative` alone for the whole store). */
function nameUnder(prefix: string, relative: string): string {
  return prefix === '' ? relative : `${prefix}/${relative}`;
}

/** The inverse: a stored name under `prefix`, relative to it. */
export function relativeName(prefix: string, name: string): string {
  return prefix === '' ? name : name.slice(prefix.length + 1);
}

/** What `list` is asked for to get the files under a folder (`''`: the whole store). */
export function listingPrefix(prefix: string): string | undefined {
  return prefix === '' ? undefined : `${prefix}/`;
}

/** A folder name as given (`photos/`, `/photos`): without slashes at its ends, checked as a name; `''` stays the whole store. */
export function folderName(given: string): string {
  const trimmed = given.replace(/^\/+|\/+$/gu, '');
  return trimmed === '' ? '' : checkName(trimmed.normalize('NFC'));
}

/**
 * Refuses a codec named (`--compress zstd`) that this client or the server lacks once, before
 * any file, not once per file of the tree (which could be a million lines of the same error).
 */
async function checkCodec(client: FerryClient, compress: CompressChoice | undefined): Promise<void> {
  if (compress === undefined || compress === 'auto' || compress === 'off') return;
  packingFor(compress, (await client.connection()).hello.capabilities);
}

/** A failure that is about the link or the run, not the file: the files after it would fail the same way. */
function stopsTheRun(error: FerryError): boolean {
  return error.retryable || error.code === 'ECANCELED' || error.code === 'EAUTH' || error.code === 'ECONNECT';
}

function failureOf(item: string, error: FerryError): TreeFailure {
  return { item, code: error.code, message: error.message };
}

/** Counts what a tree transfer did, and stops it at the first failure that is not about one file. */
class TreeTally {
  readonly summary: TreeSummary = {
    files: 0,
    moved: 0,
    unchanged: 0,
    bytes: 0,
    bytesMoved: 0,
    wireBytes: 0,
    folders: 0,
    skipped: 0,
    failed: [],
  };
  readonly #hooks: TreeHooks;

  constructor(hooks: TreeHooks) {
    this.#hooks = hooks;
  }

  skipped(skip: TreeSkip): void {
    this.summary.skipped += 1;
    this.#hooks.onSkipped?.(skip);
  }

  unchanged(name: string, path: string, size: number): void {
    this.summary.unchanged += 1;
    this.summary.bytes += size;
    this.#hooks.onDone?.({ name, path, size, moved: false });
  }

  moved(name: string, path: string, size: number, moved: { bytes: number; wireBytes: number }): void {
    this.summary.moved += 1;
    this.summary.bytes += size;
    this.summary.bytesMoved += moved.bytes;
    this.summary.wireBytes += moved.wireBytes;
    this.#hooks.onDone?.({ name, path, size, moved: true });
  }

  /** Records a file's failure; returns false when the run must stop (`summary.stopped` says why). */
  failed(item: string, error: unknown): boolean {
    if (!(error instanceof FerryError)) throw error;
    if (stopsTheRun(error)) {
      this.summary.stopped = error;
      return false;
    }
    const failure = failureOf(item, error);
    this.summary.failed.push(failure);
    this.#hooks.onFailed?.(failure);
    return true;
  }
}

/** The stored file called `name`, or undefined if there is none. */
async function storedFile(client: FerryClient, name: string): Promise<FileInfo | undefined> {
  try {
    return await client.stat(name);
  } catch (error) {
    if (error instanceof FerryError && error.code === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * Lets the files in flight each listen to the tree's one cancel signal (Node warns past 10
 * listeners, as if they leaked).
 */
function shareSignal(hooks: TreeHooks, limits: InFlightLimits): void {
  if (hooks.signal) setMaxListeners(limits.count + 10, hooks.signal);
}

/** The transfer-level controls of one file of a tree. */
function fileControl(hooks: TreeHooks): TransferControl & Pick<TreeHooks, 'onProgress' | 'onStart' | 'compress'> {
  return {
    ...(hooks.compress ? { compress: hooks.compress } : {}),
    ...(hooks.signal ? { signal: hooks.signal } : {}),
    ...(hooks.retry ? { retry: hooks.retry } : {}),
    ...(hooks.onProgress ? { onProgress: hooks.onProgress } : {}),
    ...(hooks.onStart ? { onStart: hooks.onStart } : {}),
  };
}

/**
 * Uploads a local folder's tree under `prefix` (`DIR/x/y` is stored as `PREFIX/x/y`), several
 * files at once on the client's one connection (see `defaultUploadInFlight`). A file the server already
 * holds with the same size and SHA-256 is not sent (its hash comes from `cache` where the local
 * file did not change, so it is not even read); a different one is replaced; a file cut by an
 * earlier run resumes from its last verified chunk (the ordinary upload's resume). Links,
 * devices, sockets, FIFOs and empty folders are reported and skipped; a local name that is not a
 * valid Ferry name fails alone.
 */
export async function uploadTree(
  client: FerryClient,
  root: string,
  prefix: string,
  options: TreeHooks & { cache: HashCache; followSymlinks?: boolean },
): Promise<TreeSummary> {
  await checkCodec(client, options.compress);
  const tally = new TreeTally(options);
  const entries = walkLocalTree(root, { followSymlinks: options.followSymlinks ?? false });
  const sizeOf = (entry: LocalTreeEntry): number => (entry.kind === 'file' ? entry.stats.size : 0);
  const limits = options.inFlight ?? defaultUploadInFlight;
  shareSignal(options, limits);
  // Into a folder that holds nothing yet no file can be unchanged: none is asked about first.
  const startsEmpty = await holdsNothing(client, prefix);
  await inFlight(entries, sizeOf, limits, async (entry) => {
    if (options.signal?.aborted) return tally.failed(entry.path, new FerryError('ECANCELED', 'cancelled'));
    if (entry.kind === 'skipped') {
      tally.skipped({ path: entry.path, why: entry.why });
      return true;
    }
    if (entry.kind === 'empty-folder')
      return keepEmptyFolder(client, nameUnder(prefix, entry.relative.normalize('NFC')), entry.path, tally);
    tally.summary.files += 1;
    // Names travel in NFC; a file system that stores names decomposed (macOS) gives NFD.
    const name = nameUnder(prefix, entry.relative.normalize('NFC'));
    try {
      checkName(name);
      try {
        await uploadTreeFile(client, entry, name, { ...options, tally, askFirst: !startsEmpty });
      } catch (error) {
        // Stored meanwhile by someone else: see whether it is the same file after all.
        if (!(startsEmpty && error instanceof FerryError && error.code === 'EEXIST')) throw error;
        await uploadTreeFile(client, entry, name, { ...options, tally, askFirst: true });
      }
      return true;
    } catch (error) {
      return tally.failed(entry.path, error);
    }
  });
  return tally.summary;
}

/**
 * Sends one file of a tree, unless the server holds the same bytes under its name; a different
 * file there is replaced. `askFirst` false: the name was free when the run began, so the file is
 * sent without a `stat` first (EEXIST, should it have been stored since).
 */
async function uploadTreeFile(
  client: FerryClient,
  entry: LocalTreeEntry & { kind: 'file' },
  name: string,
  options: TreeHooks & { cache: HashCache; tally: TreeTally; askFirst: boolean },
): Promise<void> {
  const { tally, cache } = options;
  const size = entry.stats.size;
  const stored = options.askFirst ? await storedFile(client, name) : undefined;
  if (stored && stored.damaged === undefined && stored.size === size && (await cache.sha256Of(entry.path, entry.stats)) === stored.sha256) {
    tally.unchanged(name, entry.path, size);
    return;
  }
  options.onFile?.({ name, path: entry.path, size });
  const result = await client.upload(entry.path, { name, force: stored !== undefined, ...fileControl(options) });
  cache.set(entry.path, entry.stats, result.sha256);
  tally.moved(name, entry.path, size, { bytes: result.bytesSent, wireBytes: result.wireBytes });
}

/** Whether nothing is stored under `prefix` (the whole store for `''`). */
async function holdsNothing(client: FerryClient, prefix: string): Promise<boolean> {
  for await (const file of client.listEach(listingPrefix(prefix))) {
    void file;
    return false;
  }
  return true;
}

/** Stores the marker of an empty folder (`name`, local `path`) unless it is there already. */
async function keepEmptyFolder(client: FerryClient, folder: string, path: string, tally: TreeTally): Promise<boolean> {
  const name = `${folder}/${folderMarker}`;
  try {
    checkName(name);
    // A stored file of that name (a marker, or someone's own file) already keeps the folder.
    if (!(await storedFile(client, name))) await client.uploadStream(nothing(), { name });
    tally.summary.folders += 1;
    return true;
  } catch (error) {
    return tally.failed(path, error);
  }
}

/** An input with no bytes: what an empty file's upload reads. */
async function* nothing(): AsyncGenerator<Uint8Array> {}

/**
 * Downloads every stored file under `prefix` into `out`, keeping the tree (`PREFIX/x/y` is
 * written to `OUT/x/y`), several files at once (see `defaultDownloadInFlight`). A local file that already has the stored size
 * and SHA-256 is left alone (read only if the cache does not know it); anything else is fetched
 * (a cut download resumes from its `.ferry-part`). Each file gets the permission bits and
 * modification time its uploader kept, as `rsync -t -p` does.
 */
export async function downloadTree(
  client: FerryClient,
  prefix: string,
  out: string,
  options: TreeHooks & { cache: HashCache; direct?: boolean },
): Promise<TreeSummary> {
  await checkCodec(client, options.compress);
  const tally = new TreeTally(options);
  const base = resolve(out);
  const limits = options.inFlight ?? defaultDownloadInFlight;
  shareSignal(options, limits);
  const folders = new LocalFolders();
  await inFlight(
    // Read a page at a time as the downloads go: a tree of any size takes one page of memory.
    client.listEach(listingPrefix(prefix)),
    (file) => file.size,
    limits,
    async (file) => {
      if (options.signal?.aborted) return tally.failed(file.name, new FerryError('ECANCELED', 'cancelled'));
      const path = join(base, ...relativeName(prefix, file.name).split('/'));
      const outside = path.startsWith(base + sep) ? undefined : new FerryError('EBADNAME', `${file.name} would land outside ${out}`);
      if (isFolderMarker(file))
        return outside ? tally.failed(file.name, outside) : makeEmptyFolder(dirname(path), file.name, tally, folders);
      tally.summary.files += 1;
      try {
        if (outside) throw outside;
        if (file.damaged !== undefined) throw new FerryError('ECORRUPT', `${file.name} is damaged on the server: ${file.damaged}`);
        // The local calls of each file block, on purpose: microseconds each that way, against tens
        // through libuv's thread pool (docs/perf-notes.md, "Local calls of the client on small files").
        const local = localFileAt(path);
        if (local && !local.isFile())
          throw new FerryError('EEXIST', `${path} is in the way: a ${local.isDirectory() ? 'folder' : 'link or special file'}, not a file`);
        if (local && local.size === file.size && (await options.cache.sha256Of(path, local)) === file.sha256) {
          restoreAttributes(path, file, local, options.cache);
          tally.unchanged(file.name, path, file.size);
          return true;
        }
        folders.make(dirname(path));
        options.onFile?.({ name: file.name, path, size: file.size });
        const result = await client.download(file.name, {
          out: path,
          outIsFilePath: true,
          force: true,
          ...fileControl(options),
          ...(options.onNotice ? { onNotice: options.onNotice } : {}),
          ...(options.direct === undefined ? {} : { direct: options.direct }),
        });
        restoreAttributes(path, file, undefined, options.cache, result.sha256);
        tally.moved(file.name, path, file.size, { bytes: result.bytesReceived, wireBytes: result.wireBytes });
        return true;
      } catch (error) {
        return tally.failed(file.name, error);
      }
    },
  );
  if (tally.summary.files === 0 && tally.summary.folders === 0 && tally.summary.failed.length === 0 && !tally.summary.stopped)
    throw new FerryError('ENOENT', `no stored files under ${prefix === '' ? 'the store' : `${prefix}/`}`);
  return tally.summary;
}

/** What is at `path` locally (lstat: a link is not followed), or undefined for nothing. */
function localFileAt(path: string): Stats | undefined {
  try {
    return lstatSync(path, { throwIfNoEntry: false });
  } catch (error) {
    throw fromSystemError(error, `local file ${path}`);
  }
}

/**
 * The local folders a tree's download makes: each is made (with those above it) once, not once per
 * file in it (a `mkdir` that finds the folder there, then a stat to tell it is a folder). Only the
 * last few hundred are remembered: the files come in name order, a folder's together.
 */
class LocalFolders {
  readonly #made = new Set<string>();

  make(path: string): void {
    if (this.#made.has(path)) return;
    try {
      mkdirSync(path, { recursive: true });
    } catch (error) {
      throw fromSystemError(error, `local folder ${path}`);
    }
    if (this.#made.size >= rememberedFolders) this.#made.clear();
    this.#made.add(path);
  }
}

/** How many folders `LocalFolders` remembers as made. */
const rememberedFolders = 256;

/** Makes the folder an empty-folder marker stands for (`marker`: its stored name). */
function makeEmptyFolder(path: string, marker: string, tally: TreeTally, folders: LocalFolders): boolean {
  try {
    folders.make(path);
    tally.summary.folders += 1;
    return true;
  } catch (error) {
    return tally.failed(marker, error);
  }
}

/** The permission bits `download -r` restores: all but set-user-ID and set-group-ID (a server's word must not make a local program run as another user or group). */
const restorableModeBits = 0o1777;

/**
 * Gives a downloaded (or already matching) local file the mode and mtime its uploader kept, and
 * remembers its SHA-256 in the cache as the file now is.
 */
function restoreAttributes(path: string, file: FileSummary, before: Stats | undefined, cache: HashCache, sha256 = file.sha256): void {
  try {
    // Never the set-user-ID and set-group-ID bits: a server's word does not make a local program run as its owner.
    const mode = file.mode === undefined ? undefined : file.mode & restorableModeBits;
    if (mode !== undefined && (before === undefined || (before.mode & 0o7777) !== mode)) chmodSync(path, mode);
    if (file.mtime !== undefined) {
      const mtime = new Date(file.mtime);
      if (before === undefined || Math.round(before.mtimeMs) !== mtime.getTime()) utimesSync(path, new Date(), mtime);
    }
    cache.set(path, statSync(path), sha256);
  } catch (error) {
    throw fromSystemError(error, `local file ${path}`);
  }
}
