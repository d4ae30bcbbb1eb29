import type { Command } from 'commander';
import { FerryError } from '../protocol/errors.js';
import { chunkLengthOf } from '../store/records.js';
import { openDataDir } from './data-dir.js';
import { type Output, printJson } from './output.js';
import { formatBytes, formatLocalTime } from './units.js';

interface SessionsFlags {
  data: string;
  json?: boolean;
  drop?: string[];
  dropAll?: boolean;
}

/** One unfinished upload as the operator sees it. */
interface SessionView {
  name: string;
  size: number;
  /** Bytes recorded as received and verified. */
  received: number;
  /** Who it counts against (the account; a client network for sessions of servers before accounts), when the server that made it said. */
  owner: string | undefined;
  created: string;
  touched: string;
}

/**
 * `ferry sessions`: the unfinished uploads of a data directory, for the operator, on the server's
 * machine. Listing reads beside a running server; dropping takes the directory's lock (so the
 * server must be stopped first: it keeps its sessions' state in memory).
 */
export function addSessionsCommand(program: Command, output: Output): void {
  program
    .command('sessions')
    .description('list (or drop) the unfinished uploads of a data directory')
    .option('--data <dir>', 'data directory', './var')
    .option('--drop <name...>', 'drop these unfinished uploads and their partial data (the server must be stopped)')
    .option('--drop-all', 'drop every unfinished upload (the server must be stopped)')
    .option('--json', 'print a machine-readable result on stdout')
    .action(async (flags: SessionsFlags) => {
      const dropping = flags.dropAll === true || (flags.drop?.length ?? 0) > 0;
      const opened = await openDataDir(flags.data, { exclusive: dropping });
      try {
        const { store, layout } = opened;
        const sessions = store.sessions();
        if (!dropping) {
          const views: SessionView[] = sessions.map((session) => {
            let received = 0;
            for (const index of store.verifiedChunks(session.id).keys()) received += chunkLengthOf(index, session.size, session.chunkSize);
            return {
              name: session.name,
              size: session.size,
              received,
              owner: session.owner,
              created: new Date(session.created).toISOString(),
              touched: new Date(session.touched).toISOString(),
            };
          });
          if (flags.json) return printJson(output, views);
          if (views.length === 0) return output.out('(no unfinished uploads)');
          for (const view of views) {
            output.out(
              `${formatBytes(view.received).padStart(9)} of ${formatBytes(view.size).padEnd(9)}  ${formatLocalTime(view.touched)}  ${view.owner ?? '?'}  ${view.name}`,
            );
          }
          return;
        }
        const wanted = flags.dropAll ? sessions : sessions.filter((session) => flags.drop!.includes(session.name));
        const unknown = (flags.drop ?? []).filter((name) => !sessions.some((session) => session.name === name));
        if (unknown.length > 0) throw new FerryError('ENOENT', `no unfinished upload of ${unknown.join(', ')}`);
        for (const session of wanted) {
          await store.dropSession(session);
          await layout.removePartial(session.id);
        }
        if (flags.json) return printJson(output, { dropped: wanted.map((session) => session.name) });
        output.out(`dropped ${wanted.length} unfinished upload${wanted.length === 1 ? '' : 's'}`);
      } finally {
        await opened.close();
      }
    });
}
