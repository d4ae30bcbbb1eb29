import { basename } from 'node:path';
import { Command } from 'commander';
import type { FerryClient, TransferControl } from '../client/client.js';
import { FerryError } from '../protocol/errors.js';
import { ferryVersion } from '../version.js';
import {
  type Output,
  compressedNote,
  errorLine,
  formatInfo,
  formatList,
  formatLog,
  formatRate,
  formatStat,
  formatUploads,
  printJson,
} from './output.js';
// What only a transfer needs (the progress display, the folder walks with their hash cache) loads
// when one runs, not at every start of the command.
import type { TransferDisplay } from './transfer-display.js';
import type { DownloadOptions, DownloadResult } from '../client/download.js';
import type { CompressChoice } from '../compression/negotiation.js';
import type { UploadResult } from '../client/upload.js';
import { defaultServer, formatBytes, parseCount } from './units.js';
import { defaultLogPageEntries, maxLogPageEntries } from '../protocol/limits.js';
import { addLoginCommands } from './login.js';
import { type CliContext, type ClientFlags, clientCommand, transferCommand, withClient } from './client-command.js';

export type { CliContext } from './client-command.js';

type TransferFlags = ClientFlags & { retries: number; stallTimeout?: number; compress?: CompressChoice; streams?: number };

/** What every transfer of a batch gets: its retries and cancel, and the display's listeners. */
type UploadFlags = TransferFlags & { as?: string; asDir?: string; force?: boolean };

type TransferHooks = TransferControl & Required<Pick<DownloadOptions, 'onProgress' | 'onStart'>> & Pick<DownloadOptions, 'compress'>;

function uploadJson(result: UploadResult): Record<string, unknown> {
  return {
    name: result.name,
    size: result.size,
    sha256: result.sha256,
    bytesSent: result.bytesSent,
    wireBytes: result.wireBytes,
    resumed: result.resumed,
    skipped: result.skipped ?? false,
  };
}

function uploadLine(result: UploadResult, ms: number): string {
  if (result.skipped) return `${result.name} is already on the server (same SHA-256): nothing sent`;
  return `uploaded ${result.name}: ${formatBytes(result.size)}, sha256 ${result.sha256}${result.resumed ? ', resumed' : ''}${compressedNote(result.bytesSent, result.wireBytes)} (${formatRate(result.bytesSent, ms)})`;
}

/**
 * A batch's --json result: one transfer's own result when it was alone and went well (nothing
 * when it failed: its error says it); for several, `{"<verb>": [...], "failed": [...]}`.
 */
function printBatchJson(
  output: Output,
  verb: 'uploaded' | 'downloaded',
  results: unknown[],
  failures: TransferFailure[],
  total: number,
): void {
  if (total > 1)
    printJson(output, { [verb]: results, failed: failures.map(({ item, error }) => ({ item, code: error.code, message: error.message })) });
  else if (failures.length === 0) printJson(output, results[0]);
}

/** One transfer of a batch that failed: what it was (a local path or a name) and why. */
interface TransferFailure {
  item: string;
  error: FerryError;
}

/**
 * Runs uploads or downloads one after the other on one client, each with what the terminal shows
 * of it (a progress line on stderr when it is a terminal, also with --json; notices above it),
 * reconnecting per --retries, and cancelled by Ctrl-C (the shell's, or SIGINT for a one-shot
 * command: a second one ends the process). A transfer that gives up, or is cancelled, says how to
 * resume it. A failed transfer does not stop the next; a cancel stops them all.
 */
async function runTransfers<T>(
  context: CliContext,
  flags: TransferFlags,
  /** Local paths or names on the server: what each transfer is about, and how a failure names it. */
  items: readonly string[],
  run: (client: FerryClient, item: string, control: TransferHooks, display: TransferDisplay) => Promise<T>,
  /** A transfer is done: its result, and how long it took. */
  onDone: (result: T, elapsedMs: number) => void,
  /** What to do after a transfer stopped part-way: running the command again resumes it, unless it is a pipe's. */
  nextStep = 'run the same command again to resume',
): Promise<TransferFailure[]> {
  const [{ TransferDisplay, retriesShownOn }, { interruptSignal }] = await Promise.all([
    import('./transfer-display.js'),
    import('./interrupts.js'),
  ]);
  const { signal, dispose } = interruptSignal(context);
  const failures: TransferFailure[] = [];
  try {
    await withClient(context, flags, async (client) => {
      for (const item of items) {
        if (signal.aborted) {
          failures.push({ item, error: new FerryError('ECANCELED', 'cancelled before it started') });
          continue;
        }
        const display = new TransferDisplay(process.stderr, { json: flags.json ?? false });
        const control: TransferHooks = {
          signal,
          onProgress: display.onProgress,
          onStart: display.onStart,
          retry: retriesShownOn(display, flags.retries),
          ...(flags.compress === undefined ? {} : { compress: flags.compress }),
        };
        let result: T;
        const started = Date.now();
        try {
          result = await run(client, item, control, display);
        } catch (error) {
          if (!(error instanceof FerryError)) throw error;
          failures.push({ item, error: withResumeHint(error, display.began, nextStep) });
          continue;
        } finally {
          display.stop(); // the progress line is done before the result is printed below it
        }
        onDone(result, Date.now() - started);
      }
    });
  } finally {
    dispose();
  }
  return failures;
}

/** A transfer that stopped part-way says how to go on: `...; gave up: run the same command again to resume`. */
function withResumeHint(error: FerryError, began: boolean, nextStep: string): FerryError {
  if (!began || !(error.retryable || error.code === 'ECANCELED')) return error;
  const what = error.code === 'ECANCELED' ? 'cancelled' : `${error.message}; gave up`;
  return new FerryError(error.code, `${what}: ${nextStep}`, { cause: error });
}

/**
 * The end of a batch: one failure alone is the command's error; of several transfers, each failure
 * gets its line on stderr and the command fails with a count (exit 1, or 130 if cancelled).
 */
function endOfBatch(output: Output, failures: TransferFailure[], total: number, verb: string): void {
  if (failures.length === 0) return;
  if (total === 1) throw failures[0]!.error;
  for (const { item, error } of failures)
    output.err(errorLine(error.message.includes(item) ? error : new FerryError(error.code, `${item}: ${error.message}`)));
  const cancelled = failures.some(({ error }) => error.code === 'ECANCELED');
  throw new FerryError(
    cancelled ? 'ECANCELED' : failures[0]!.error.code,
    `${total - failures.length} of ${total} files ${verb}; failed: ${failures.map(({ item }) => item).join(', ')}`,
  );
}

/**
 * `upload - --as NAME`: standard input to its end (`tar c . | ferry upload - --as backup.tar`),
 * its size unknown until then. Not resumable (standard input cannot be read again): a lost
 * connection is not retried, and the error says to run the whole command again.
 */
async function uploadStandardInput(context: CliContext, paths: string[], flags: UploadFlags): Promise<void> {
  if (paths.length !== 1) throw new FerryError('EUSAGE', '- (standard input) is uploaded on its own, not with other files');
  if (flags.as === undefined || flags.asDir !== undefined)
    throw new FerryError('EUSAGE', 'upload - needs --as NAME: standard input has no file name');
  if (context.shell)
    throw new FerryError(
      'EUSAGE',
      'upload - reads standard input, which the shell is reading: run it as a command (tar c . | ferry upload - --as NAME)',
    );
  if (process.stdin.isTTY)
    throw new FerryError('EUSAGE', 'refusing to read the upload from a terminal: pipe the data in (tar c . | ferry upload - --as NAME)');
  const name = flags.as;
  const results: UploadResult[] = [];
  const failures = await runTransfers(
    context,
    flags,
    ['standard input'],
    (client, _item, control) =>
      client.uploadStream(process.stdin, {
        name,
        force: flags.force ?? false,
        signal: control.signal,
        onProgress: control.onProgress,
        onStart: control.onStart,
      }),
    (result, elapsedMs) => {
      results.push(result);
      if (!flags.json) context.output.out(uploadLine(result, elapsedMs));
    },
    'standard input cannot be read again, so an upload from it cannot resume: run the whole command again',
  );
  if (flags.json) printBatchJson(context.output, 'uploaded', results.map(uploadJson), failures, 1);
  endOfBatch(context.output, failures, 1, 'uploaded');
}

/**
 * `download NAME --out -`: the file on standard output (`| tar x`), each chunk checked before it
 * is written, the SHA-256 of the whole before exit 0; on a mismatch exit 1, saying to discard
 * what was written. A lost connection goes on from the last byte written. The result line goes
 * to stderr (stdout is the file's).
 */
async function downloadToStandardOutput(context: CliContext, names: string[], flags: TransferFlags): Promise<void> {
  if (names.length !== 1) throw new FerryError('EUSAGE', '--out - takes one name');
  if (flags.json) throw new FerryError('EUSAGE', '--out - and --json both want standard output: pick one');
  if (process.stdout.isTTY)
    throw new FerryError('EUSAGE', `refusing to write ${names[0]} to a terminal: redirect standard output, or use --out FILE`);
  const failures = await runTransfers(
    context,
    flags,
    names,
    (client, name, control) => client.downloadToStream(name, process.stdout, control),
    (result, elapsedMs) =>
      context.output.err(
        `downloaded ${result.name} to standard output: ${formatBytes(result.size)}, sha256 ${result.sha256} verified (${formatRate(result.bytesReceived, elapsedMs)})`,
      ),
    'what was written is incomplete: discard it and run the command again',
  );
  endOfBatch(context.output, failures, names.length, 'downloaded');
}

/** What `ferry` alone prints (on stderr, exit 2, as curl and rsync do with no arguments). */
export const shortUsage = `usage: ferry <command> [options]   (ferry --help lists the commands)
  e.g. ferry upload big.iso --server host:8888
       ferry download big.iso --out ~/Downloads/
       ferry serve`;

/** After the command list of \`ferry --help\`: what every client command shares, exit codes, examples. */
const helpEpilogue = `
Every client command takes --server HOST:PORT (default: $FERRY_SERVER, else ${defaultServer})
and --json (one JSON document on stdout, for scripts). Log in first with ferry login (the
session is kept per server); scripts can set FERRY_USER and FERRY_PASSWORD, or FERRY_TOKEN.
Connections use TLS: the first certificate met at an address is trusted from then on (ferry trust
list); --fingerprint SHA256:... pins one, --ca FILE verifies a real one, --no-tls talks clear text.

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
    .option('-r, --recursive', 'show the files under PREFIX as a tree of folders, each with its file count and size')
    .action(async (prefix: string | undefined, flags: ClientFlags & { partial?: boolean; recursive?: boolean }) => {
      if (flags.recursive && !flags.partial) return (await import('./tree-commands.js')).listFolder(context, prefix, flags);
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

  transferCommand(program, context, 'upload <path...>', 'upload local files (resumes an interrupted upload of the same file)')
    .summary('upload local files (resumes)')
    .alias('put')
    .option('--as <name>', 'name on the server, for one file (default: the file name)')
    .option('--as-dir <prefix>', 'store each file as PREFIX/<its file name>')
    .option('--force', 'replace a file of the same name on the server')
    .option(
      '-r, --recursive',
      "upload a folder: DIR/x/y is stored as PREFIX/x/y (--as PREFIX; default: the folder's name); files already there unchanged are skipped, changed ones replaced",
    )
    .option('--follow-symlinks', 'with -r, follow symbolic links to files and folders (by default they are skipped)')
    .action(async (paths: string[], flags: UploadFlags & { recursive?: boolean; followSymlinks?: boolean }) => {
      if (flags.recursive) {
        if ((flags.streams ?? 1) > 1)
          throw new FerryError('EUSAGE', '--streams is for one big file; upload -r already sends several files at once');
        if (paths.length !== 1 || flags.asDir !== undefined) throw new FerryError('EUSAGE', 'upload -r takes one folder (and --as PREFIX)');
        return (await import('./tree-commands.js')).uploadFolder(context, paths[0]!, flags);
      }
      if (paths.includes('-')) return uploadStandardInput(context, paths, flags);
      if (flags.as !== undefined && (paths.length > 1 || flags.asDir !== undefined))
        throw new FerryError('EUSAGE', '--as names one file; for several, use --as-dir PREFIX');
      // Names travel in NFC; a file system that stores names decomposed (macOS) gives NFD.
      const nameOf = (path: string): string => {
        const own = basename(path).normalize('NFC');
        return flags.as ?? (flags.asDir === undefined ? own : `${flags.asDir.replace(/\/+$/u, '')}/${own}`);
      };
      const results: UploadResult[] = [];
      const failures = await runTransfers(
        context,
        flags,
        paths,
        (client, path, control, display) =>
          client.upload(path, {
            name: nameOf(path),
            force: flags.force ?? false,
            ...(flags.streams === undefined ? {} : { streams: flags.streams }),
            onNotice: (text) => display.notice(text),
            ...control,
          }),
        (result, elapsedMs) => {
          results.push(result);
          if (!flags.json) output.out(uploadLine(result, elapsedMs));
        },
      );
      context.shell?.onChange();
      if (flags.json) printBatchJson(output, 'uploaded', results.map(uploadJson), failures, paths.length);
      endOfBatch(output, failures, paths.length, 'uploaded');
    });

  transferCommand(program, context, 'download <name...>', 'download files (resumes an interrupted download)')
    .summary('download files (resumes)')
    .alias('get')
    .option(
      '--out <path>',
      'a file to write, or a directory to write into (default: the last segment of the name, here); for several names, a directory',
    )
    .option('--force', 'overwrite an existing local file')
    .option(
      '--no-direct',
      'read through the server even where it offers reads straight from its object store (a server on S3 with --s3-direct-reads)',
    )
    .option(
      '-r, --recursive',
      "download a folder: PREFIX/x/y is written to DIR/x/y (--out DIR; default: the folder's name, here) with its mode and mtime; files already here unchanged are skipped",
    )
    .action(async (names: string[], flags: TransferFlags & { out?: string; force?: boolean; recursive?: boolean; direct: boolean }) => {
      if (flags.recursive) {
        if (names.length !== 1) throw new FerryError('EUSAGE', 'download -r takes one folder name (and --out DIR)');
        if ((flags.streams ?? 1) > 1)
          throw new FerryError('EUSAGE', '--streams is for one big file; download -r already fetches several files at once');
        return (await import('./tree-commands.js')).downloadFolder(context, names[0]!, flags);
      }
      if (flags.out === '-') return downloadToStandardOutput(context, names, flags);
      // Several names go into a directory, as with cp: --out must name one (it is made to mean one).
      const out = names.length > 1 && flags.out !== undefined && !/[/\\]$/u.test(flags.out) ? `${flags.out}/` : flags.out;
      const results: DownloadResult[] = [];
      const failures = await runTransfers(
        context,
        flags,
        names,
        (client, name, control, display) =>
          client.download(name, {
            ...(out === undefined ? {} : { out }),
            ...(flags.streams === undefined ? {} : { streams: flags.streams }),
            force: flags.force ?? false,
            direct: flags.direct,
            onNotice: (text) => display.notice(text),
            ...control,
          }),
        (result, elapsedMs) => {
          results.push(result);
          if (!flags.json)
            output.out(
              `downloaded ${result.name} to ${result.path}: ${formatBytes(result.size)}, sha256 ${result.sha256}${result.resumed ? ', resumed' : ''}${compressedNote(result.bytesReceived, result.wireBytes)} (${formatRate(result.bytesReceived, elapsedMs)})`,
            );
        },
      );
      if (flags.json) printBatchJson(output, 'downloaded', results, failures, names.length);
      endOfBatch(output, failures, names.length, 'downloaded');
    });

  clientCommand(program, context, 'delete <name>', 'delete a stored file')
    .alias('rm')
    .option('-r, --recursive', 'delete every file under the folder NAME/ (asks first on a terminal)')
    .option('--yes', 'with -r, delete without asking (what scripts must say)')
    .action(async (name: string, flags: ClientFlags & { recursive?: boolean; yes?: boolean }) => {
      if (flags.recursive) return (await import('./tree-commands.js')).deleteFolder(context, name, flags);
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

  addLoginCommands(program, context);

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
