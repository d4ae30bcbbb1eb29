import type { Test } from 'tap';
import { FerryClient } from '../../src/client/client.js';
import type { ServerConfigInput } from '../../src/server/config.js';
import { type FerryServer, type ServerOptions, createServer } from '../../src/server/server.js';
import { loginAt, provisionTester, rememberServer, testPasswordCost } from './accounts.js';
import { tempDir } from './temp-dir.js';

export interface RunningServer {
  server: FerryServer;
  port: number;
  dataDir: string;
  client(options?: { retries?: number; port?: number; anonymous?: boolean }): FerryClient;
  /** The session token of the test account, `tester` (an admin: the whole store). */
  token: string;
}

/**
 * A real server on 127.0.0.1, a free port, and a temp data dir, with the test account `tester`
 * logged in (see helpers/accounts.ts); closed when the test ends.
 */
export async function startServer(t: Test, config: Partial<ServerConfigInput> = {}, options: ServerOptions = {}): Promise<RunningServer> {
  const dataDir = config.dataDir ?? tempDir(t, 'ferry-data');
  const server = createServer({ workers: 2, ...testPasswordCost, ...config, dataDir }, options);
  const { port } = await server.listen(0, '127.0.0.1');
  const token = await provisionTester(server.accounts);
  rememberServer(port, { token, fingerprint: server.tlsFingerprint });
  const clients: FerryClient[] = [];
  t.teardown(async () => {
    await Promise.all(clients.map((client) => client.close()));
    await server.close();
  });
  return {
    server,
    port,
    dataDir,
    token,
    client(options = {}) {
      const client = new FerryClient({
        host: '127.0.0.1',
        port: options.port ?? port,
        retry: { retries: options.retries ?? 0, baseDelayMs: 10 },
        ...loginAt(options.port ?? port),
        ...(options.anonymous ? { credentials: undefined } : {}),
      });
      clients.push(client);
      return client;
    },
  };
}
