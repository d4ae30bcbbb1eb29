import { once } from 'node:events';
import type { Command } from 'commander';
import { defaultPort } from '../protocol/limits.js';
import { serverDefaults } from '../server/defaults.js';
import type { Output } from './output.js';
import { formatBytes, formatDuration, parseCount, parseDuration, parsePort, parseSize } from './units.js';

interface ServeFlags {
  host: string;
  port: number;
  data: string;
  workers?: number;
  chunkSize?: number;
  inflightBudget?: number;
  syncEvery?: number;
  maxConnections?: number;
  maxConnectionsPerAddress?: number;
  handshakeTimeout?: number;
  idleTimeout?: number;
  stallTimeout?: number;
  maxFileSize?: number;
  maxStorage?: number;
  sessionTtl?: number;
  logLevel: string;
}

const size = (bytes: number): string => `(default: ${formatBytes(bytes)})`;
const duration = (ms: number): string => `(default: ${formatDuration(ms)})`;

/** `ferry serve`: the only place that listens on a fixed port, handles signals and owns the root logger. */
export function addServeCommand(program: Command, output: Output): void {
  const d = serverDefaults;
  program
    .command('serve')
    .description('run a Ferry server')
    .option('--host <address>', 'address to listen on', '0.0.0.0')
    .option('--port <port>', 'port to listen on', parsePort, defaultPort)
    .option('--data <dir>', 'data directory (files/, partial/, db/)', './var')
    .option('--workers <n>', 'worker threads for hashing and disk I/O (default: cores, 2 to 8)', parseCount)
    .option('--chunk-size <size>', `chunk size: the unit of hashing and resuming ${size(d.chunkSizeBytes)}`, parseSize)
    .option('--inflight-budget <size>', `chunk memory in flight across all clients ${size(d.inflightBudgetBytes)}`, parseSize)
    .option('--sync-every <size>', `bytes of an upload written between fdatasync + LMDB checkpoints ${size(d.syncEveryBytes)}`, parseSize)
    .option('--max-connections <n>', `connections at once; more are refused with EBUSY (default: ${d.maxConnections})`, parseCount)
    .option(
      '--max-connections-per-address <n>',
      `connections at once from one client network, an IPv4 /24 or IPv6 /64 (default: ${d.maxConnectionsPerAddress})`,
      parseCount,
    )
    .option(
      '--handshake-timeout <duration>',
      `close a connection that has not said hello by then ${duration(d.handshakeTimeoutMs)}`,
      parseDuration,
    )
    .option(
      '--idle-timeout <duration>',
      `close a connection with nothing in progress, silent this long ${duration(d.idleTimeoutMs)}`,
      parseDuration,
    )
    .option(
      '--stall-timeout <duration>',
      `close a connection whose transfer moves no byte this long ${duration(d.stallTimeoutMs)}`,
      parseDuration,
    )
    .option('--max-file-size <size>', `largest upload accepted (EQUOTA beyond) ${size(d.maxFileSizeBytes)}`, parseSize)
    .option('--max-storage <size>', `stored files plus unfinished uploads at most (EQUOTA beyond) ${size(d.maxStorageBytes)}`, parseSize)
    .option('--session-ttl <duration>', `remove an unfinished upload untouched this long ${duration(d.sessionTtlMs)}`, parseDuration)
    .option('--log-level <level>', 'pino log level (silent, error, warn, info, debug)', 'info')
    .addHelpText(
      'after',
      [
        '',
        'At start-up the data directory is reconciled with its metadata (ferry fsck shows the same without changing anything):',
        '  expired and orphan partial uploads are removed, a verified upload published but not recorded is recorded,',
        '  files with no record are moved to <data>/lost+found/<time>-<n>/, records whose file is gone are removed,',
        '  and a file whose size no longer matches its record is flagged damaged: listed, never served (ECORRUPT).',
        'SIGTERM or SIGINT: stop accepting, tell clients (bye ESHUTDOWN), record what has landed, exit; a second signal exits at once.',
      ].join('\n'),
    )
    .action(async (flags: ServeFlags) => {
      // Loaded here, not at start-up: client commands do not pay for the server's modules.
      const [{ pino }, { createServer }, { ignoreStrayLmdbCommitFailures }] = await Promise.all([
        import('pino'),
        import('../server/server.js'),
        import('../store/meta-store.js'),
      ]);
      // A process-wide choice, made here at the process's entry and not by the library (lmdb-js issue 368).
      ignoreStrayLmdbCommitFailures();
      const logger = pino({ level: flags.logLevel }, pino.destination(1));
      const given = {
        workers: flags.workers,
        chunkSizeBytes: flags.chunkSize,
        inflightBudgetBytes: flags.inflightBudget,
        syncEveryBytes: flags.syncEvery,
        maxConnections: flags.maxConnections,
        maxConnectionsPerAddress: flags.maxConnectionsPerAddress,
        handshakeTimeoutMs: flags.handshakeTimeout,
        idleTimeoutMs: flags.idleTimeout,
        stallTimeoutMs: flags.stallTimeout,
        maxFileSizeBytes: flags.maxFileSize,
        maxStorageBytes: flags.maxStorage,
        sessionTtlMs: flags.sessionTtl,
      };
      const settings = Object.fromEntries(Object.entries(given).filter(([, value]) => value !== undefined));
      const server = createServer({ dataDir: flags.data, ...settings }, { logger });
      const address = await server.listen(flags.port, flags.host);
      output.err(`ferry: serving ${server.config.dataDir} on ${address.address}:${address.port}`);
      const signal = await Promise.race([once(process, 'SIGINT'), once(process, 'SIGTERM')]);
      logger.info({ signal }, 'shutting down');
      // A second signal while closing exits at once.
      const forced = (): void => process.exit(130);
      process.once('SIGINT', forced).once('SIGTERM', forced);
      await server.close();
      output.err('ferry: server stopped');
    });
}
