/**
 * The one place tests get their logins. Every test server gets the account `tester` (an admin,
 * root the whole store, so names mean what they meant before accounts) and a session token for
 * it, kept here by port: the typed client, the raw client and CLI runs pick it up from the port
 * they talk to. A test about anonymous refusal or another account says so explicitly.
 */
import { join } from 'node:path';
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

const tokensByPort = new Map<number, string>();

/** The tester's session token for the server on `port`, if it is a test server. */
export function tokenFor(port: number): string | undefined {
  return tokensByPort.get(port);
}

export function rememberToken(port: number, token: string): void {
  tokensByPort.set(port, token);
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

/** Environment for a CLI run against `port`: the tester's token, when it is a test server. */
export function loginEnv(port: number | undefined): Record<string, string> {
  const token = port === undefined ? undefined : tokenFor(port);
  return token === undefined ? {} : { FERRY_TOKEN: token };
}

/** The port a CLI command line (or its FERRY_SERVER) talks to, if it names one. */
export function portOfArgs(args: readonly string[], env: Record<string, string> | undefined): number | undefined {
  const at = args.indexOf('--server');
  const server = at >= 0 ? args[at + 1] : env?.['FERRY_SERVER'];
  const match = server === undefined ? null : /:(\d+)$/u.exec(server);
  return match ? Number(match[1]) : undefined;
}

/** Client options that log in as the test account of the server on `port` (spread into `new FerryClient({...})`). */
export function loginAt(port: number): { credentials?: { token: string } } {
  const token = tokenFor(port);
  return token === undefined ? {} : { credentials: { token } };
}
