/**
 * The one place tests get their logins and their trust in a server's certificate. Every test
 * server gets the account `tester` (an admin, root the whole store, so names mean what they meant
 * before accounts) and a session token for it; both, and the fingerprint of the certificate it
 * serves (none for a server started with --no-tls), are kept here by port: the typed client, the
 * raw client and CLI runs pick them up from the port they talk to. A test about anonymous
 * refusal, another account, clear text or trust on first use says so explicitly.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClientTls } from '../../src/client/server-trust.js';
import { Accounts } from '../../src/accounts/accounts.js';
import type { ScryptCost } from '../../src/accounts/password-hash.js';
import { FerryError } from '../../src/protocol/errors.js';
import { MetaStore } from '../../src/store/meta-store.js';

export const testUser = 'tester';
export const testPassword = 'tester-password';
/** scrypt at N=2^10 (about 1 ms): cheap for the tests that are not about its cost. */
export const testCost: ScryptCost = { logN: 10, r: 8, p: 1 };
/** For `createServer` configs: new password hashes at the test cost. */
export const testPasswordCost = { passwordCostLogN: testCost.logN };

/** What a test knows of the server on a port: the tester's token, and its certificate's fingerprint (undefined: clear text). */
export interface TestServerIdentity {
  token: string;
  fingerprint: string | undefined;
}

const serversByPort = new Map<number, TestServerIdentity>();

/** The tester's session token for the server on `port`, if it is a test server. */
export function tokenFor(port: number): string | undefined {
  return serversByPort.get(port)?.token;
}

/** What is known of the test server on `port`, if it is one. */
export function serverAt(port: number): TestServerIdentity | undefined {
  return serversByPort.get(port);
}

export function rememberServer(port: number, identity: TestServerIdentity): void {
  serversByPort.set(port, identity);
}

/**
 * How a client trusts the server on `port`: its certificate pinned, clear text for a --no-tls
 * server, or (a port that is no test server's) trust on first use.
 */
export function tlsAt(port: number): ClientTls | false | undefined {
  const server = serversByPort.get(port);
  if (!server) return undefined;
  return server.fingerprint === undefined ? false : { fingerprint: server.fingerprint };
}

/** Adds `tester` (if missing) to `accounts` and opens a session; returns its token. */
export async function provisionTester(accounts: Accounts): Promise<string> {
  await accounts.add(testUser, testPassword, { role: 'admin' }).catch((error: unknown) => {
    if (!(error instanceof FerryError && error.code === 'EEXIST')) throw error;
  });
  const user = accounts.get(testUser)!;
  return (await accounts.issueToken(user)).token;
}

/** The same, on a data directory no server holds open right now (before `ferry serve` starts on it). */
export async function provisionDataDir(dataDir: string): Promise<string> {
  const store = new MetaStore({ path: join(dataDir, 'db') });
  try {
    return await provisionTester(new Accounts(store, { cost: testCost }));
  } finally {
    await store.close();
  }
}

/**
 * The client configuration folder of this test process's CLI runs (XDG_CONFIG_HOME, and
 * XDG_CACHE_HOME inside it), so they never read or write the user's own: its `known_servers`
 * lists every test server's certificate, as if each had been met before.
 */
const cliConfigHome = mkdtempSync(join(tmpdir(), 'ferry-test-config-'));
process.once('exit', () => rmSync(cliConfigHome, { recursive: true, force: true }));

function writeKnownServers(): void {
  const lines = [...serversByPort].flatMap(([port, { fingerprint }]) => (fingerprint ? [`127.0.0.1:${port} ${fingerprint}\n`] : []));
  mkdirSync(join(cliConfigHome, 'ferry'), { recursive: true, mode: 0o700 });
  writeFileSync(join(cliConfigHome, 'ferry', 'known_servers'), lines.join(''), { mode: 0o600 });
}

/**
 * Environment for a CLI run against `port`: this process's client configuration folder (its
 * certificates known), the tester's token when it is a test server, and FERRY_NO_TLS for a
 * server in clear text.
 */
export function loginEnv(port: number | undefined): Record<string, string> {
  writeKnownServers();
  const server = port === undefined ? undefined : serversByPort.get(port);
  return {
    XDG_CONFIG_HOME: cliConfigHome,
    XDG_CACHE_HOME: join(cliConfigHome, 'cache'),
    ...(server ? { FERRY_TOKEN: server.token } : {}),
    ...(server && server.fingerprint === undefined ? { FERRY_NO_TLS: '1' } : {}),
  };
}

/** The port a CLI command line (or its FERRY_SERVER) talks to, if it names one. */
export function portOfArgs(args: readonly string[], env: Record<string, string> | undefined): number | undefined {
  const at = args.indexOf('--server');
  const server = at >= 0 ? args[at + 1] : env?.['FERRY_SERVER'];
  const match = server === undefined ? null : /:(\d+)$/u.exec(server);
  return match ? Number(match[1]) : undefined;
}

/** Client options that trust and log in as the test account of the server on `port` (spread into `new FerryClient({...})`). */
export function loginAt(port: number): { credentials?: { token: string }; tls?: ClientTls | false } {
  const server = serversByPort.get(port);
  const tls = tlsAt(port);
  return { ...(server ? { credentials: { token: server.token } } : {}), ...(tls === undefined ? {} : { tls }) };
}
