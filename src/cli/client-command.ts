import { type Command, Option } from 'commander';
import { FerryClient } from '../client/client.js';
import { defaultClientStallTimeoutMs } from '../client/connection.js';
import { defaultTransferRetries } from '../client/retry.js';
import { FerryError } from '../protocol/errors.js';
import { hostPort } from '../units.js';
import { credentialsFor } from './credentials.js';
import type { Output } from './output.js';
import { defaultServer, formatDuration, parseCount, parseDuration, parseServerAddress } from './units.js';

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

export interface ClientFlags {
  server: string;
  json?: boolean;
  /** A login session's token (else FERRY_TOKEN, FERRY_USER + FERRY_PASSWORD, or what `ferry login` saved). */
  token?: string;
  /** Send credentials in clear text to another machine (there is no TLS yet). */
  insecure?: boolean;
}

const stallTimeoutHelp = `reconnect (and resume) when no byte moves this long (default: ${formatDuration(defaultClientStallTimeoutMs)})`;

/** Adds the options every client command takes: --server, --token, --insecure and --json. */
export function clientCommand(program: Command, context: CliContext, spec: string, description: string): Command {
  const command = program.command(spec).description(description);
  if (!context.shell) {
    command.addOption(
      new Option('--server <host:port>', 'server to talk to').default(context.env['FERRY_SERVER'] ?? defaultServer).env('FERRY_SERVER'),
    );
    command.option('--token <token>', 'log in with this session token (default: $FERRY_TOKEN, then what ferry login saved)');
    command.option('--insecure', 'send credentials to another machine in clear text (this version has no TLS yet)');
  }
  return command.option('--json', 'print a machine-readable result on stdout');
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
    .option('--stall-timeout <duration>', stallTimeoutHelp, parseDuration);
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
  const address = serverAddressOption(flags.server);
  const credentials = await credentialsFor(context.env, address, flags);
  const client = new FerryClient({
    ...address,
    ...(flags.stallTimeout === undefined ? {} : { stallTimeoutMs: flags.stallTimeout }),
    ...(credentials ? { credentials } : {}),
  });
  try {
    return await use(client);
  } catch (error) {
    throw withLoginHint(error, hostPort(address.host, address.port), credentials !== undefined);
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
