import { type Stats, renameSync, statSync, unlinkSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { basename, dirname, resolve, sep } from 'node:path';
import { FerryError } from '../protocol/errors.js';
import { fromSystemError } from '../system-errors.js';
import { type CompressChoice, type Packing, packingFor } from '../compression/negotiation.js';
import { xxh64FromHex } from '../protocol/frames.js';
import { maxHashesPageEntries } from '../protocol/limits.js';
import type { FileInfo, GetResult } from '../protocol/messages.js';
import { type RunningSha256, runningSha256 } from '../hashing/running-sha256.js';
import type { ClientConnection } from './connection.js';
import type { ProgressListener, StartListener } from './progress.js';
import { loadXxh64 } from '../hashing/xxh64.js';
import { InOrderHashing, receiveInParallel, streamsFor } from './parallel-download.js';
import { type ChunkWriter, type Received, completeBytes, receiveChunks } from './download-receiver.js';
import { offersDirect, receiveDirect, rememberUnreadable } from './direct-download.js';
import { formatBytes } from '../units.js';
import { PartFile } from './part-file.js';

export interface DownloadOptions {
  /** Local destination; defaults to the remote name's last segment in the current directory. */
  out?: string;
  /**
   * `out` is the file's own path, in a folder that exists, with no folder in the way (a tree's
   * download has made the folder and looked at the path): taken as it is, without the stats that
   * tell a folder from a file.
   */
  outIsFilePath?: boolean;
  force?: boolean;
  onProgress?: ProgressListener;
  /** Called once it is known how much of a leftover partial download is good, before any byte is asked for. */
  onStart?: StartListener;
  /** A line for the user about the transfer (a leftover partial download discarded). */
  onNotice?: (text: string) => void;
  /** Whether the server compresses the chunks it sends (default `auto`: when that pays). */
  compress?: CompressChoice;
  /** Fetch over this many connections at once, each a range of the chunks (default 1); needs `openConnection`. */
  streams?: number;
  /** Opens another connection to the same server as the same user: for `streams`. */
  openConnection?: () => Promise<ClientConnection>;
  /** Read from the server's object store where it offers that (capability `get-direct`; default true); false: always through the server. */
  direct?: boolean;
}

export interface DownloadResult {
  name: string;
  path: string;
  size: number;
  sha256: string;
  bytesReceived: number;
  /** Payload bytes that crossed the wire for them: fewer than `bytesReceived` when chunks came compressed. */
  wireBytes: number;
  resumed: boolean;
}

/** What sits beside a partial download so a rerun knows what it is a part of. */
interface PartialState {
  name: string;
  sha256: string;
  size: number;
  chunkSize: number;
}

const partSuffix = '.ferry-part';
const stateSuffix = '.ferry-part.json';

export function partialPathsFor(dest: string): { part: string; state: string } {
  return { part: dest + partSuffix, state: dest + stateSuffix };
}

/** Whether there is something (readable) at `path`. Blocks: a stat costs microseconds that way (see part-file.ts). */
function exists(path: string): boolean {
  return statIfThere(path) !== undefined;
}

/** What is at `path`, if anything readable is (a blocking stat, as `exists`). */
function statIfThere(path: string): Stats | undefined {
  try {
    return statSync(path, { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}

/**
 * Where a download of `name` goes, as cp and scp decide it: `out` naming a directory that exists
 * (or ending in `/`) means inside it, under the name's last segment; anything else is the file's
 * own path. A directory that does not exist is named in the error (never the `.ferry-part` path).
 */
export function destinationFor(name: string, out: string | undefined): string {
  const ownName = basename(name);
  if (out === undefined) return resolve(ownName);
  const meansDirectory = out.endsWith('/') || out.endsWith(sep);
  // Without the trailing separator: stat("file/") fails as ENOTDIR, and this wants to tell "a file" from "nothing".
  const outStat = statIfThere(meansDirectory ? out.slice(0, -1) || out : out);
  if (outStat?.isDirectory()) return resolve(out, ownName);
  if (meansDirectory) {
    throw new FerryError('ENOENT', `${out}: no such local directory (${outStat ? 'it is a file' : 'create it first'})`);
  }
  const dest = resolve(out);
  const folderStat = statIfThere(dirname(dest));
  if (!folderStat) throw new FerryError('ENOENT', `${dirname(dest)}: no such local directory (create it first)`);
  if (!folderStat.isDirectory()) throw new FerryError('ENOENT', `${dirname(dest)}: not a directory`);
  return dest;
}

async function readState(path: string): Promise<PartialState | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as PartialState;
  } catch {
    return undefined;
  }
}

/**
 * Resume rule for downloads: the partial file is trusted only as far as its chunks still hash to
 * what the server lists for the same content (same sha256). Returns how many leading chunks
 * are good, having fed them to `sha256`.
 */
async function verifiedPrefix(
  connection: ClientConnection,
  handle: PartFile,
  info: FileInfo,
  sha256: RunningSha256,
  xxh64: (bytes: Uint8Array) => bigint,
): Promise<number> {
  const partSize = handle.size();
  const shared = new SharedArrayBuffer(Math.max(1, Math.min(info.chunkSize, info.size)));
  const buffer = Buffer.from(shared);
  let good = 0;
  for (let from = 0; from < info.chunkCount; from += maxHashesPageEntries) {
    const page = await connection.request('hashes', {
      name: info.name,
      from,
      count: Math.min(maxHashesPageEntries, info.chunkCount - from),
    });
    for (const hex of page.hashes) {
      const offset = good * info.chunkSize;
      const length = Math.min(info.chunkSize, info.size - offset);
      if (hex === null || offset + length > partSize) return good;
      const bytes = buffer.subarray(0, length);
      await handle.read(bytes, 0, length, offset);
      if (xxh64(bytes) !== xxh64FromHex(hex)) return good;
      await sha256.update(shared, length);
      good += 1;
    }
  }
  return good;
}

/**
 * Downloads (or resumes downloading) one remote file. Bytes land in `<dest>.ferry-part`; only a
 * complete file whose SHA-256 matches is renamed to `dest`. Until then nothing exists at `dest`.
 * With nothing of an earlier attempt there (no part, no state), the file is asked for at once
 * (`get` alone, one round trip); else `stat` first tells whether the part can be resumed.
 */
export async function downloadFile(connection: ClientConnection, name: string, options: DownloadOptions = {}): Promise<DownloadResult> {
  const xxh64 = await loadXxh64();
  // Settled before anything is made: a codec the server lacks fails the download here, leaving nothing behind.
  const pack = packingFor(options.compress ?? 'auto', connection.hello.capabilities);
  const dest = options.outIsFilePath && options.out !== undefined ? resolve(options.out) : destinationFor(name, options.out);
  if (!options.force && exists(dest)) throw new FerryError('EEXIST', `${dest} already exists (use --force to overwrite it)`);
  const paths = partialPathsFor(dest);
  const target = { name, dest, ...paths };
  // Read from the object store itself, --streams becomes how many ranged reads run at once; else it is connections to the server.
  const parallel = options.openConnection !== undefined && (options.streams ?? 1) > 1 && !offersDirect(connection, options.direct);
  // Usually nothing is left of an earlier attempt: the part is made at once, exclusively (one
  // that is there already is an earlier attempt's, to resume).
  const freshPart = parallel ? undefined : createPart(paths.part);
  if (freshPart) return freshDownload(connection, target, freshPart, { ...options, pack }, xxh64);
  const previous = await readState(paths.state);
  const partExists = parallel ? exists(paths.part) : true;
  const info = await connection.request('stat', { name });
  const sameContent = previous?.sha256 === info.sha256 && previous.chunkSize === info.chunkSize && previous.size === info.size;
  if (previous && !sameContent && partExists)
    options.onNotice?.(`discarding the partial download of ${name} in ${paths.part}: the server's ${name} has changed since`);
  const handle = openPart(paths.part, sameContent && partExists ? 'r+' : 'w+');
  const sha256 = runningSha256(info.size);
  let finished = false;
  try {
    if (!sameContent) await writePartialState(paths.state, info);
    const fromChunk = sameContent ? await verifiedPrefix(connection, handle, info, sha256, xxh64) : 0;
    const partBytes = handle.size();
    if (partBytes > completeBytes(fromChunk, info))
      options.onNotice?.(
        `${paths.part}: kept the ${formatBytes(completeBytes(fromChunk, info))} that match the server's ${name}, discarded ${formatBytes(partBytes - completeBytes(fromChunk, info))}`,
      );
    // What the verified chunks hold, and not a byte more: a part already whole (its client was
    // stopped before the rename), or longer than the file (bytes past its end), is cut to it.
    await handle.truncate(completeBytes(fromChunk, info));
    options.onStart?.({ name, from: completeBytes(fromChunk, info), total: info.size });
    const streams = options.openConnection ? streamsFor(options.streams, connection, info, fromChunk) : 1;
    let received: Received;
    if (streams > 1) {
      // The streams land chunks out of order: the SHA-256 reads them back in order as the gaps close.
      const hashing = new InOrderHashing(handle, sha256, info, fromChunk);
      try {
        received = await receiveInParallel(
          connection,
          options.openConnection!,
          streams,
          { info, fromChunk, pack },
          hashing.writer(fileWriter(handle)),
          xxh64,
          options,
        );
      } catch (error) {
        await hashing.stop();
        throw error;
      }
      await hashing.finish();
    } else {
      const wanted = { name, sha256: info.sha256, fromChunk, pack };
      received = await receiveFile(connection, wanted, fileWriter(handle), sha256, xxh64, options);
    }
    finished = true;
    return await finishDownload(handle, { ...target, withState: true }, info, sha256, { ...received, resumed: fromChunk > 0 }, options);
  } finally {
    if (!finished) {
      sha256.drop();
      await handle.close();
    }
  }
}

/** What a download learns of its file from the server's first answer (`get`, or `getDirect`). */
type FileBeingReceived = Omit<GetResult, 'stream'>;

/**
 * Receives chunks `wanted.fromChunk` onwards: from the server's object store where it offers that
 * (`receiveDirect`), and through the server for what that did not bring (from the chunk it stopped
 * at, with a notice why), or for all of it.
 */
async function receiveFile(
  connection: ClientConnection,
  wanted: { name: string; sha256?: string; fromChunk: number; pack: Packing | undefined },
  writer: ChunkWriter,
  sha256: RunningSha256 | ((file: FileBeingReceived) => RunningSha256),
  xxh64: (bytes: Uint8Array) => bigint,
  options: DownloadOptions,
): Promise<Received> {
  if (!offersDirect(connection, options.direct)) return receiveChunks(connection, wanted, writer, sha256, xxh64, options);
  // Made once, whichever path asks first: the rest through the server goes on with the same hash.
  let made: RunningSha256 | undefined;
  const hashFor = (file: FileBeingReceived): RunningSha256 => (made ??= typeof sha256 === 'function' ? sha256(file) : sha256);
  const startedAt = Date.now();
  let outcome: Awaited<ReturnType<typeof receiveDirect>>;
  try {
    const secure = connection.fingerprint !== undefined;
    outcome = await receiveDirect(connection, wanted, writer, hashFor, { ...options, secure, readsAtOnce: options.streams });
  } catch (error) {
    // The server turned direct reads off since the handshake: all of it through the server.
    if (error instanceof FerryError && error.code === 'ECONFIG') {
      rememberUnreadable(connection, error);
      return receiveChunks(connection, wanted, writer, hashFor, xxh64, options);
    }
    throw error;
  }
  const { file, stopped } = outcome;
  // The server saw none of these bytes: its transfer log has the client's word on them (a direct
  // read that brought nothing before the server took over is not a transfer of its own).
  if (!stopped || outcome.bytesReceived > 0) {
    const report = { name: wanted.name, sha256: file.sha256, bytes: outcome.bytesReceived, durationMs: Date.now() - startedAt };
    await connection.request('getDirectEnd', { ...report, result: stopped?.code ?? 'ok' }).catch(() => undefined);
  }
  if (!stopped) return outcome;
  const what = outcome.bytesReceived > 0 ? `the rest from ${formatBytes(completeBytes(outcome.nextChunk, file))}` : 'it';
  // A store that gave nothing is taken for one this client cannot read (one that did and then failed, for a blip).
  const later = outcome.bytesReceived === 0 && rememberUnreadable(connection, stopped) ? '; the next downloads too' : '';
  options.onNotice?.(`${wanted.name}: reading ${what} through the server (${stopped.message})${later}`);
  const rest = await receiveChunks(
    connection,
    { ...wanted, sha256: file.sha256, fromChunk: outcome.nextChunk },
    writer,
    hashFor(file),
    xxh64,
    options,
  );
  return { bytesReceived: outcome.bytesReceived + rest.bytesReceived, wireBytes: outcome.wireBytes + rest.wireBytes };
}

/** Where a download goes: the remote name, the destination, and the part and state files beside it. */
interface DownloadTarget {
  name: string;
  dest: string;
  part: string;
  state: string;
}

/**
 * A download with nothing to resume: `get` at once, the file learned from its reply. A state
 * file is written beside the part only for a file of more than one chunk (a rerun resumes what
 * it describes; a one-chunk file has nothing to resume), while its chunks come.
 */
async function freshDownload(
  connection: ClientConnection,
  target: DownloadTarget,
  handle: PartFile,
  options: DownloadOptions & { pack: Packing | undefined },
  xxh64: (bytes: Uint8Array) => bigint,
): Promise<DownloadResult> {
  const { name } = target;
  let file: { sha256: RunningSha256; info: FileBeingReceived } | undefined;
  let stateWritten: Promise<void> = Promise.resolve();
  let finished = false;
  try {
    const hashFor = (get: FileBeingReceived): RunningSha256 => {
      file = { sha256: runningSha256(get.size), info: get };
      if (get.chunkCount > 1) stateWritten = writePartialState(target.state, get);
      // Handled where it is awaited, below; marked here, as chunk writes may fail first.
      stateWritten.catch(() => undefined);
      options.onStart?.({ name, from: 0, total: get.size });
      return file.sha256;
    };
    const received = await receiveFile(connection, { name, fromChunk: 0, pack: options.pack }, fileWriter(handle), hashFor, xxh64, options);
    await stateWritten;
    finished = true;
    const withState = file!.info.chunkCount > 1;
    return await finishDownload(handle, { ...target, withState }, file!.info, file!.sha256, { ...received, resumed: false }, options);
  } finally {
    if (!finished) {
      file?.sha256.drop();
      await handle.close();
      // Nothing a rerun could resume (the get was refused, or a one-chunk file was cut): no part is left.
      if (!file || file.info.chunkCount <= 1) removeIfThere(target.part);
    }
  }
}

function openPart(part: string, flags: 'r+' | 'w+'): PartFile {
  try {
    return PartFile.open(part, flags);
  } catch (error) {
    throw fromSystemError(error, part);
  }
}

/** Makes the part file, unless there is one already (undefined then). */
function createPart(part: string): PartFile | undefined {
  try {
    return PartFile.create(part);
  } catch (error) {
    throw fromSystemError(error, part);
  }
}

/** Removes a file if it is there (one unlink, where `rm` would stat first; blocking, as `exists`). */
function removeIfThere(path: string): void {
  try {
    unlinkSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw fromSystemError(error, path);
  }
}

async function writePartialState(path: string, file: { sha256: string; size: number; chunkSize: number; name: string }): Promise<void> {
  const state: PartialState = { name: file.name, sha256: file.sha256, size: file.size, chunkSize: file.chunkSize };
  try {
    await writeFile(path, JSON.stringify(state));
  } catch (error) {
    throw fromSystemError(error, path);
  }
}

/**
 * Ends a download whose chunks are all in: the SHA-256 must be the server's (else the part goes,
 * ECHECKSUM), then the part is synced, closed and renamed to its destination. Closes `handle`
 * whatever happens.
 */
async function finishDownload(
  handle: PartFile,
  target: DownloadTarget & { withState: boolean },
  info: { size: number; sha256: string },
  sha256: RunningSha256,
  received: Received & { resumed: boolean },
  options: DownloadOptions,
): Promise<DownloadResult> {
  const { name, part, state, dest, withState } = target;
  let closed = false;
  try {
    const digest = await sha256.digest();
    if (digest !== info.sha256) {
      await handle.close();
      closed = true;
      removeIfThere(part);
      if (withState) removeIfThere(state);
      throw new FerryError('ECHECKSUM', `${name}: sha256 of the received file is ${digest}, the server lists ${info.sha256}`);
    }
    await handle.datasync();
    await handle.close();
    closed = true;
    if (!options.force && exists(dest)) throw new FerryError('EEXIST', `${dest} already exists (use --force to overwrite it)`);
    renameSync(part, dest);
    if (withState) removeIfThere(state);
    const { bytesReceived, wireBytes, resumed } = received;
    return { name, path: dest, size: info.size, sha256: digest, bytesReceived, wireBytes, resumed };
  } finally {
    if (!closed) await handle.close();
  }
}

function fileWriter(handle: PartFile): ChunkWriter {
  return { write: (bytes, offset) => handle.write(bytes, offset), sync: () => handle.datasync() };
}
