import type { Command } from 'commander';
import { hostPort } from '../units.js';
import { FerryError } from '../protocol/errors.js';
import { KnownServersFile } from './known-servers.js';
import { type Output, printJson } from './output.js';
import { parseServerAddress } from './units.js';

/** `ferry trust list` and `ferry trust forget HOST:PORT`: the server certificates this user's client remembers. */
export function addTrustCommand(program: Command, output: Output, env: NodeJS.ProcessEnv): void {
  const trust = program
    .command('trust')
    .description("the servers' certificates this client remembers (trusted at the first connection, as ssh's known_hosts)");

  trust
    .command('list')
    .description('show each remembered server and its certificate fingerprint')
    .option('--json', 'print a machine-readable result on stdout')
    .action(async (flags: { json?: boolean }) => {
      const known = new KnownServersFile(env);
      const servers = await known.list();
      if (flags.json) return printJson(output, servers);
      if (servers.length === 0) return output.err(`no server remembered yet (${known.file})`);
      const width = Math.max(...servers.map((server) => server.address.length));
      for (const { address, fingerprint } of servers) output.out(`${address.padEnd(width)}  ${fingerprint}`);
    });

  trust
    .command('forget <host:port>')
    .description("forget a server's certificate: the next connection trusts the one it meets (do this only when you know why it changed)")
    .option('--json', 'print a machine-readable result on stdout')
    .action(async (server: string, flags: { json?: boolean }) => {
      let address: string;
      try {
        const parsed = parseServerAddress(server);
        address = hostPort(parsed.host, parsed.port);
      } catch (error) {
        throw new FerryError('EUSAGE', `${server}: ${(error as Error).message}`);
      }
      const known = new KnownServersFile(env);
      if (!(await known.forget(address))) throw new FerryError('ENOENT', `${address} is not in ${known.file}`);
      if (flags.json) printJson(output, { server: address, forgotten: true });
      else output.out(`forgot the certificate of ${address}; the next connection to it trusts the one it meets`);
    });
}
