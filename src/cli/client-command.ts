import { type Command, InvalidArgumentError, Option } from 'commander';
import { readFile } from 'node:fs/promises';
import type { ClientOptions, FerryClient } from '../client/client.js';
import { compressChoices } from '../compression/choices.js';
import type { ClientTls } from '../client/server-trust.js';
import { defaultClientStallTimeoutMs, defaultTransferRetries, maxStreams } from '../client/defaults.js';
import { FerryError } from '../protocol/errors.js';
import { hostPort } from '../units.js';
import type { Output } from './output.js';
import { defaultServer, formatDuration, parseCount, parseDuration, parseServerAddress } from './units.js';

function parseStreams(text: string): number {
  const streams = parseCount(text);
  if (streams < 1 || streams > maxStreams) throw new InvalidArgumentError(`--streams takes 1 to ${maxStreams}: ${text}`);
  return streams;
}

/** What every client command shares: how it connects, logs in and prints. */

export interface CliContext {
  output: Output;
  env: NodeJS.ProcessEnv;
  /**
   * In the interactive shell: the client every command shares (and the server it talks to), and
   * the signal with which the shell cancels the running command (Ctrl-C).
   */
  shell?: { client: FerryClient; onChange(): void; signal: AbortSignal };
}

/** How a client command reaches its server: the flags every one of them takes (and `ferry shell`). */
export interface ConnectionFlags {
  server: string;
  /** A login session's token (else FERRY_TOKEN, FERRY_USER + FERRY_PASSWORD, or what `ferry login` saved). */
  token?: string;
  /** `--no-tls` sets it false: clear text. */
  tls?: boolean;
  /** Accept only the certificate with this fingerprint. */
  fingerprint?: string;
  /** Verify the certificate against this CA's (PEM file) instead of trusting on first use. */
  ca?: string;
  /** With --no-tls: send credentials in clear text to another machine. */
  insecure?: boolean;
}

export interface ClientFlags extends ConnectionFlags {
  json?: boolean;
}

const stallTimeoutHelp = `reconnect (and resume) when no byte moves this long (default: ${formatDuration(defaultClientStallTimeoutMs)})`;

/** Adds the options every client command takes: --server, --token, --insecure and --json. */
export function clientCommand(program: Command, context: CliContext, spec: string, description: string): Command {
  const command = program.command(spec).description(description);
  if (!context.shell) addConnectionOptions(command, context.env);
  return command.option('--json', 'print a machine-readable result on stdout');
}

/** --server, --token and how the server is trusted: --no-tls, --fingerprint, --ca, --insecure. */
export function addConnectionOptions(command: Command, env: NodeJS.ProcessEnv): Command {
  return command
    .addOption(new Option('--server <host:port>', 'server to talk to').default(env['FERRY_SERVER'] ?? defaultServer).env('FERRY_SERVER'))
    .option('--token <token>', 'log in with this session token (default: $FERRY_TOKEN, then what ferry login saved)')
    .option('--fingerprint <SHA256:...>', 'accept only the server certificate with this fingerprint (as the server prints it at start)')
    .option('--ca <file>', "verify the server's certificate against this CA certificate (PEM), for real certificates")
    .option('--no-tls', 'talk in clear text to a server started with --no-tls (also: FERRY_NO_TLS=1)')
    .option('--insecure', 'with --no-tls: send credentials to another machine in clear text anyway');
}

/** How the client trusts the server, from the flags: clear text, a CA, a pinned fingerprint, or what known_servers remembers. */
export async function clientTlsFor(context: CliContext, flags: ConnectionFlags): Promise<ClientTls | false> {
  const noTls = context.env['FERRY_NO_TLS'];
  if (flags.tls === false || (noTls !== undefined && noTls !== '' && noTls !== '0')) {
    if (flags.fingerprint !== undefined || flags.ca !== undefined)
      throw new FerryError('EUSAGE', '--fingerprint and --ca check a certificate: they cannot go with --no-tls');
    return false;
  }
  if (flags.fingerprint !== undefined) {
    const { parseFingerprint } = await import('../tls/fingerprint.js'); // node:crypto, for the commands that connect only
    const fingerprint = parseFingerprint(flags.fingerprint);
    if (!fingerprint)
      throw new FerryError(
        'EUSAGE',
        `--fingerprint: not a SHA-256 fingerprint: ${flags.fingerprint} (expected SHA256:<43 characters of base64>)`,
      );
    return { fingerprint };
  }
  if (flags.ca !== undefined) {
    try {
      return { ca: await readFile(flags.ca) };
    } catch (error) {
      throw new FerryError('EUSAGE', `--ca: cannot read ${flags.ca} (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
    }
  }
  const { output } = context;
  const { KnownServersFile } = await import('./known-servers.js');
  return {
    knownServers: new KnownServersFile(context.env, ({ address, fingerprint }, file) =>
      output.err(`ferry: first connection to ${address}: its certificate ${fingerprint} is trusted from now on (kept in ${file})`),
    ),
  };
}

/** Everything a FerryClient for a one-shot command (or the shell) needs from the flags and environment. */
export async function clientOptionsFor(context: CliContext, flags: ConnectionFlags): Promise<ClientOptions> {
  const address = serverAddressOption(flags.server);
  const tls = await clientTlsFor(context, flags);
  const { credentialsFor } = await import('./credentials.js');
  const credentials = await credentialsFor(context.env, address, { ...flags, clearText: tls === false });
  return { ...address, tls, ...(credentials ? { credentials } : {}) };
}

/** A client command that moves a file: it also takes --retries and --stall-timeout. */
export function transferCommand(program: Command, context: CliContext, spec: string, description: string): Command {
  return clientCommand(program, context, spec, description)
    .option(
      '--retries <n>',
      'reconnect and resume up to this many times in a row without progress (waits 0.5 s doubling to 10 s)',
      parseCount,
      defaultTransferRetries,
    )
    .option('--stall-timeout <duration>', stallTimeoutHelp, parseDuration)
    .option(
      '--streams <n>',
      `send or fetch one big file over N connections at once (1 to ${maxStreams}; default 1); reading from a server's object store, N ranged reads at once (at least 4)`,
      parseStreams,
    )
    .addOption(
      new Option(
        '--compress <how>',
        'compress chunks on the wire: auto (only when the link is well below the compressor), off, or always with one codec',
      )
        .choices(compressChoices)
        .default('auto'),
    );
}

/** The --server value as host and port; a malformed one is a usage error (exit 2) that says why. */
export function serverAddressOption(text: string): { host: string; port: number } {
  try {
    return parseServerAddress(text);
  } catch (error) {
    throw new FerryError('EUSAGE', `--server: ${(error as Error).message}`);
  }
}

/**
 * Runs `use` with a client: the shell's shared one, or a fresh one for a one-shot command,
 * closed afterwards.
 */
export async function withClient<T>(
  context: CliContext,
  flags: ClientFlags & { stallTimeout?: number },
  use: (client: FerryClient) => Promise<T>,
): Promise<T> {
  if (context.shell) return use(context.shell.client);
  const [options, { FerryClient }] = await Promise.all([clientOptionsFor(context, flags), import('../client/client.js')]);
  const client = new FerryClient({ ...options, ...(flags.stallTimeout === undefined ? {} : { stallTimeoutMs: flags.stallTimeout }) });
  try {
    return await use(client);
  } catch (error) {
    throw withLoginHint(error, hostPort(options.host, options.port), options.credentials !== undefined);
  } finally {
    await client.close().catch(() => undefined); // the command's outcome is decided; a failed hang-up changes nothing
  }
}

/** EAUTH names what to do: log in (none given), or log in again (a token that lapsed). A failed password login says so itself. */
export function withLoginHint(error: unknown, server: string, hadCredentials: boolean): unknown {
  if (!(error instanceof FerryError) || error.code !== 'EAUTH' || /^login failed/u.test(error.message)) return error;
  const what = hadCredentials ? `${error.message}` : `not logged in to ${server}`;
  return new FerryError('EAUTH', `${what}: run ferry login --server ${server}`, { cause: error });
}
