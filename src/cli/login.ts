import type { Command } from 'commander';
import { FerryError } from '../protocol/errors.js';
import type { AccountInfo } from '../protocol/messages.js';
import { hostPort } from '../units.js';
import { printJson } from './output.js';
import { type CliContext, type ClientFlags, clientCommand, clientTlsFor, serverAddressOption, withClient } from './client-command.js';

/** `alice (write, root alice/)`. */
export function describeAccount(account: AccountInfo): string {
  return `${account.user} (${account.role}, root ${account.root === '' ? 'the whole store' : account.root})`;
}

/** `ferry login`, `ferry logout` (not in the shell: it logs in once, when it starts) and `ferry whoami`. */
export function addLoginCommands(program: Command, context: CliContext): void {
  const { output } = context;
  if (!context.shell) {
    clientCommand(program, context, 'login', 'log in to a server and keep the session for the next commands')
      .option('--user <name>', 'account name (default: $FERRY_USER, else asked)')
      .option('--password-stdin', 'read the password from the first line of standard input (for scripts)')
      .action(async (flags: ClientFlags & { user?: string; passwordStdin?: boolean }) => {
        // Loaded by the command that uses them, not at every start (node:readline, the credentials file).
        const [{ refuseClearText, saveLogin }, { readPassword }] = await Promise.all([
          import('./credentials.js'),
          import('./password-input.js'),
        ]);
        const address = serverAddressOption(flags.server);
        const server = hostPort(address.host, address.port);
        const tls = await clientTlsFor(context, flags);
        if (tls === false) refuseClearText(address.host, flags.insecure);
        const user = flags.user ?? context.env['FERRY_USER'];
        if (!user) throw new FerryError('EUSAGE', 'login needs --user NAME (or FERRY_USER)');
        const password = await readPassword({ stdin: flags.passwordStdin ?? false, prompt: `password for ${user} at ${server}: ` });
        const { FerryClient } = await import('../client/client.js');
        const client = new FerryClient({ ...address, tls, credentials: { user, password } });
        try {
          const session = await client.login();
          const fingerprint = client.serverFingerprint;
          const file = await saveLogin(context.env, address.host, address.port, {
            user,
            token: session.token,
            expires: session.expires,
            ...(fingerprint === undefined ? {} : { fingerprint }),
          });
          if (flags.json)
            printJson(output, { server, user: session.user, role: session.role, root: session.root, expires: session.expires });
          else output.out(`logged in to ${server} as ${describeAccount(session)}; session kept in ${file}`);
        } finally {
          await client.close().catch(() => undefined);
        }
      });

    clientCommand(program, context, 'logout', 'end the session ferry login kept for a server, and forget it').action(
      async (flags: ClientFlags) => {
        const { forgetLogin, savedLogin } = await import('./credentials.js');
        const address = serverAddressOption(flags.server);
        const server = hostPort(address.host, address.port);
        const saved = await savedLogin(context.env, address.host, address.port);
        if (!saved) throw new FerryError('ENOENT', `not logged in to ${server}`);
        // Ended on the server first; a session the server no longer knows is forgotten all the same.
        await withClient(context, { ...flags, token: saved.token }, (client) => client.logout()).catch((error: unknown) => {
          if (!(error instanceof FerryError && error.code === 'EAUTH')) throw error;
        });
        await forgetLogin(context.env, address.host, address.port);
        if (flags.json) printJson(output, { server, user: saved.user, loggedOut: true });
        else output.out(`logged out of ${server} (${saved.user})`);
      },
    );
  }

  clientCommand(program, context, 'whoami', 'show who you are logged in as: name, role, root').action(async (flags: ClientFlags) => {
    const account = await withClient(context, flags, (client) => client.whoami());
    if (flags.json) printJson(output, account);
    else output.out(describeAccount(account));
  });
}
