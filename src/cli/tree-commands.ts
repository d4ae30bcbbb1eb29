import { basename, resolve } from 'node:path';
import type { CompressChoice } from '../compression/negotiation.js';
import { read } from 'read';
import { HashCache } from '../client/hash-cache.js';
import {
  type TreeHooks,
  type TreeSummary,
  downloadTree,
  folderName,
  isFolderMarker,
  listingPrefix,
  relativeName,
  uploadTree,
} from '../client/tree-transfer.js';
import { walkLocalTree } from '../client/local-tree.js';
import { type ErrorCode, FerryError } from '../protocol/errors.js';
import type { FileSummary } from '../protocol/messages.js';
import type { CliContext, ClientFlags } from './client-command.js';
import { withClient } from './client-command.js';
import { interruptSignal } from './interrupts.js';
import { type Output, compressedNote, errorLine, formatRate, printJson } from './output.js';
import { TransferDisplay, retriesShownOn } from './transfer-display.js';
import { formatBytes } from './units.js';

type TreeFlags = ClientFlags & { retries: number; compress?: CompressChoice };

/**
 * One progress line for a whole tree: files done of the total, the bytes of the tree, the rate,
 * and the file that moved last (several are in flight at once). Totals are known up front for a
 * download (the listing) and, on a terminal, for an upload (a first walk that only counts).
 */
class TreeProgress {
  readonly display: TransferDisplay;
  #total: { files: number; bytes: number } | undefined;
  #filesDone = 0;
  #bytesDone = 0;
  #bytesMoved = 0;
  /** The files under way, by name: how far each has got. */
  readonly #current = new Map<string, { done: number; transferred: number }>();

  /** The tree's prefix on the server: names are shown under it (`2026/img-6.jpg`, not `photos/2026/img-6.jpg`). */
  readonly #prefix: string;

  constructor(json: boolean, prefix: string) {
    this.display = new TransferDisplay(process.stderr, { json });
    this.#prefix = prefix;
  }

  plan(total: { files: number; bytes: number }): void {
    this.#total = total;
  }

  readonly hooks: Pick<TreeHooks, 'onFile' | 'onProgress' | 'onStart' | 'onDone' | 'onSkipped' | 'onNotice'> = {
    onFile: (file) => {
      this.#current.set(file.name, { done: 0, transferred: 0 });
    },
    onStart: (start) => this.display.onStart(start),
    onProgress: (progress) => {
      this.#current.set(progress.name, { done: progress.done, transferred: progress.transferred });
      this.#show(progress.name);
    },
    onDone: (file) => {
      this.#filesDone += 1;
      this.#bytesDone += file.size;
      this.#bytesMoved += this.#current.get(file.name)?.transferred ?? 0;
      this.#current.delete(file.name);
      this.#show(file.name);
    },
    onSkipped: (skip) => this.display.notice(`ferry: skipped ${skip.path}: ${skip.why}`),
    onNotice: (text) => this.display.notice(text),
  };

  #show(name: string): void {
    let done = this.#bytesDone;
    let transferred = this.#bytesMoved;
    for (const file of this.#current.values()) {
      done += file.done;
      transferred += file.transferred;
    }
    const files = this.#total ? `${this.#filesDone}/${this.#total.files}` : `${this.#filesDone}`;
    this.display.onProgress({
      counter: `[${files}]`,
      name: relativeName(this.#prefix, name),
      done,
      total: this.#total?.bytes,
      transferred,
    });
  }
}

/** Counts the files and bytes a walk of `root` will meet (for the progress line's totals). */
async function countTree(root: string, followSymlinks: boolean): Promise<{ files: number; bytes: number }> {
  const total = { files: 0, bytes: 0 };
  for await (const entry of walkLocalTree(root, { followSymlinks })) {
    if (entry.kind !== 'file') continue;
    total.files += 1;
    total.bytes += entry.stats.size;
  }
  return total;
}

/** Runs a tree transfer with the hash cache open, the progress line, Ctrl-C, and the summary's printing and exit status. */
async function runTree(
  context: CliContext,
  flags: TreeFlags,
  what: { verb: 'uploaded' | 'downloaded'; from: string; to: string; prefix: string },
  run: (hooks: TreeHooks & { cache: HashCache }, progress: TreeProgress) => Promise<TreeSummary>,
): Promise<void> {
  const { signal, dispose } = interruptSignal(context);
  const progress = new TreeProgress(flags.json ?? false, what.prefix);
  const cache = HashCache.open();
  const started = Date.now();
  let summary: TreeSummary;
  try {
    summary = await run(
      {
        ...progress.hooks,
        cache,
        signal,
        ...(flags.compress === undefined ? {} : { compress: flags.compress }),
        retry: retriesShownOn(progress.display, flags.retries),
        onFailed: (failure) => progress.display.notice(errorLine(new FerryError(failure.code, `${failure.item}: ${failure.message}`))),
      },
      progress,
    );
  } finally {
    progress.display.stop();
    dispose();
    await cache.close();
  }
  reportTree(context.output, flags.json ?? false, what, summary, Date.now() - started);
}

/** Prints a tree transfer's summary (a line, or --json), then fails (exit 1, or 130 if cancelled) unless every file made it. */
function reportTree(
  output: Output,
  json: boolean,
  what: { verb: 'uploaded' | 'downloaded'; from: string; to: string },
  summary: TreeSummary,
  elapsedMs: number,
): void {
  const made = summary.moved + summary.unchanged;
  if (json) {
    printJson(output, {
      from: what.from,
      to: what.to,
      files: summary.files,
      [what.verb]: summary.moved,
      unchanged: summary.unchanged,
      bytes: summary.bytes,
      bytesMoved: summary.bytesMoved,
      wireBytes: summary.wireBytes,
      folders: summary.folders,
      skipped: summary.skipped,
      failed: summary.failed,
      ...(summary.stopped ? { stopped: { code: summary.stopped.code, message: summary.stopped.message } } : {}),
    });
  } else {
    const folders = summary.folders > 0 ? `; ${summary.folders} empty folder${summary.folders === 1 ? '' : 's'} kept` : '';
    const skipped = summary.skipped > 0 ? `; skipped ${summary.skipped} (links, special files: see above)` : '';
    output.out(
      `${what.verb} ${what.from} to ${what.to}: ${made} of ${summary.files} files (${summary.moved} ${what.verb}, ${summary.unchanged} unchanged), ` +
        `${formatBytes(summary.bytes)}, ${formatBytes(summary.bytesMoved)} moved${compressedNote(summary.bytesMoved, summary.wireBytes)} ` +
        `(${formatRate(summary.bytesMoved, elapsedMs)})${folders}${skipped}`,
    );
  }
  if (summary.stopped) {
    const cancelled = summary.stopped.code === 'ECANCELED';
    throw new FerryError(
      summary.stopped.code,
      `${cancelled ? 'cancelled' : `stopped: ${summary.stopped.message}`} after ${made} of the files; run the same command again to go on (what is done is not sent again)`,
    );
  }
  if (summary.failed.length > 0) {
    throw new FerryError(
      summary.failed[0]!.code,
      `${summary.failed.length} of ${summary.files} files failed: ${summary.failed
        .slice(0, 5)
        .map(({ item }) => item)
        .join(', ')}${summary.failed.length > 5 ? ', ...' : ''}`,
    );
  }
}

/** `upload -r DIR [--as PREFIX]`: the tree under PREFIX (default: DIR's last segment). */
export async function uploadFolder(
  context: CliContext,
  dir: string,
  flags: TreeFlags & { as?: string; followSymlinks?: boolean },
): Promise<void> {
  const prefix = folderName(flags.as ?? basename(resolve(dir)));
  const followSymlinks = flags.followSymlinks ?? false;
  await runTree(
    context,
    flags,
    { verb: 'uploaded', from: dir, to: prefix === '' ? '/' : `${prefix}/`, prefix },
    async (hooks, progress) => {
      if (process.stderr.isTTY) progress.plan(await countTree(dir, followSymlinks));
      const summary = await withClient(context, flags, (client) => uploadTree(client, dir, prefix, { ...hooks, followSymlinks }));
      context.shell?.onChange();
      return summary;
    },
  );
}

/** `download -r PREFIX [--out DIR]`: every file under PREFIX/ into DIR (default: PREFIX's last segment, here). */
export async function downloadFolder(
  context: CliContext,
  given: string,
  flags: TreeFlags & { out?: string; direct?: boolean },
): Promise<void> {
  const prefix = folderName(given);
  if (prefix === '' && flags.out === undefined) throw new FerryError('EUSAGE', 'download -r of the whole store needs --out DIR');
  const out = flags.out ?? prefix.split('/').at(-1)!;
  await runTree(context, flags, { verb: 'downloaded', from: prefix === '' ? '/' : `${prefix}/`, to: out, prefix }, (hooks, progress) =>
    withClient(context, flags, async (client) => {
      // On a terminal, a first pass over the listing (a page at a time) gives the progress line its totals.
      if (process.stderr.isTTY) progress.plan(await totalsOf(client.listEach(listingPrefix(prefix))));
      return downloadTree(client, prefix, out, { ...hooks, ...(flags.direct === undefined ? {} : { direct: flags.direct }) });
    }),
  );
}

/** How many files, and bytes, a listing holds (read a page at a time). */
async function totalsOf(files: AsyncIterable<FileSummary>): Promise<{ files: number; bytes: number }> {
  const total = { files: 0, bytes: 0 };
  for await (const file of files) {
    total.files += 1;
    total.bytes += file.size;
  }
  return total;
}

/** `list -r [PREFIX]`: the tree under PREFIX, each folder with its file count and bytes. */
export async function listFolder(context: CliContext, given: string | undefined, flags: ClientFlags): Promise<void> {
  const prefix = folderName(given ?? '');
  // The tree is drawn whole (each folder's totals come before its contents): held in memory, as the lines it prints would be.
  const files = await withClient(context, flags, (client) => client.list(listingPrefix(prefix)));
  const bytes = files.reduce((total, file) => total + file.size, 0);
  if (flags.json) {
    // Every stored name is an entry; empty folders' markers are counted as folders, not files.
    const emptyFolders = files.filter(isFolderMarker).length;
    printJson(context.output, { prefix, files: files.length - emptyFolders, emptyFolders, bytes, entries: files });
    return;
  }
  if (files.length === 0) {
    context.output.out(`(no files under ${prefix === '' ? 'the store' : `${prefix}/`})`);
    return;
  }
  context.output.out(formatTree(files, prefix));
}

/** A folder of the tree being printed: its totals and what is in it, in name order. */
interface TreeFolder {
  files: number;
  bytes: number;
  entries: Map<string, TreeFolder | FileSummary>;
}

/**
 * The tree under `prefix` as indented lines: a folder with `/`, its file count and bytes; a file
 * with its size (`[DAMAGED]` when it is). The first line is the whole: `prefix/ (N files, SIZE)`.
 */
export function formatTree(files: FileSummary[], prefix: string): string {
  const root: TreeFolder = { files: 0, bytes: 0, entries: new Map() };
  for (const file of files) {
    const segments = relativeName(prefix, file.name).split('/');
    // An empty folder's marker shows as the folder, not as a file in it.
    const counts = isFolderMarker(file) ? 0 : 1;
    let folder = root;
    folder.files += counts;
    folder.bytes += file.size;
    for (const segment of segments.slice(0, -1)) {
      let next = folder.entries.get(`${segment}/`) as TreeFolder | undefined;
      if (!next) folder.entries.set(`${segment}/`, (next = { files: 0, bytes: 0, entries: new Map() }));
      next.files += counts;
      next.bytes += file.size;
      folder = next;
    }
    if (counts) folder.entries.set(segments.at(-1)!, file);
  }
  const counted = (folder: TreeFolder): string => `${folder.files} file${folder.files === 1 ? '' : 's'}, ${formatBytes(folder.bytes)}`;
  const lines = [`${prefix === '' ? '/' : `${prefix}/`}  (${counted(root)})`];
  const walk = (folder: TreeFolder, depth: number): void => {
    for (const [label, entry] of folder.entries) {
      const indent = '  '.repeat(depth);
      if ('entries' in entry) {
        lines.push(`${indent}${label}  (${counted(entry)})`);
        walk(entry, depth + 1);
      } else lines.push(`${indent}${label}  ${formatBytes(entry.size)}${entry.damaged === undefined ? '' : '  [DAMAGED]'}`);
    }
  };
  walk(root, 1);
  return lines.join('\n');
}

/**
 * `delete -r PREFIX`: every file under PREFIX/. Asks first on a terminal; a script must say
 * `--yes` (without it, and with no terminal to ask on, nothing is deleted). The whole store
 * (`/`) is never deleted without `--yes`.
 */
export async function deleteFolder(context: CliContext, given: string, flags: ClientFlags & { yes?: boolean }): Promise<void> {
  const prefix = folderName(given);
  const where = prefix === '' ? 'the whole store' : `${prefix}/`;
  if (prefix === '' && !flags.yes) throw new FerryError('EUSAGE', 'refusing to delete the whole store without --yes');
  await withClient(context, flags, async (client) => {
    // Counted first, then deleted, each a page at a time: a folder of any size takes one page of memory.
    const total = await totalsOf(client.listEach(listingPrefix(prefix)));
    if (total.files === 0) throw new FerryError('ENOENT', `no stored files under ${where}`);
    if (!flags.yes) {
      if (context.shell || !process.stdin.isTTY || !process.stderr.isTTY)
        throw new FerryError(
          'EUSAGE',
          `delete -r would delete ${total.files} files under ${where}: add --yes to do it without being asked`,
        );
      const answer = await read({
        prompt: `delete ${total.files} files (${formatBytes(total.bytes)}) under ${where}? [y/N] `,
        output: process.stderr,
      });
      if (!/^y(es)?$/iu.test(answer.trim())) throw new FerryError('ECANCELED', 'nothing deleted');
    }
    const failed: { item: string; code: ErrorCode; message: string }[] = [];
    let seen = 0;
    for await (const file of client.listEach(listingPrefix(prefix))) {
      seen += 1;
      try {
        await client.delete(file.name);
      } catch (error) {
        if (!(error instanceof FerryError) || error.retryable) throw error;
        failed.push({ item: file.name, code: error.code, message: error.message });
        context.output.err(errorLine(new FerryError(error.code, `${file.name}: ${error.message}`)));
      }
    }
    context.shell?.onChange();
    const deleted = seen - failed.length;
    if (flags.json) printJson(context.output, { prefix, deleted, failed });
    else context.output.out(`deleted ${deleted} files under ${where}`);
    if (failed.length > 0) throw new FerryError(failed[0]!.code, `${failed.length} of ${seen} files under ${where} were not deleted`);
  });
}
