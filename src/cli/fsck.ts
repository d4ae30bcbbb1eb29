import type { Command } from 'commander';
import { serverDefaults } from '../server/defaults.js';
import { openDataDir } from './data-dir.js';
import { type Output, printJson } from './output.js';
import { formatDuration, parseDuration } from './units.js';

interface FsckFlags {
  data: string;
  verify?: boolean;
  json?: boolean;
  sessionTtl?: number;
}

/**
 * `ferry fsck`: the server's start-up recovery as a read-only report. Changes nothing; exit status
 * 0 when LMDB and the data directory agree, 1 when they do not (`ferry serve` repairs what it
 * lists at its next start).
 */
export function addFsckCommand(program: Command, output: Output, result: { exitCode?: number }): void {
  program
    .command('fsck')
    .description('check a data directory against its metadata, without serving or changing anything')
    .option('--data <dir>', 'data directory', './var')
    .option('--verify', 'also read every stored file: its SHA-256 and the xxh64 of each chunk must match the record (reads everything)')
    .option(
      '--session-ttl <duration>',
      `unfinished uploads untouched this long count as expired (default: ${formatDuration(serverDefaults.sessionTtlMs)})`,
      parseDuration,
    )
    .option('--json', 'print a machine-readable report on stdout')
    .addHelpText(
      'after',
      '\nExit status: 0 when everything agrees, 1 when something does not. `ferry serve` repairs what this lists when it starts.',
    )
    .action(async (flags: FsckFlags) => {
      const { reconcile } = await import('../server/reconcile.js');
      const opened = await openDataDir(flags.data, { exclusive: false });
      const { layout, store, servedBy: server } = opened;
      // Read-only, so it may run beside a server; but what that server is doing may show up.
      if (server)
        output.err(
          `ferry: warning: a server (${server}) is serving ${layout.root}: its uploads in progress and files being published may show up as findings`,
        );
      try {
        const sessionTtlMs = flags.sessionTtl ?? serverDefaults.sessionTtlMs;
        const report = await reconcile({ layout, store, sessionTtlMs, repair: false, verifyContent: flags.verify ?? false });
        result.exitCode = report.findings.length === 0 ? 0 : 1;
        if (flags.json) return printJson(output, { dataDir: layout.root, ...(server ? { servedBy: server } : {}), ...report });
        for (const { problem, name, detail, action } of report.findings) output.out(`${problem}: ${name}: ${detail} (${action})`);
        const verdict =
          report.findings.length === 0 ? 'no problems' : `${report.findings.length} problem${report.findings.length === 1 ? '' : 's'}`;
        output.out(
          `${layout.root}: ${report.filesChecked} files and ${report.uploadsChecked} unfinished uploads checked${flags.verify ? ' (contents verified)' : ''}: ${verdict}`,
        );
      } finally {
        await opened.close();
      }
    });
}
