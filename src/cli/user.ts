import type { Command } from 'commander';
import type { AccountSettings, Accounts } from '../accounts/accounts.js';
import type { UserRecord } from '../store/records.js';
import { openDataDir } from './data-dir.js';
import { type Output, printJson } from './output.js';
import { FerryError } from '../protocol/errors.js';
import { formatBytes, formatLocalTime, parseSize } from './units.js';

interface UserFlags {
  data: string;
  json?: boolean;
  passwordStdin?: boolean;
  role?: string;
  root?: string;
  quota?: string;
}

/** An account as `ferry user list` shows it: never its password hash. */
function accountView(user: UserRecord): Record<string, unknown> {
  return {
    name: user.name,
    role: user.role,
    root: user.root,
    quotaBytes: user.quotaBytes ?? null,
    created: new Date(user.created).toISOString(),
    lastLogin: user.lastLogin === undefined ? null : new Date(user.lastLogin).toISOString(),
  };
}

function accountLine(user: UserRecord): string {
  const root = user.root === '' ? '(whole store)' : user.root;
  const quota = user.quotaBytes === undefined ? 'no quota' : `quota ${formatBytes(user.quotaBytes)}`;
  const login = user.lastLogin === undefined ? 'never logged in' : `last login ${formatLocalTime(user.lastLogin)}`;
  return `${user.name.padEnd(16)} ${user.role.padEnd(6)} ${root.padEnd(20)} ${quota.padEnd(16)} ${login}`;
}

/**
 * Runs `use` with the data directory's accounts: beside a running server or not (LMDB keeps the
 * two writers apart; the server reads an account at each login). Made on demand, so the client
 * commands never load the store.
 */
async function withAccounts<T>(data: string, use: (accounts: Accounts) => Promise<T>): Promise<T> {
  const { Accounts: AccountsOf } = await import('../accounts/accounts.js');
  const opened = await openDataDir(data, { exclusive: false, writable: true, create: true });
  try {
    return await use(new AccountsOf(opened.store, { adminPasswordFile: opened.layout.adminPasswordFile }));
  } finally {
    await opened.close();
  }
}

/** `--quota SIZE` (1GiB, 500MB, ...), or `none` for no limit of its own. */
function quotaOption(text: string): number | null {
  if (text === 'none') return null;
  try {
    return parseSize(text);
  } catch (error) {
    throw new FerryError('EUSAGE', `--quota: ${(error as Error).message}`);
  }
}

/** What `--role`, `--root` and `--quota` ask for. */
async function settingsOf(flags: UserFlags): Promise<AccountSettings> {
  const { checkRole } = await import('../accounts/accounts.js');
  return {
    ...(flags.role === undefined ? {} : { role: checkRole(flags.role) }),
    ...(flags.root === undefined ? {} : { root: flags.root }),
    ...(flags.quota === undefined ? {} : { quotaBytes: quotaOption(flags.quota) }),
  };
}

/** `ferry user add|list|remove|passwd|set`: the accounts of a data directory, on the server's machine. */
export function addUserCommand(program: Command, output: Output): void {
  const user = program.command('user').description("manage the accounts of a data directory (on the server's machine)");
  const withData = (command: Command): Command => command.option('--data <dir>', 'data directory', './var');

  withData(user.command('add <name>'))
    .description('add an account (asks for its password twice; --password-stdin reads one line)')
    .option('--password-stdin', 'read the password from the first line of standard input')
    .option('--role <role>', 'read (list, stat, download), write (and upload, delete) or admin (everything)', 'write')
    .option('--root <prefix>', 'the folder its names live under (default: NAME/; an admin: the whole store)')
    .option('--quota <size>', 'bytes it may hold under its root, unfinished uploads included (default: no limit of its own)')
    .action(async (name: string, flags: UserFlags) => {
      const settings = await settingsOf(flags);
      const { readPassword } = await import('./password-input.js'); // node:readline: not at every start
      const password = await readPassword({ stdin: flags.passwordStdin ?? false, prompt: `password for ${name}: `, confirm: true });
      const added = await withAccounts(flags.data, (accounts) => accounts.add(name, password, settings));
      const quota = added.quotaBytes === undefined ? '' : `, quota ${formatBytes(added.quotaBytes)}`;
      output.out(`added ${added.name}: ${added.role}, root ${added.root === '' ? '(whole store)' : added.root}${quota}`);
    });

  withData(user.command('list'))
    .description('list the accounts: name, role, root, last login')
    .option('--json', 'print a machine-readable result on stdout')
    .action(async (flags: UserFlags) => {
      const users = await withAccounts(flags.data, (accounts) => Promise.resolve(accounts.list()));
      if (flags.json) return printJson(output, users.map(accountView));
      output.out(users.length === 0 ? '(no accounts)' : users.map(accountLine).join('\n'));
    });

  withData(user.command('remove <name>'))
    .description('remove an account (its files stay) and end its sessions')
    .action(async (name: string, flags: UserFlags) => {
      await withAccounts(flags.data, (accounts) => accounts.remove(name));
      output.out(`removed ${name}`);
    });

  withData(user.command('passwd <name>'))
    .description("set an account's password (ends its sessions)")
    .option('--password-stdin', 'read the password from the first line of standard input')
    .action(async (name: string, flags: UserFlags) => {
      const { readPassword } = await import('./password-input.js'); // node:readline: not at every start
      const password = await readPassword({ stdin: flags.passwordStdin ?? false, prompt: `new password for ${name}: `, confirm: true });
      await withAccounts(flags.data, (accounts) => accounts.setPassword(name, password));
      output.out(`password of ${name} changed`);
    });

  withData(user.command('set <name>'))
    .description("change an account's role, root or quota")
    .option('--role <role>', 'read, write or admin')
    .option('--root <prefix>', 'the folder its names live under (/ for the whole store)')
    .option('--quota <size>', 'bytes it may hold under its root, unfinished uploads included; none: no limit of its own')
    .action(async (name: string, flags: UserFlags) => {
      const settings = await settingsOf(flags);
      const updated = await withAccounts(flags.data, (accounts) => accounts.update(name, settings));
      output.out(accountLine(updated));
    });
}
