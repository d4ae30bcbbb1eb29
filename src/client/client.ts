import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import type { AccountInfo, FileInfo, FileSummary, InfoResult, LoginResult, LogEntry, UploadSummary } from '../protocol/messages.js';
import { fromSystemError } from '../system-errors.js';
import { FerryError } from '../protocol/errors.js';
import { ClientConnection, type ConnectOptions } from './connection.js';
import { type ClientTls, MemoryKnownServers } from './server-trust.js';
// The transfer modules (and the worker threads, WebAssembly and codecs behind them) load when a
// transfer starts: a command that only asks (info, list, stat) does not pay for them at start-up.
import type { DownloadOptions, DownloadResult } from './download.js';
import { type RetryOptions, cancelled, withRetries } from './retry.js';
import type { ProgressListener } from './progress.js';
import type { UploadOptions, UploadResult } from './upload.js';
import type { StreamUploadOptions } from './upload-stream.js';

/**
 * How the client logs in: a password (a login on the first connection, its token on the next
 * ones), or a session token; `fingerprint`: the certificate the token was issued under, to which
 * alone it is sent (see ConnectOptions.tokenFingerprint).
 */
export type Credentials = { user: string; password: string } | { token: string; fingerprint?: string };

export interface ClientOptions extends Omit<ConnectOptions, 'token' | 'tokenFingerprint' | 'tls'> {
  /**
   * TLS, and how the server's certificate is trusted (see ClientTls); `false`: clear text. By
   * default TLS, trusting on first use for the life of this client: its reconnects must meet the
   * certificate its first connection met.
   */
  tls?: ClientTls | false;
  /** Reconnect-and-resume policy for uploads and downloads. */
  retry?: RetryOptions;
  /** Without them the connection is anonymous: every operation but `ping` gets EAUTH. */
  credentials?: Credentials;
}

/** What the caller of one transfer controls beyond the client's defaults. */
export interface TransferControl {
  /** Overrides the client's retry policy for this transfer (retries, notices). */
  retry?: Partial<RetryOptions>;
  /** Cancels the transfer: the connection is cut (what was verified stays; a rerun resumes) and it fails with ECANCELED. */
  signal?: AbortSignal;
}

/** The result of an upload that found its content already stored under its name. */
function nothingSent(stored: FileInfo): Omit<UploadResult, 'resumed'> {
  return { name: stored.name, size: stored.size, sha256: stored.sha256, bytesSent: 0, wireBytes: 0, file: stored };
}

/**
 * The bytes a transfer moved over all its attempts, from the last attempt's `bytes` and
 * `wireBytes` (what compression saved is counted for the last attempt only).
 */
function inAllAttempts(tally: TransferTally, bytes: number, wireBytes: number): { bytes: number; wireBytes: number } {
  const all = tally.total(bytes);
  return { bytes: all, wireBytes: all - (bytes - wireBytes) };
}

/** A download's result over all its attempts. */
function receivedInAll(result: DownloadResult, tally: TransferTally): DownloadResult {
  const { bytes: bytesReceived, wireBytes } = inAllAttempts(tally, result.bytesReceived, result.wireBytes);
  return { ...result, bytesReceived, wireBytes };
}

/**
 * The typed Ferry client used by the CLI, the shell, the tests and the benchmarks. Holds one
 * connection, opened on first use and opened again after it is lost.
 */
export class FerryClient {
  readonly options: ClientOptions;
  #connection: ClientConnection | undefined;
  /** A connect under way, shared by every caller meanwhile; `abort` ends it. */
  #connecting: { promise: Promise<ClientConnection>; abort: (reason: FerryError) => void } | undefined;
  /** Whether a handshake with this server has succeeded before: a later one that gets no answer is a link problem, not a wrong port. */
  #greeted = false;
  /** The session a password login opened: its token logs the next connections in. */
  #session: LoginResult | undefined;
  readonly #tls: ClientTls | false;

  constructor(options: ClientOptions) {
    this.options = options;
    this.#tls = options.tls === false ? false : { ...options.tls, knownServers: options.tls?.knownServers ?? new MemoryKnownServers() };
  }

  /** The live connection, connecting (or reconnecting) if needed; callers meanwhile share the one connect. */
  async connection(): Promise<ClientConnection> {
    if (this.#connection && !this.#connection.lost) return this.#connection;
    if (!this.#connecting) {
      this.#connection?.destroy();
      this.#connection = undefined;
      const controller = new AbortController();
      const promise = this.#open(controller.signal)
        .then((connection) => {
          this.#connection = connection;
          this.#greeted = true;
          return connection;
        })
        .finally(() => {
          this.#connecting = undefined;
        });
      this.#connecting = { promise, abort: (reason) => controller.abort(reason) };
    }
    return this.#connecting.promise;
  }

  /** Connects, says hello (with a token when there is one) and logs in with the password when the hello did not. */
  async #open(signal: AbortSignal): Promise<ClientConnection> {
    const credentials = this.options.credentials;
    const token = this.#session?.token ?? (credentials && 'token' in credentials ? credentials.token : undefined);
    const tokenFingerprint = !this.#session && credentials && 'token' in credentials ? credentials.fingerprint : undefined;
    const connect = (withToken: string | undefined): Promise<ClientConnection> =>
      ClientConnection.connect({
        ...this.options,
        tls: this.#tls,
        knownServer: this.#greeted,
        signal,
        ...(withToken === undefined ? {} : { token: withToken }),
        ...(tokenFingerprint === undefined ? {} : { tokenFingerprint }),
      });
    let connection: ClientConnection;
    try {
      connection = await connect(token);
    } catch (error) {
      // The session of an earlier login lapsed (logged out elsewhere): log in again with the password.
      if (!(error instanceof FerryError && error.code === 'EAUTH' && this.#session && credentials && 'password' in credentials))
        throw error;
      this.#session = undefined;
      connection = await connect(undefined);
    }
    if (!connection.hello.account && credentials && 'password' in credentials) {
      try {
        this.#session = await connection.request('login', { user: credentials.user, password: credentials.password });
      } catch (error) {
        connection.destroy();
        throw error;
      }
    }
    return connection;
  }

  /** The fingerprint of the certificate the server presented (checked before anything was sent); undefined in clear text or before connecting. */
  get serverFingerprint(): string | undefined {
    return this.#connection?.fingerprint;
  }

  /** Logs in (with the client's password credentials) and returns the session: its token is what `ferry login` keeps. */
  async login(): Promise<LoginResult> {
    await this.connection();
    if (!this.#session) throw new FerryError('EAUTH', 'no password to log in with');
    return this.#session;
  }

  /** Ends the login session on the server: its token no longer logs anything in. */
  async logout(): Promise<void> {
    await (await this.connection()).request('logout', {});
    this.#session = undefined;
  }

  /** Who this client is logged in as. */
  async whoami(): Promise<AccountInfo> {
    return (await this.connection()).request('whoami', {});
  }

  /**
   * Cuts the connection, and a connect under way, at once: what waits on them fails with
   * `reason` (a user's cancel). The next request connects again.
   */
  interrupt(reason: FerryError): void {
    this.#connecting?.abort(reason);
    this.#connection?.destroy(reason);
  }

  async list(prefix?: string): Promise<FileSummary[]> {
    return collect(this.listEach(prefix));
  }

  /**
   * The stored files whose names start with `prefix`, in name order, a page at a time: a page is
   * asked for only once the one before it has been gone through, so a listing of any length
   * takes the memory of one page.
   */
  listEach(prefix?: string): AsyncGenerator<FileSummary> {
    return this.#pages(prefix, async (connection, args) => {
      const page = await connection.request('list', args);
      return { entries: page.files, next: page.next };
    });
  }

  /** The server's unfinished uploads (those whose names start with `prefix`), in name order. */
  async uploads(prefix?: string): Promise<UploadSummary[]> {
    return collect(
      this.#pages(prefix, async (connection, args) => {
        const page = await connection.request('uploads', args);
        return { entries: page.uploads, next: page.next };
      }),
    );
  }

  /** The entries of a paged listing (`list`, `uploads`), page after page: each page's `next` is the following one's `after`. */
  async *#pages<T>(
    prefix: string | undefined,
    pageOf: (
      connection: ClientConnection,
      args: { prefix?: string; after?: string },
    ) => Promise<{ entries: T[]; next?: string | undefined }>,
  ): AsyncGenerator<T> {
    let after: string | undefined;
    do {
      const page = await pageOf(await this.connection(), {
        ...(prefix === undefined ? {} : { prefix }),
        ...(after === undefined ? {} : { after }),
      });
      yield* page.entries;
      after = page.next;
    } while (after !== undefined);
  }

  async stat(name: string): Promise<FileInfo> {
    return (await this.connection()).request('stat', { name });
  }

  async delete(name: string): Promise<void> {
    await (await this.connection()).request('delete', { name });
  }

  async info(): Promise<InfoResult> {
    return (await this.connection()).request('info', {});
  }

  async log(limit?: number): Promise<LogEntry[]> {
    const { entries } = await (await this.connection()).request('log', limit === undefined ? {} : { limit });
    return entries;
  }

  /** Uploads a file; after a lost connection it reconnects and resumes, per `options.retry`. */
  async upload(path: string, options: UploadOptions & TransferControl): Promise<UploadResult> {
    const { retry, signal, ...uploadOptions } = options;
    if (options.force) {
      // Replacing a file with the very same bytes sends nothing.
      const stored = await this.#storedCopyOf(path, options.name);
      if (stored) return { ...nothingSent(stored), resumed: false, skipped: true };
    }
    const [{ uploadFile }, { LocalFileReading }] = await Promise.all([import('./upload.js'), import('./local-file-reading.js')]);
    const tally = new TransferTally(options.onProgress);
    // The SHA-256 an attempt sent with putEnd. If the connection was lost before the reply came,
    // the server may have stored the file: the next attempt checks before sending anything again.
    let finishing: string | undefined;
    const reading = new LocalFileReading();
    const storedByAnEarlierAttempt = async (sha256: string | undefined): Promise<UploadResult | undefined> => {
      const stored = sha256 === undefined ? undefined : await this.#storedWith(options.name, sha256);
      return stored && { ...nothingSent(stored), resumed: true };
    };
    // More connections for parallel streams, logged in as this one is; each attempt's are its own.
    const openConnection = (): Promise<ClientConnection> => this.#open(signal ?? new AbortController().signal);
    const result = await this.#attempts(tally, { retry, signal }, async (connection, onProgress) => {
      // Only an earlier attempt's: this one's own finishing (a whole put says it before its
      // request) does not make an EEXIST of this attempt ours.
      const earlier = finishing;
      const stored = await storedByAnEarlierAttempt(earlier);
      if (stored) return stored;
      try {
        return await uploadFile(connection, path, {
          ...uploadOptions,
          onProgress,
          onFinishing: (sha256) => (finishing = sha256),
          reading,
          openConnection,
        });
      } catch (error) {
        // The server waits for a publish still under way before it answers a put of the same
        // file: if that was ours, the name exists now, with our content.
        if (error instanceof FerryError && error.code === 'EEXIST') {
          const published = await storedByAnEarlierAttempt(earlier);
          if (published) return published;
        }
        throw error;
      }
    }).finally(() => reading.forget());
    const { bytes: bytesSent, wireBytes } = inAllAttempts(tally, result.bytesSent, result.wireBytes);
    return { ...result, bytesSent, wireBytes };
  }

  /**
   * Uploads what `input` gives until its end (standard input), its size unknown until then. One
   * attempt: the input cannot be read again, so a lost connection ends it (the server keeps nothing).
   */
  async uploadStream(
    input: AsyncIterable<Uint8Array | string>,
    options: StreamUploadOptions & Pick<TransferControl, 'signal'>,
  ): Promise<UploadResult> {
    const { signal, ...uploadOptions } = options;
    const { uploadStream } = await import('./upload-stream.js');
    return this.#cancellable(signal, async () => uploadStream(await this.#connectionFor(signal), input, uploadOptions));
  }

  /** Downloads a file; after a lost connection it reconnects and resumes, per `options.retry`. */
  async download(name: string, options: DownloadOptions & TransferControl = {}): Promise<DownloadResult> {
    const { retry, signal, ...downloadOptions } = options;
    const { downloadFile } = await import('./download.js');
    const tally = new TransferTally(options.onProgress);
    // More connections for parallel streams, logged in as this one is; each attempt's are its own.
    const openConnection = (): Promise<ClientConnection> => this.#open(signal ?? new AbortController().signal);
    const result = await this.#attempts(tally, { retry, signal }, (connection, onProgress) =>
      downloadFile(connection, name, { ...downloadOptions, onProgress, openConnection }),
    );
    return receivedInAll(result, tally);
  }

  /**
   * Downloads a file into a stream (standard output), in order, every chunk checked before it is
   * written and the SHA-256 of the whole checked at the end; after a lost connection it goes on
   * from the last byte written, per `options.retry`.
   */
  async downloadToStream(
    name: string,
    stream: NodeJS.WritableStream,
    options: Pick<DownloadOptions, 'onProgress' | 'onStart' | 'compress'> & TransferControl = {},
  ): Promise<DownloadResult> {
    const { retry, signal, ...downloadOptions } = options;
    const { StreamDownload, downloadToStream } = await import('./download-stream.js');
    const tally = new TransferTally(options.onProgress);
    const state = new StreamDownload(stream);
    try {
      const result = await this.#attempts(tally, { retry, signal }, (connection, onProgress) =>
        downloadToStream(connection, name, state, { ...downloadOptions, onProgress }),
      );
      return receivedInAll(result, tally);
    } finally {
      state.drop();
    }
  }

  /**
   * The attempts of one transfer: each on a live connection (reconnecting after a lost one), with
   * its progress added up by `tally`, retried per the client's policy and `control.retry`, and
   * ended at once by `control.signal`.
   */
  #attempts<T>(
    tally: TransferTally,
    control: TransferControl,
    attempt: (connection: ClientConnection, onProgress: ProgressListener) => Promise<T>,
  ): Promise<T> {
    const { retry, signal } = control;
    return this.#cancellable(signal, () =>
      withRetries(
        () => tally.attempt(async (onProgress) => attempt(await this.#connectionFor(signal), onProgress)),
        this.#retry(retry, signal, tally),
      ),
    );
  }

  /** The connection for an attempt of a transfer that `signal` may cancel. */
  async #connectionFor(signal: AbortSignal | undefined): Promise<ClientConnection> {
    if (signal?.aborted) throw cancelled(signal);
    const connection = await this.connection();
    if (signal?.aborted) throw cancelled(signal);
    return connection;
  }

  /**
   * Runs a transfer that `signal` may cancel: the cancel cuts the connection under it, so what it
   * waits for fails at once (the server keeps what was verified, as after any lost link).
   */
  async #cancellable<T>(signal: AbortSignal | undefined, run: () => Promise<T>): Promise<T> {
    if (!signal) return run();
    const cut = (): void => this.interrupt(cancelled(signal));
    signal.addEventListener('abort', cut, { once: true });
    try {
      return await run();
    } catch (error) {
      throw signal.aborted ? cancelled(signal) : error;
    } finally {
      signal.removeEventListener('abort', cut);
    }
  }

  async close(): Promise<void> {
    const connection = this.#connection;
    this.#connection = undefined;
    await connection?.close();
  }

  /** The stored file called `name` if it is intact and has the local file's size and SHA-256 (the local file is read only when the sizes agree). */
  async #storedCopyOf(path: string, name: string): Promise<FileInfo | undefined> {
    const stored = await this.#storedFile(name);
    // A file the server found damaged is what a --force upload is for: it always goes.
    if (!stored || stored.damaged !== undefined) return undefined;
    let local: number;
    try {
      local = (await stat(path)).size;
    } catch (error) {
      throw fromSystemError(error, `local file ${path}`);
    }
    if (local !== stored.size) return undefined;
    const sha256 = createHash('sha256');
    try {
      await pipeline(createReadStream(path), sha256);
    } catch (error) {
      throw fromSystemError(error, `local file ${path}`);
    }
    return sha256.digest('hex') === stored.sha256 ? stored : undefined;
  }

  /** The stored file called `name` if its content has this SHA-256. */
  async #storedWith(name: string, sha256: string): Promise<FileInfo | undefined> {
    const file = await this.#storedFile(name);
    return file?.sha256 === sha256 ? file : undefined;
  }

  /** The stored file called `name`, or undefined if there is none. */
  async #storedFile(name: string): Promise<FileInfo | undefined> {
    try {
      return await this.stat(name);
    } catch (error) {
      if (error instanceof FerryError && error.code === 'ENOENT') return undefined;
      throw error;
    }
  }

  /** The client's retry policy with this transfer's overrides; an attempt that moved bytes restarts the count. */
  #retry(overrides: Partial<RetryOptions> | undefined, signal: AbortSignal | undefined, tally: TransferTally): RetryOptions {
    return {
      retries: 0,
      ...this.options.retry,
      ...overrides,
      madeProgress: () => tally.lastAttemptAdvanced(),
      ...(signal ? { signal } : {}),
    };
  }
}

/** Every item of an async iterable, in an array. */
async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}

/** Adds up the bytes moved over every attempt of one transfer, for progress and the result. */
class TransferTally {
  readonly #listener: ProgressListener | undefined;
  #earlier = 0;
  #current = 0;
  /** The furthest `done` any attempt reached, and whether the last failed attempt pushed it further. */
  #furthest = 0;
  #advanced = false;

  constructor(listener: ProgressListener | undefined) {
    this.#listener = listener;
  }

  async attempt<T>(run: (onProgress: ProgressListener) => Promise<T>): Promise<T> {
    this.#current = 0;
    this.#advanced = false;
    let ended = false;
    try {
      return await run((progress) => {
        if (ended) return; // a straggler from this attempt must not count against the next one
        this.#current = progress.transferred;
        if (progress.done > this.#furthest) {
          this.#furthest = progress.done;
          this.#advanced = true;
        }
        this.#listener?.({ ...progress, transferred: this.#earlier + progress.transferred });
      });
    } catch (error) {
      this.#earlier += this.#current;
      throw error;
    } finally {
      ended = true;
    }
  }

  /**
   * Whether the last attempt took the transfer further than any before it: an attempt that only
   * re-sends the same chunk before failing again (a link that always drops at one point) is not.
   */
  lastAttemptAdvanced(): boolean {
    return this.#advanced;
  }

  /** Bytes of all failed attempts plus `last`, the successful attempt's own count. */
  total(last: number): number {
    return this.#earlier + last;
  }
}
