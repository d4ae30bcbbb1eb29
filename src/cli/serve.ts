import { once } from 'node:events';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { isLoopback } from '../net-address.js';
import { defaultHttpPort, defaultPort } from '../protocol/limits.js';
import { serverDefaults } from '../server/defaults.js';
import type { Output } from './output.js';
import { formatS3Location } from '../object-store/s3-location.js';
import { s3StoreOf } from './serve-store.js';
import { formatBytes, formatDuration, hostPort, parseCount, parseDuration, parsePort, parseSize } from './units.js';

const d = serverDefaults;
const size = (bytes: number): string => `(default: ${formatBytes(bytes)})`;
const duration = (ms: number): string => `(default: ${formatDuration(ms)})`;
const count = (value: number): string => `(default: ${value})`;

/** One server setting as a flag: its spelling, the config key it sets, its parser and its help (with the default). */
interface SettingFlag {
  flag: string;
  key: string;
  parse: (text: string) => number;
  help: string;
}

const settingFlags: SettingFlag[] = [
  { flag: '--workers <n>', key: 'workers', parse: parseCount, help: 'worker threads for hashing and disk I/O (default: cores, 2 to 8)' },
  {
    flag: '--chunk-size <size>',
    key: 'chunkSizeBytes',
    parse: parseSize,
    help: `chunk size: the unit of hashing and resuming ${size(d.chunkSizeBytes)}`,
  },
  {
    flag: '--inflight-budget <size>',
    key: 'inflightBudgetBytes',
    parse: parseSize,
    help: `chunk memory in flight across all clients ${size(d.inflightBudgetBytes)}`,
  },
  {
    flag: '--sync-every <size>',
    key: 'syncEveryBytes',
    parse: parseSize,
    help: `bytes of an upload written between fdatasync + LMDB checkpoints ${size(d.syncEveryBytes)}`,
  },
  {
    flag: '--max-connections <n>',
    key: 'maxConnections',
    parse: parseCount,
    help: `established connections at once; more are refused with EBUSY ${count(d.maxConnections)}`,
  },
  {
    flag: '--max-connections-per-address <n>',
    key: 'maxConnectionsPerAddress',
    parse: parseCount,
    help: `established connections at once from one client network, an IPv4 /24 or IPv6 /64 ${count(d.maxConnectionsPerAddress)}`,
  },
  {
    flag: '--max-unauthenticated <n>',
    key: 'maxUnauthenticated',
    parse: parseCount,
    help: `connections still in their handshake, in all; a newcomer closes the oldest of the network holding the most ${count(d.maxUnauthenticated)}`,
  },
  {
    flag: '--max-unauthenticated-per-address <n>',
    key: 'maxUnauthenticatedPerAddress',
    parse: parseCount,
    help: `connections still in their handshake from one client network; a newcomer closes its oldest ${count(d.maxUnauthenticatedPerAddress)}`,
  },
  {
    flag: '--max-concurrent-logins <n>',
    key: 'maxConcurrentLogins',
    parse: parseCount,
    help: `password checks (scrypt) at once; more logins wait, so a login storm cannot stall transfers ${count(d.maxConcurrentLogins)}`,
  },
  {
    flag: '--handshake-timeout <duration>',
    key: 'handshakeTimeoutMs',
    parse: parseDuration,
    help: `close a connection that has not logged in by then ${duration(d.handshakeTimeoutMs)}`,
  },
  {
    flag: '--idle-timeout <duration>',
    key: 'idleTimeoutMs',
    parse: parseDuration,
    help: `close a connection with nothing in progress, silent this long ${duration(d.idleTimeoutMs)}`,
  },
  {
    flag: '--stall-timeout <duration>',
    key: 'stallTimeoutMs',
    parse: parseDuration,
    help: `close a connection whose transfer moves no byte this long ${duration(d.stallTimeoutMs)}`,
  },
  {
    flag: '--max-file-size <size>',
    key: 'maxFileSizeBytes',
    parse: parseSize,
    help: `largest upload accepted (EQUOTA beyond) ${size(d.maxFileSizeBytes)}`,
  },
  {
    flag: '--max-storage <size>',
    key: 'maxStorageBytes',
    parse: parseSize,
    help: `stored files plus what unfinished uploads received (and a 64 MiB reserve each) at most (EQUOTA beyond) ${size(d.maxStorageBytes)}`,
  },
  {
    flag: '--session-ttl <duration>',
    key: 'sessionTtlMs',
    parse: parseDuration,
    help: `remove an unfinished upload untouched this long ${duration(d.sessionTtlMs)}`,
  },
  { flag: '--max-sessions <n>', key: 'maxSessions', parse: parseCount, help: `unfinished uploads kept at once ${count(d.maxSessions)}` },
  {
    flag: '--max-sessions-per-client <n>',
    key: 'maxSessionsPerOwner',
    parse: parseCount,
    help: `unfinished uploads one account may keep ${count(d.maxSessionsPerOwner)}`,
  },
  {
    flag: '--log-retention <duration>',
    key: 'logRetentionMs',
    parse: parseDuration,
    help: `keep transfer log entries this long ${duration(d.logRetentionMs)}`,
  },
  {
    flag: '--umask <octal>',
    key: 'umask',
    parse: parseOctal,
    help: `permission bits taken away from the data directory's folders (0777) and files (0666) (default: ${d.umask.toString(8).padStart(3, '0')}: owner only)`,
  },
];

function parseOctal(text: string): number {
  if (!/^[0-7]{1,4}$/u.test(text.trim())) throw new InvalidArgumentError(`not an octal mode: ${text} (e.g. 077, 027)`);
  return Number.parseInt(text, 8);
}

/** pino-pretty on stdout: `[2026-12-02 13:30:05 +0100] INFO: upload big.iso ... {"client":...}`, one line per event. */
async function prettyConsole(): Promise<NodeJS.WritableStream> {
  const { default: pretty } = await import('pino-pretty');
  return pretty({ destination: 1, sync: true, translateTime: 'SYS:yyyy-mm-dd HH:MM:ss o', ignore: 'pid,hostname', singleLine: true });
}

/** `ferry serve`: the only place that listens on a fixed port, handles signals and owns the root logger. */
export function addServeCommand(program: Command, output: Output): void {
  const command = program
    .command('serve')
    .description('run a Ferry server')
    .option(
      '--host <address>',
      'address to listen on (another than loopback exposes every file to the network: see the README)',
      '127.0.0.1',
    )
    .option('--port <port>', 'port to listen on', parsePort, defaultPort)
    .option('--data <dir>', 'data directory (files/, partial/, db/)', './var')
    .option(
      '--store <location>',
      'keep files and unfinished uploads in an S3-compatible store, s3://BUCKET[/PREFIX], shared by several servers (credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE) (default: the data directory)',
    )
    .option('--s3-endpoint <url>', "the S3 store's URL, for a store other than AWS (e.g. http://127.0.0.1:7480; path-style addressing)")
    .option('--s3-region <region>', "the S3 store's region (default: AWS_REGION, else us-east-1)")
    .option(
      '--s3-direct-reads [url]',
      "let clients read downloads from the S3 store themselves, by URLs signed for each file that lapse in 15 minutes, at the store's endpoint or at URL when clients reach it elsewhere (clients that cannot reach it read through this server)",
    )
    .option(
      '--tls-cert <file>',
      'serve this certificate (PEM), with --tls-key (default: <data>/tls/cert.pem, generated at the first start)',
    )
    .option('--tls-key <file>', "the certificate's private key (PEM) (default: <data>/tls/key.pem, 0600)")
    .option('--no-tls', 'serve in clear text; a warning when --host is not loopback, and clients need --no-tls too (default: TLS)')
    .option(
      '--http-port <port>',
      'port of the HTTP side (web page, JSON API, downloads, tus uploads; docs/http.md); 0: none',
      parsePort,
      defaultHttpPort,
    )
    .option(
      '--http-host <address>',
      'address of the HTTP side; another than loopback serves HTTPS with the same certificate (unless --no-tls)',
      '127.0.0.1',
    );
  for (const { flag, parse, help } of settingFlags) command.option(flag, help, parse);
  command
    .option('--log-level <level>', 'pino log level (silent, error, warn, info, debug)', 'info')
    .addOption(
      new Option('--log-format <format>', 'pretty: one readable line per event, local time; json: one JSON object per line').choices([
        'pretty',
        'json',
      ]),
    )
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
    .action(
      async (
        flags: Record<string, unknown> & {
          host: string;
          port: number;
          data: string;
          logLevel: string;
          logFormat?: string;
          tls: boolean;
          tlsCert?: string;
          tlsKey?: string;
          httpPort: number;
          httpHost: string;
          store?: string;
          s3Endpoint?: string;
          s3Region?: string;
          s3DirectReads?: string | true;
        },
      ) => {
        const s3Store = await s3StoreOf({ ...flags, chunkSize: flags['chunkSize'] as number | undefined });
        // Loaded here, not at start-up: client commands do not pay for the server's modules.
        const [{ pino }, { createServer }, { ignoreStrayLmdbCommitFailures }, { raiseOpenFileLimit }] = await Promise.all([
          import('pino'),
          import('../server/server.js'),
          import('../store/meta-store.js'),
          import('../server/descriptor-budget.js'),
        ]);
        // As `ulimit -n` to the hard limit would: connections and open files need descriptors.
        raiseOpenFileLimit();
        // The process's umask is the one --umask names (owner only by default), for everything the
        // server creates: its files, folders, lock file and LMDB's files alike.
        process.umask((flags['umask'] as number | undefined) ?? serverDefaults.umask);
        // A process-wide choice, made here at the process's entry and not by the library (lmdb-js issue 368).
        ignoreStrayLmdbCommitFailures();
        // Readable lines for a person at a terminal; JSON lines for a pipe or a file (log collectors).
        const format = flags.logFormat ?? (process.stdout.isTTY ? 'pretty' : 'json');
        const logger = pino({ level: flags.logLevel }, format === 'pretty' ? await prettyConsole() : pino.destination(1));
        const settings: Record<string, unknown> = {};
        for (const { flag, key } of settingFlags) {
          const value = flags[camelCase(flag)];
          if (value !== undefined) settings[key] = value;
        }
        let firstAdmin: { password: string; file: string } | undefined;
        const server = createServer(
          {
            dataDir: flags.data,
            tls: flags.tls,
            ...(flags.tlsCert === undefined ? {} : { tlsCertFile: flags.tlsCert }),
            ...(flags.tlsKey === undefined ? {} : { tlsKeyFile: flags.tlsKey }),
            ...settings,
          },
          { logger, onFirstAdmin: (password, file) => (firstAdmin = { password, file }), ...(s3Store ? { s3Store } : {}) },
        );
        const address = await server.listen(flags.port, flags.host).catch(async (error: unknown) => {
          // Nothing was served: let go of the data directory (and its lock) before saying why.
          await server.close().catch(() => undefined); // the listen failure is the one worth reporting
          throw error;
        });
        const http =
          flags.httpPort === 0
            ? undefined
            : await server.listenHttp(flags.httpPort, flags.httpHost).catch(async (error: unknown) => {
                await server.close().catch(() => undefined);
                throw error;
              });
        const served = hostPort(address.address, address.port);
        output.err(
          `ferry: serving ${s3Store ? `${formatS3Location(s3Store.settings)} (its records cached in ${server.config.dataDir})` : server.config.dataDir} on ${served}${server.tlsFingerprint ? ' over TLS' : ' in clear text (--no-tls)'}`,
        );
        if (server.tlsFingerprint)
          output.err(`ferry: certificate fingerprint ${server.tlsFingerprint} (a client shows it at its first connection: compare)`);
        if (http) {
          const scheme = http.secure ? 'https' : 'http';
          output.err(
            `ferry: HTTP side (web page, API, downloads, tus uploads) at ${scheme}://${hostPort(http.address.address, http.address.port)}/ (docs/http.md)`,
          );
        }
        if (firstAdmin) {
          // Shown once: the first start of a data directory made its first account.
          output.err(
            `ferry: first start: made the account admin, password ${firstAdmin.password} (kept in ${firstAdmin.file} until changed)`,
          );
          output.err(`ferry: log in with: ferry login --server ${served} --user admin`);
        }
        if (!server.tlsFingerprint && !isLoopback(flags.host)) {
          output.err(
            `ferry: warning: listening on ${flags.host}, not only this machine, without TLS: passwords, session tokens and files cross the network in clear text`,
          );
        }
        const signal = await Promise.race([once(process, 'SIGINT'), once(process, 'SIGTERM')]);
        logger.info({ signal }, 'shutting down');
        // A second signal while closing exits at once.
        const forced = (): void => process.exit(130);
        process.once('SIGINT', forced).once('SIGTERM', forced);
        await server.close();
        output.err('ferry: server stopped');
      },
    );
}

/** The property commander stores a flag's value under: `--max-file-size <size>` -> maxFileSize. */
function camelCase(flag: string): string {
  return flag
    .slice(2)
    .split(' ')[0]!
    .replace(/-([a-z])/gu, (_, letter: string) => letter.toUpperCase());
}
