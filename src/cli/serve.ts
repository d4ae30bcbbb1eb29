import { once } from 'node:events';
import type { Command } from 'commander';
import type { Output } from './output.js';
import { parseCount, parsePort, parseSize } from './units.js';

interface ServeFlags {
  host: string;
  port: number;
  data: string;
  workers?: number;
  chunkSize: number;
  inflightBudget: number;
  syncEvery: number;
  logLevel: string;
}

/** `ferry serve`: the only place that listens on a fixed port, handles signals and owns the root logger. */
export function addServeCommand(program: Command, output: Output): void {
  program
    .command('serve')
    .description('run a Ferry server')
    .option('--host <address>', 'address to listen on', '0.0.0.0')
    .option('--port <port>', 'port to listen on', parsePort, 8888)
    .option('--data <dir>', 'data directory (files/, partial/, db/)', './var')
    .option('--workers <n>', 'worker threads for hashing and disk I/O (default: cores, 2 to 8)', parseCount)
    .option('--chunk-size <size>', 'chunk size: the unit of hashing and resuming', parseSize, 4 * 1024 * 1024)
    .option('--inflight-budget <size>', 'chunk memory in flight across all clients', parseSize, 64 * 1024 * 1024)
    .option('--sync-every <size>', 'bytes of an upload written between fdatasync + LMDB checkpoints', parseSize, 8 * 1024 * 1024)
    .option('--log-level <level>', 'pino log level (silent, error, warn, info, debug)', 'info')
    .action(async (flags: ServeFlags) => {
      // Loaded here, not at start-up: client commands do not pay for the server's modules.
      const [{ pino }, { createServer }] = await Promise.all([import('pino'), import('../server/server.js')]);
      const logger = pino({ level: flags.logLevel }, pino.destination(1));
      const server = createServer(
        {
          dataDir: flags.data,
          chunkSizeBytes: flags.chunkSize,
          inflightBudgetBytes: flags.inflightBudget,
          syncEveryBytes: flags.syncEvery,
          ...(flags.workers === undefined ? {} : { workers: flags.workers }),
        },
        { logger },
      );
      const address = await server.listen(flags.port, flags.host);
      output.err(`ferry: serving ${server.config.dataDir} on ${address.address}:${address.port}`);
      const signal = await Promise.race([once(process, 'SIGINT'), once(process, 'SIGTERM')]);
      logger.info({ signal }, 'shutting down');
      // A second signal while closing exits at once.
      const forced = (): void => process.exit(130);
      process.once('SIGINT', forced).once('SIGTERM', forced);
      await server.close();
    });
}
