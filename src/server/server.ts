import { once } from 'node:events';
import { type AddressInfo, type Server, type Socket, createServer as createNetServer } from 'node:net';
import { TLSSocket } from 'node:tls';
import { type Logger, pino } from 'pino';
import { Accounts, tokenIdleMs } from '../accounts/accounts.js';
import { type HttpSide, createHttpSide } from '../http/http-side.js';
import { saveableSha256Source } from '../hashing/saveable-sha256.js';
import { Sha256Thread } from '../hashing/sha256-thread.js';
import { FerryError } from '../protocol/errors.js';
import { wholePutMaxBytes } from '../protocol/limits.js';
import { fromSystemError } from '../system-errors.js';
import { isLoopback } from '../net-address.js';
import { hostPort } from '../units.js';
import { MetaStore } from '../store/meta-store.js';
import { checkS3ChunkSize, s3DefaultChunkSize } from '../object-store/s3-limits.js';
import { formatS3Location } from '../object-store/s3-location.js';
import type { S3Store } from '../object-store/s3-store.js';
import { ChunkBuffers } from './chunk-buffers.js';
import { ChunkWorkers } from './chunk-workers.js';
import { type ServerConfig, type ServerConfigInput, resolveServerConfig } from './config.js';
import { Connection } from './connection.js';
import { ConnectionRegistry } from './connection-registry.js';
import { DataDirLock } from './data-dir-lock.js';
import { DataLayout } from './data-layout.js';
import { LocalByteStore } from './byte-store.js';
import { DescriptorBudget, openFileLimit, reservedDescriptors } from './descriptor-budget.js';
import { readIntoFixedBuffer, readTlsIntoChosenMemory } from './fixed-buffer-socket.js';
import { LoginThrottle } from './login-throttle.js';
import { reconcile } from './reconcile.js';
import type { ServerServices } from './services.js';
import { type TlsIdentity, loadTlsIdentity } from './tls-identity.js';
import { UploadRegistry } from './upload-registry.js';
import { S3ByteStore } from './s3-byte-store.js';
import { SharedCatalog } from './shared-catalog.js';
import { RecentManifests } from './recent-manifests.js';
import { writeLargeBuffersAlone } from '../tls/large-writes-alone.js';

export interface FerryServer {
  readonly config: ServerConfig;
  /** The open connections: their count, and 'open' / 'close' events. */
  readonly connections: ConnectionRegistry<Connection>;
  /** The descriptors its connections and open transfer files hold, of the most it may use. */
  readonly descriptors: { readonly inUse: number; readonly limit: number };
  /** The data directory's accounts (the `ferry user` commands manage the same ones). */
  readonly accounts: Accounts;
  /** The SHA-256 fingerprint (`SHA256:...`) of the certificate it serves, once listening; undefined without TLS. */
  readonly tlsFingerprint: string | undefined;
  /** Starts listening; resolves with the bound address (use port 0 for a free port). */
  listen(port: number, host: string): Promise<AddressInfo>;
  /**
   * Starts the HTTP side (docs/http.md) once `listen` has resolved: HTTPS with the server's
   * certificate when `tls` says so (by default: TLS is on and `host` is not loopback).
   */
  listenHttp(port: number, host: string, options?: { tls?: boolean }): Promise<{ address: AddressInfo; secure: boolean }>;
  /**
   * Stops accepting, tells every client (bye ESHUTDOWN) and gives the connections
   * `shutdownGraceMs` to end (their uploads' chunks land and are recorded), cuts the rest, then
   * closes the pools and flushes LMDB.
   */
  close(): Promise<void>;
}

/** Builds a server that is not yet listening. Only the CLI listens on a fixed port and handles signals. */
export interface ServerOptions {
  logger?: Logger;
  /**
   * A data directory with no account gets `admin` with a random password at its first start: it
   * is written to `file` (0600) and handed here once, to be shown (`ferry serve` prints it).
   */
  onFirstAdmin?: (password: string, file: string) => void;
  /**
   * Keep files and unfinished uploads in this S3-compatible store (reached already: S3Store.connect)
   * instead of the data directory, which then keeps LMDB only (a cache of the store's records,
   * the accounts, the log). The server closes it. Its chunk size must suit S3's parts (checkS3ChunkSize).
   */
  s3Store?: S3Store;
}

export function createServer(input: ServerConfigInput, options: ServerOptions = {}): FerryServer {
  const s3 = options.s3Store;
  const resolved = resolveServerConfig(s3 ? { chunkSizeBytes: s3DefaultChunkSize, ...input } : input);
  if (s3) checkS3ChunkSize(resolved.chunkSizeBytes);
  const logger = options.logger ?? pino({ level: 'silent' });
  const layout = new DataLayout(resolved.dataDir, resolved.umask);
  layout.create();
  const lock = DataDirLock.acquire(layout.root);
  let store: MetaStore;
  let config: ServerConfig;
  try {
    layout.bindStore(s3 && formatS3Location(s3.settings));
    config = Object.freeze({ ...resolved, caseInsensitiveNames: resolved.caseInsensitiveNames ?? layout.ignoresCase() });
    store = new MetaStore({ path: layout.dbDir, logRetentionMs: config.logRetentionMs, maxLogEntries: config.maxLogEntries });
  } catch (error) {
    lock.release();
    throw error;
  }
  if (config.caseInsensitiveNames)
    logger.info('the data directory ignores case: names that differ only by case are one file, and are refused as such');
  // Only uploads to a store save their hash's state: no other server loads the addon on this thread.
  const whyNotNative = s3 && saveableSha256Source().whyNotNative;
  if (whyNotNative) {
    logger.warn(
      `uploads to the store save their SHA-256 state with hash-wasm, about 2 CPU-seconds per GiB more than native: ${whyNotNative}`,
    );
  }
  const maxBuffers = Math.floor(config.inflightBudgetBytes / config.chunkSizeBytes);
  /** Whole puts received or being written at once, server-wide (8 MiB at most, beside the chunk budget). */
  const wholePutBufferCount = 32;
  // A thread that dies while idle, or cannot start again, is logged; its tasks fail by themselves.
  const onWorkerError = (error: Error): void => logger.error({ err: error }, 'a worker thread failed');
  const sha256 = new Sha256Thread(onWorkerError);
  const descriptors = descriptorBudget(config, logger);
  const connections = new ConnectionRegistry<Connection>(
    { ...config, maxConnections: Math.min(config.maxConnections, Math.floor(descriptors.limit / descriptorsPerConnection)) },
    descriptors,
    logger,
  );
  const workers = new ChunkWorkers({ threads: config.workers, maxQueue: maxBuffers * 2 + 64, onError: onWorkerError });
  const recentManifests = new RecentManifests();
  const bytes = s3 ? new S3ByteStore(s3, workers, config.chunkSizeBytes, recentManifests) : new LocalByteStore(layout, workers);
  const uploads = new UploadRegistry({ store, bytes, config, sha256, logger });
  const services: ServerServices = {
    config,
    layout,
    bytes,
    catalog: s3 && new SharedCatalog(s3, store, recentManifests, (name, before, after) => uploads.storedChanged(name, before, after)),
    store,
    workers,
    buffers: new ChunkBuffers(config.chunkSizeBytes, maxBuffers),
    wholePutBuffers: new ChunkBuffers(wholePutMaxBytes(config.chunkSizeBytes), wholePutBufferCount),
    sha256,
    uploads,
    logger,
    descriptors,
    startedAt: Date.now(),
    clientCount: () => connections.count,
    gate: connections,
    accounts: new Accounts(store, {
      cost: { logN: config.passwordCostLogN, r: 8, p: 1 },
      maxConcurrentChecks: config.maxConcurrentLogins,
      adminPasswordFile: layout.adminPasswordFile,
    }),
    logins: new LoginThrottle(logger),
  };
  let tls: TlsIdentity | undefined;
  const listener: Server = createNetServer({ allowHalfOpen: false, noDelay: true, pauseOnConnect: true }, (accepted) => {
    let connection: Connection | undefined;
    // Reads land in a fixed buffer, or in the memory of the chunk being received (nextRead).
    const onData = (bytes: Uint8Array): void => connection?.received(bytes);
    const nextRead = (own: Buffer): Uint8Array => connection?.nextRead(own) ?? own;
    let socket: Socket;
    if (tls) {
      const secure = new TLSSocket(accepted, { isServer: true, secureContext: tls.context });
      // Where this Node keeps its read fields otherwise, bytes come as 'data' events (as before).
      readTlsIntoChosenMemory(secure, onData, nextRead);
      writeLargeBuffersAlone(secure);
      socket = secure;
    } else socket = readIntoFixedBuffer(accepted, onData, nextRead);
    connection = connections.admit(socket, () => new Connection(services, socket));
    connection?.log.debug('connected');
  });
  const sweeper = new SessionSweeper(services);
  // While anyone waits for a chunk buffer, connections that hold buffers and barely use them give them up.
  const budgetWatch = setInterval(
    () => {
      if (services.buffers.waiting === 0) return;
      const now = performance.now();
      for (const connection of connections.open()) connection.yieldBudgetIfSlow(now);
    },
    Math.max(100, Math.floor(config.budgetGraceMs / 5)),
  ).unref();
  let closing: Promise<void> | undefined;
  let http: HttpSide | undefined;

  return {
    config,
    connections,
    descriptors,
    accounts: services.accounts,
    get tlsFingerprint() {
      return tls?.fingerprint;
    },
    async listen(port, host) {
      await Promise.all([services.workers.ready(), sha256.started()]);
      tls = config.tls ? await serverIdentity(config, layout, logger) : undefined;
      if (!config.tls && !isLoopback(host))
        logger.warn(
          { host },
          'TLS is off (--no-tls) on an address other machines reach: passwords, session tokens and files cross the network in clear text',
        );
      if (services.catalog) await services.catalog.refresh('');
      else await recover(services);
      const password = await services.accounts.createFirstAdmin();
      if (password !== undefined) {
        const file = layout.adminPasswordFile;
        logger.warn({ file }, 'first start: made the account admin, with a random password');
        options.onFirstAdmin?.(password, file);
      }
      services.uploads.load();
      sweeper.start();
      listener.listen(port, host);
      await once(listener, 'listening').catch((error: unknown) => {
        throw listenError(error, host, port);
      });
      const address = listener.address() as AddressInfo;
      logger.info({ address: address.address, port: address.port, dataDir: layout.root }, 'ferry server listening');
      return address;
    },
    async listenHttp(port, host, options = {}) {
      if (!listener.listening) throw new Error('listenHttp needs the server listening first');
      if (http) throw new Error('the HTTP side is listening already');
      const secure = options.tls ?? (config.tls && !isLoopback(host));
      if (secure && !tls) throw new FerryError('ECONFIG', 'HTTPS needs TLS, which is off (--no-tls)');
      http = createHttpSide(services, secure ? tls?.serverOptions : undefined);
      const address = await http.listen(port, host).catch((error: unknown) => {
        throw listenError(error, host, port, '--http-port, or 0 for no HTTP side', '--http-host');
      });
      logger.info({ address: address.address, port: address.port, secure }, 'ferry HTTP side listening');
      return { address, secure };
    },
    close() {
      closing ??= (async () => {
        clearInterval(budgetWatch);
        await http?.close();
        await sweeper.stop();
        const stopped = listener.listening ? new Promise<void>((resolve) => listener.close(() => resolve())) : Promise.resolve();
        // Tell every client; their chunks in flight land and are recorded as each connection ends.
        await connections.closeAll(new FerryError('ESHUTDOWN', 'the server is shutting down'), config.shutdownGraceMs);
        await stopped;
        // Each part is closed even when another fails; the first failure is reported.
        const results = await Promise.allSettled([services.workers.close(), sha256.close()]);
        s3?.close();
        results.push(...(await Promise.allSettled([store.close()])));
        lock.release();
        const failed = results.find((result) => result.status === 'rejected');
        if (failed) throw failed.reason;
      })();
      return closing;
    },
  };
}

/** Why the server cannot listen, in the operator's words (a port in use is their choice to make, not an internal error). */
function listenError(error: unknown, host: string, port: number, portFlag = '--port', hostFlag = '--host'): FerryError {
  const where = hostPort(host, port);
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE')
    return new FerryError('ECONFIG', `${where} is in use by another program (choose another ${portFlag})`, { cause: error });
  if (code === 'EACCES')
    return new FerryError('ECONFIG', `no permission to listen on ${where} (ports below 1024 need privileges)`, { cause: error });
  if (code === 'EADDRNOTAVAIL')
    return new FerryError('ECONFIG', `${host} is not an address of this machine (${hostFlag})`, { cause: error });
  return fromSystemError(error, `listening on ${where}`);
}

/** Loads (or, at the first start, generates) the certificate; its fingerprint is logged at every start, for clients to check. */
async function serverIdentity(config: ServerConfig, layout: DataLayout, logger: Logger): Promise<TlsIdentity> {
  const identity = await loadTlsIdentity({
    certFile: config.tlsCertFile,
    keyFile: config.tlsKeyFile,
    tlsDir: layout.tlsDir,
    fileMode: layout.fileMode,
    folderMode: layout.folderMode,
  });
  if (identity.created) logger.info({ certificate: identity.certFile }, 'first start: generated a self-signed TLS certificate');
  logger.info(
    { fingerprint: identity.fingerprint, certificate: identity.certFile },
    `TLS certificate fingerprint ${identity.fingerprint} (clients see it at their first connection)`,
  );
  return identity;
}

/** What a connection is counted to need: its socket and, on average, one open transfer file. */
const descriptorsPerConnection = 2;

/**
 * The descriptors the server may use, from the process's limit: the configured connections are
 * clamped to what fits, with a warning, rather than fail with EMFILE.
 */
function descriptorBudget(config: ServerConfig, logger: Logger): DescriptorBudget {
  const limit = openFileLimit();
  const usable = limit ? Math.max(32, limit.soft - reservedDescriptors(config.workers)) : Number.MAX_SAFE_INTEGER;
  const budget = new DescriptorBudget(usable, Math.min(64, Math.floor(usable / 8)));
  if (limit && config.maxConnections * descriptorsPerConnection > usable) {
    logger.warn(
      { openFileLimit: limit.soft, maxConnections: config.maxConnections },
      `the open file limit (${limit.soft}) fits ${Math.floor(usable / descriptorsPerConnection)} connections, fewer than --max-connections ${config.maxConnections}: more are refused with EBUSY (raise it with ulimit -n)`,
    );
  }
  return budget;
}

/** Start-up recovery: LMDB and the data directory are made to agree before any client comes. */
async function recover(services: ServerServices): Promise<void> {
  const { layout, store, config, logger } = services;
  const report = await reconcile({ layout, store, sessionTtlMs: config.sessionTtlMs, repair: true });
  for (const { problem, name, detail, action } of report.findings) {
    const level = problem === 'expired-upload' ? 'info' : 'warn';
    logger[level]({ problem, name, detail }, `recovery: ${name}: ${detail}; ${action}`);
  }
  logger.info(
    { files: report.filesChecked, uploads: report.uploadsChecked, findings: report.findings.length },
    'recovery: data directory checked',
  );
}

/** Expires idle upload sessions (start-up recovery does it before the server listens) and lapsed login sessions while the server runs. */
class SessionSweeper {
  readonly #services: ServerServices;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> = Promise.resolve();

  constructor(services: ServerServices) {
    this.#services = services;
  }

  start(): void {
    this.#timer = setInterval(() => {
      this.#running = this.#sweep();
    }, this.#services.config.sessionSweepIntervalMs).unref();
  }

  /** Stops sweeping; settles once a sweep that is running has ended. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running;
  }

  async #sweep(): Promise<void> {
    const { uploads, logger, store } = this.#services;
    await this.#running;
    try {
      const expired = await uploads.expireIdle();
      for (const name of expired) logger.info({ name }, 'expired an idle unfinished upload');
      // On a shared store, uploads other servers left (or a server that died) expire by the same rule.
      const abandoned = (await this.#services.bytes.expireAbandoned?.(Date.now() - this.#services.config.sessionTtlMs)) ?? [];
      for (const name of abandoned) logger.info({ name }, 'expired an idle unfinished upload in the shared store');
      // Login sessions unused past their lapse go too (a lapsed one is refused anyway; this keeps the table small).
      const lapsed = await store.removeTokensUsedBefore(Date.now() - tokenIdleMs);
      if (lapsed > 0) logger.info({ sessions: lapsed }, 'removed lapsed login sessions');
    } catch (error) {
      logger.warn({ err: error }, 'expiring idle uploads and login sessions failed; trying again at the next sweep');
    }
  }
}
