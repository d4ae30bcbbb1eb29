import { basename } from 'node:path';
import { Command, Option } from 'commander';
import { FerryClient } from '../client/client.js';
import { defaultClientStallTimeoutMs } from '../client/connection.js';
import { FerryError } from '../protocol/errors.js';
import { ferryVersion } from '../version.js';
import { type Output, errorLine, formatInfo, formatList, formatLog, formatRate, formatStat, formatUploads, printJson } from './output.js';
import { TransferDisplay } from './transfer-display.js';
import { defaultTransferRetries } from '../client/retry.js';
import type { TransferControl } from '../client/client.js';
import { defaultServer, formatBytes, formatDuration, parseCount, parseDuration, parseServerAddress } from './units.js';
import { defaultLogPageEntries, maxLogPageEntries } from '../protocol/limits.js';

export interface CliContext {
  output: Output;
  env: NodeJS.ProcessEnv;
  /**
   * In the interactive shell: the client every command shares (and the server it talks to), and
   * the signal with which the shell cancels the running command (Ctrl-C).
   */
  shell?: { client: FerryClient; onChange(): void; signal: AbortSignal };
}

interface ClientFlags {
  server: string;
  json?: boolean;
}

const stallTimeoutHelp = `reconnect (and resume) when no byte moves this long (default: ${formatDuration(defaultClientStallTimeoutMs)})`;

/** Adds the options every client command takes: --server and --json. */
function clientCommand(program: Command, context: CliContext, spec: string, description: string): Command {
  const command = program.command(spec).description(description);
  if (!context.shell) {
    command.addOption(
      new Option('--server <host:port>', 'server to talk to').default(context.env['FERRY_SERVER'] ?? defaultServer).env('FERRY_SERVER'),
    );
  }
  return command.option('--json', 'print a machine-readable result on stdout');
}

/** A client command that moves a file: it also takes --retries and --stall-timeout. */
function transferCommand(program: Command, context: CliContext, spec: string, description: string): Command {
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
function serverAddressOption(text: string): { host: string; port: number } {
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
async function withClient<T>(
  context: CliContext,
  flags: ClientFlags & { stallTimeout?: number },
  use: (client: FerryClient) => Promise<T>,
): Promise<T> {
  if (context.shell) return use(context.shell.client);
  const address = serverAddressOption(flags.server);
  const client = new FerryClient({ ...address, ...(flags.stallTimeout === undefined ? {} : { stallTimeoutMs: flags.stallTimeout }) });
  try {
    return await use(client);
  } finally {
    await client.close().catch(() => undefined); // the command's outcome is decided; a failed hang-up changes nothing
  }
}

type TransferFlags = ClientFlags & { retries: number; stallTimeout?: number };

/**
 * Runs one upload or download with what the terminal shows of it (a progress line on stderr when
 * it is a terminal, also with --json; notices above it), reconnecting per --retries, and
 * cancelled by Ctrl-C (the shell's, or SIGINT for a one-shot command: a second one ends the
 * process). A transfer that gives up, or is cancelled, says how to resume it.
 */
async function runTransfer<T>(
  context: CliContext,
  flags: TransferFlags,
  run: (client: FerryClient, control: TransferControl, display: TransferDisplay) => Promise<T>,
): Promise<T> {
  const display = new TransferDisplay(process.stderr, { json: flags.json ?? false });
  const control: TransferControl = {
    retry: {
      retries: flags.retries,
      onRetry: ({ attempt, retries, error, delayMs }) =>
        display.notice(
          `ferry: ${error.message}, reconnecting ${delayMs > 0 ? `in ${formatDuration(delayMs)}` : 'now'} (retry ${attempt - 1} of ${retries})`,
        ),
    },
  };
  let stopOnInterrupt: (() => void) | undefined;
  if (context.shell) control.signal = context.shell.signal;
  else {
    const interrupts = new AbortController();
    stopOnInterrupt = () => interrupts.abort();
    process.once('SIGINT', stopOnInterrupt);
    control.signal = interrupts.signal;
  }
  try {
    return await withClient(context, flags, (client) => run(client, control, display));
  } catch (error) {
    if (error instanceof FerryError && display.began && (error.retryable || error.code === 'ECANCELED')) {
      const what = error.code === 'ECANCELED' ? 'cancelled' : `${error.message}; gave up`;
      throw new FerryError(error.code, `${what}: run the same command again to resume`, { cause: error });
    }
    throw error;
  } finally {
    display.stop();
    if (stopOnInterrupt) process.off('SIGINT', stopOnInterrupt);
  }
}

/** What `ferry` alone prints (on stderr, exit 2, as curl and rsync do with no arguments). */
export const shortUsage = `usage: ferry <command> [options]   (ferry --help lists the commands)
  e.g. ferry upload big.iso --server host:8888
       ferry download big.iso --out ~/Downloads/
       ferry serve`;

/** After the command list of \`ferry --help\`: what every client command shares, exit codes, examples. */
const helpEpilogue = `
Every client command takes --server HOST:PORT (default: $FERRY_SERVER, else ${defaultServer})
and --json (one JSON document on stdout, for scripts).

Exit codes: 0 done; 1 the operation failed (one line on stderr: "ferry: <what> (<CODE>)");
2 a usage error.

Examples:
  ferry upload big.iso --server files.example.org:8888     upload, resuming if cut before
  ferry download big.iso --out ~/Downloads/                 into a directory, verified
  FERRY_SERVER=files.example.org:8888 ferry list --json     for scripts`;

/**
 * The command-line interface as a commander program, shared by one-shot use and the shell.
 * Actions throw FerryError; the caller turns it into one line on stderr and an exit code.
 */
export function buildProgram(context: CliContext): Command {
  const { output } = context;
  const program = new Command(context.shell ? 'ferry>' : 'ferry');
  program
    .description('Ferry: resumable, verified file transfer over TCP')
    .exitOverride()
    .configureOutput({ writeOut: (text) => output.out(text.trimEnd()), writeErr: (text) => output.err(text.trimEnd()) })
    .showSuggestionAfterError(true)
    .helpCommand('help [command]', 'show help for a command');
  if (!context.shell) program.version(ferryVersion).addHelpText('after', helpEpilogue);

  clientCommand(program, context, 'list [prefix]', 'list stored files (optionally only names starting with prefix)')
    .summary('list stored files')
    .alias('ls')
    .option('--partial', 'list unfinished uploads instead: bytes held, time since last worked on (the same upload command resumes one)')
    .action(async (prefix: string | undefined, flags: ClientFlags & { partial?: boolean }) => {
      if (flags.partial) {
        const uploads = await withClient(context, flags, (client) => client.uploads(prefix));
        if (flags.json) printJson(output, uploads);
        else output.out(formatUploads(uploads));
        return;
      }
      const files = await withClient(context, flags, (client) => client.list(prefix));
      if (flags.json)
        printJson(
          output,
          files.map(({ name, size, sha256, modified }) => ({ name, size, sha256, modified })),
        );
      else output.out(formatList(files));
    });

  transferCommand(program, context, 'upload <path>', 'upload a local file (resumes an interrupted upload of the same file)')
    .summary('upload a local file (resumes)')
    .alias('put')
    .option('--as <name>', 'name on the server (default: the file name)')
    .option('--force', 'replace a file of the same name on the server')
    .action(async (path: string, flags: TransferFlags & { as?: string; force?: boolean }) => {
      // Names travel in NFC; a file system that stores names decomposed (macOS) gives NFD.
      const name = flags.as ?? basename(path).normalize('NFC');
      const started = Date.now();
      const result = await runTransfer(context, flags, (client, control, display) =>
        client.upload(path, {
          name,
          force: flags.force ?? false,
          onProgress: display.onProgress,
          onStart: display.onStart,
          ...control,
        }),
      );
      context.shell?.onChange();
      if (flags.json)
        printJson(output, {
          name: result.name,
          size: result.size,
          sha256: result.sha256,
          bytesSent: result.bytesSent,
          resumed: result.resumed,
          skipped: result.skipped ?? false,
        });
      else if (result.skipped) output.out(`${result.name} is already on the server (same SHA-256): nothing sent`);
      else
        output.out(
          `uploaded ${result.name}: ${formatBytes(result.size)}, sha256 ${result.sha256}${result.resumed ? ', resumed' : ''} (${formatRate(result.bytesSent, Date.now() - started)})`,
        );
    });

  transferCommand(program, context, 'download <name>', 'download a file (resumes an interrupted download)')
    .summary('download a file (resumes)')
    .alias('get')
    .option('--out <path>', 'a file to write, or a directory to write it into (default: the last segment of the name, here)')
    .option('--force', 'overwrite an existing local file')
    .action(async (name: string, flags: TransferFlags & { out?: string; force?: boolean }) => {
      const started = Date.now();
      const result = await runTransfer(context, flags, (client, control, display) =>
        client.download(name, {
          ...(flags.out === undefined ? {} : { out: flags.out }),
          force: flags.force ?? false,
          onProgress: display.onProgress,
          onStart: display.onStart,
          onNotice: (text) => display.notice(text),
          ...control,
        }),
      );
      if (flags.json) printJson(output, result);
      else
        output.out(
          `downloaded ${result.name} to ${result.path}: ${formatBytes(result.size)}, sha256 ${result.sha256}${result.resumed ? ', resumed' : ''} (${formatRate(result.bytesReceived, Date.now() - started)})`,
        );
    });

  clientCommand(program, context, 'delete <name>', 'delete a stored file')
    .alias('rm')
    .action(async (name: string, flags: ClientFlags) => {
      await withClient(context, flags, (client) => client.delete(name));
      context.shell?.onChange();
      if (flags.json) printJson(output, { name, deleted: true });
      else output.out(`deleted ${name}`);
    });

  clientCommand(program, context, 'stat <name>', 'show a stored file: size, sha256, chunks, times')
    .summary('show a stored file')
    .action(async (name: string, flags: ClientFlags) => {
      const file = await withClient(context, flags, (client) => client.stat(name));
      if (flags.json) printJson(output, file);
      else output.out(formatStat(file));
    });

  clientCommand(program, context, 'info', 'show the server: version, capabilities, files, clients')
    .summary('show the server')
    .action(async (flags: ClientFlags) => {
      const info = await withClient(context, flags, (client) => client.info());
      if (flags.json) printJson(output, info);
      else output.out(formatInfo(info));
    });

  clientCommand(program, context, 'log', 'show the transfer history, newest first')
    .summary('show the transfer history')
    .option('--limit <n>', `how many entries (1 to ${maxLogPageEntries})`, parseCount, defaultLogPageEntries)
    .action(async (flags: ClientFlags & { limit: number }) => {
      if (flags.limit < 1 || flags.limit > maxLogPageEntries)
        throw new FerryError('EUSAGE', `--limit must be between 1 and ${maxLogPageEntries}`);
      const entries = await withClient(context, flags, (client) => client.log(flags.limit));
      if (flags.json) printJson(output, entries);
      else output.out(formatLog(entries));
    });

  return program;
}

/** Runs one command line through `program`; returns the exit code. Never exits the process. */
export async function runProgram(program: Command, argv: string[], output: Output): Promise<number> {
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'commander.helpDisplayed' || code === 'commander.version' || code === 'commander.help') return 0;
    if (typeof code === 'string' && code.startsWith('commander.')) return 2; // commander has printed the usage error
    output.err(errorLine(error));
    return error instanceof FerryError ? error.exitCode : 1;
  }
}
