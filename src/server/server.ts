import { type AddressInfo, type Server, createServer as createNetServer } from 'node:net';
import { once } from 'node:events';
import { type Logger, pino } from 'pino';
import { Sha256Thread } from '../hashing/sha256-thread.js';
import { MetaStore } from '../store/meta-store.js';
import { encodeControl } from '../protocol/encoder.js';
import { FerryError, errorFields } from '../protocol/errors.js';
import { ChunkBuffers } from './chunk-buffers.js';
import { ChunkWorkers } from './chunk-workers.js';
import { type ServerConfig, type ServerConfigInput, resolveServerConfig } from './config.js';
import { Connection } from './connection.js';
import { readIntoFixedBuffer } from './fixed-buffer-socket.js';
import { DataDirLock } from './data-dir-lock.js';
import { DataLayout } from './data-layout.js';
import { reconcile } from './reconcile.js';
import type { ServerServices } from './services.js';

export interface FerryServer {
  readonly config: ServerConfig;
  /** Starts listening; resolves with the bound address (use port 0 for a free port). */
  listen(port: number, host: string): Promise<AddressInfo>;
  /**
   * Stops accepting, tells every client (bye ESHUTDOWN) and gives the connections
   * `shutdownGraceMs` to end (their uploads' chunks land and are recorded), cuts the rest, then
   * closes the pools and flushes LMDB.
   */
  close(): Promise<void>;
}

/** Builds a server that is not yet listening. Only the CLI listens on a fixed port and handles signals. */
export function createServer(input: ServerConfigInput, options: { logger?: Logger } = {}): FerryServer {
  const config = resolveServerConfig(input);
  const layout = new DataLayout(config.dataDir);
  layout.create();
  const lock = DataDirLock.acquire(layout.root);
  let store: MetaStore;
  try {
    store = new MetaStore({ path: layout.dbDir });
  } catch (error) {
    lock.release();
    throw error;
  }
  const maxBuffers = Math.floor(config.inflightBudgetBytes / config.chunkSizeBytes);
  const services: ServerServices = {
    config,
    layout,
    store,
    workers: new ChunkWorkers({ threads: config.workers, maxQueue: maxBuffers * 2 + 64 }),
    buffers: new ChunkBuffers(config.chunkSizeBytes, maxBuffers),
    sha256: new Sha256Thread(),
    sessionHashes: new Map(),
    logger: options.logger ?? pino({ level: 'silent' }),
    activeUploads: new Map(),
    quotaReservations: new Map(),
    startedAt: Date.now(),
    clients: 0,
  };
  const connections = new Set<Connection>();
  const perIp = new Map<string, number>();
  const listener: Server = createNetServer({ allowHalfOpen: false, noDelay: true, pauseOnConnect: true }, (accepted) => {
    let connection: Connection | undefined;
    const socket = readIntoFixedBuffer(accepted, (bytes) => connection?.received(bytes));
    const ip = socket.remoteAddress ?? '?';
    const refusal = refuseOverLimit(config, connections.size, perIp.get(ip) ?? 0, ip);
    if (refusal) {
      socket.on('error', () => {});
      socket.end(encodeControl({ event: 'bye', ...errorFields(refusal) }));
      socket.destroySoon();
      services.logger.warn({ client: ip }, refusal.message);
      return;
    }
    perIp.set(ip, (perIp.get(ip) ?? 0) + 1);
    connection = new Connection(services, socket);
    connections.add(connection);
    services.clients += 1;
    connection.log.debug('connected');
    const opened = connection;
    void opened.closed.then(() => {
      connections.delete(opened);
      const left = (perIp.get(ip) ?? 1) - 1;
      if (left > 0) perIp.set(ip, left);
      else perIp.delete(ip);
      services.clients -= 1;
      connection.log.debug('disconnected');
    });
  });
  let closing: Promise<void> | undefined;

  return {
    config,
    async listen(port, host) {
      await recover(services);
      listener.listen(port, host);
      await once(listener, 'listening');
      const address = listener.address() as AddressInfo;
      services.logger.info({ address: address.address, port: address.port, dataDir: layout.root }, 'ferry server listening');
      return address;
    },
    close() {
      closing ??= (async () => {
        const stopped = new Promise<void>((resolve) => listener.close(() => resolve()));
        // Tell every client; their chunks in flight land and are recorded as each connection ends.
        for (const connection of connections) connection.closeWith(new FerryError('ESHUTDOWN', 'the server is shutting down'));
        const allClosed = Promise.all([...connections].map((connection) => connection.closed));
        let timer: NodeJS.Timeout | undefined;
        const graceOver = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, config.shutdownGraceMs);
        });
        await Promise.race([allClosed, graceOver]);
        clearTimeout(timer);
        for (const connection of connections) connection.socket.destroy();
        await allClosed;
        if (listener.listening) await stopped;
        try {
          await services.workers.close();
          await services.sha256.close();
          await services.store.close();
        } finally {
          lock.release();
        }
      })();
      return closing;
    },
  };
}

/** Why a new connection is refused (EBUSY), or undefined when it is within the limits. */
function refuseOverLimit(config: ServerConfig, open: number, openFromIp: number, ip: string): FerryError | undefined {
  if (open >= config.maxConnections) return new FerryError('EBUSY', `the server is at its limit of ${config.maxConnections} connections; try again later`);
  if (openFromIp >= config.maxConnectionsPerIp) {
    return new FerryError('EBUSY', `${ip} already has ${config.maxConnectionsPerIp} connections open, the most one address may have`);
  }
  return undefined;
}

/** Start-up recovery: LMDB and the data directory are made to agree before any client comes. */
async function recover(services: ServerServices): Promise<void> {
  const { layout, store, config, logger } = services;
  const report = await reconcile({ layout, store, sessionTtlMs: config.sessionTtlMs, repair: true });
  for (const { problem, name, detail, action } of report.findings) {
    const level = problem === 'expired-upload' ? 'info' : 'warn';
    logger[level]({ problem, name, detail }, `recovery: ${name}: ${detail}; ${action}`);
  }
  logger.info({ files: report.filesChecked, uploads: report.uploadsChecked, findings: report.findings.length }, 'recovery: data directory checked');
}
