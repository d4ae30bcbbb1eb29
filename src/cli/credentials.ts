import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Credentials } from '../client/client.js';
import { isLoopback } from '../net-address.js';
import { FerryError } from '../protocol/errors.js';
import { hostPort } from '../units.js';

/** What `ferry login` keeps per server: the session token, never the password. */
interface SavedLogin {
  user: string;
  token: string;
  /** ISO 8601: when the session lapses if unused. */
  expires: string;
  /** The certificate of the server that issued it: the token is sent to no other (absent: logged in in clear text). */
  fingerprint?: string;
}

type SavedLogins = Record<string, SavedLogin>;

/** `$XDG_CONFIG_HOME/ferry/`, else `~/.config/ferry/`: the client's saved logins and known servers. */
export function configDir(env: NodeJS.ProcessEnv): string {
  return join(env['XDG_CONFIG_HOME'] || join(env['HOME'] || homedir(), '.config'), 'ferry');
}

/** `$XDG_CONFIG_HOME/ferry/credentials.json`, else `~/.config/ferry/credentials.json`. */
export function credentialsFile(env: NodeJS.ProcessEnv): string {
  return join(configDir(env), 'credentials.json');
}

async function readSaved(file: string): Promise<SavedLogins> {
  try {
    const parsed: unknown = JSON.parse(await readFile(file, 'utf8'));
    return parsed !== null && typeof parsed === 'object' ? (parsed as SavedLogins) : {};
  } catch {
    return {}; // none yet, or unreadable: as if not logged in anywhere
  }
}

/** Writes the logins file whole. */
async function writeSaved(file: string, logins: SavedLogins): Promise<void> {
  await writePrivateFile(file, `${JSON.stringify(logins, null, 2)}\n`);
}

/** Writes one of the client's files whole: 0600 in a 0700 folder, by a rename (never half-written). */
export async function writePrivateFile(file: string, text: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, text, { mode: 0o600 });
  await rename(temporary, file);
}

/** The key a server's login is kept under: `host:port` as the user types it. */
function serverKey(host: string, port: number): string {
  return hostPort(host, port);
}

export async function saveLogin(env: NodeJS.ProcessEnv, host: string, port: number, login: SavedLogin): Promise<string> {
  const file = credentialsFile(env);
  const logins = await readSaved(file);
  logins[serverKey(host, port)] = login;
  await writeSaved(file, logins);
  return file;
}

export async function savedLogin(env: NodeJS.ProcessEnv, host: string, port: number): Promise<SavedLogin | undefined> {
  return (await readSaved(credentialsFile(env)))[serverKey(host, port)];
}

export async function forgetLogin(env: NodeJS.ProcessEnv, host: string, port: number): Promise<boolean> {
  const file = credentialsFile(env);
  const logins = await readSaved(file);
  if (!(serverKey(host, port) in logins)) return false;
  delete logins[serverKey(host, port)];
  await writeSaved(file, logins);
  return true;
}

/**
 * The credentials a client command uses, first found: `--token`, `FERRY_TOKEN`, `FERRY_USER` +
 * `FERRY_PASSWORD` (a login per run, its token kept in memory only), then what `ferry login`
 * saved for this server (sent only to the certificate it was issued under). None: the command
 * runs anonymous (and the server says EAUTH). In clear text (`--no-tls`) they go to another
 * machine only with `insecure`.
 */
export async function credentialsFor(
  env: NodeJS.ProcessEnv,
  server: { host: string; port: number },
  flags: { token?: string; insecure?: boolean; clearText: boolean },
): Promise<Credentials | undefined> {
  let credentials: Credentials | undefined;
  const token = flags.token ?? env['FERRY_TOKEN'];
  if (token) credentials = { token };
  else if (env['FERRY_USER'] && env['FERRY_PASSWORD'] !== undefined)
    credentials = { user: env['FERRY_USER'], password: env['FERRY_PASSWORD'] };
  else {
    const saved = await savedLogin(env, server.host, server.port);
    if (saved) credentials = { token: saved.token, ...(saved.fingerprint === undefined ? {} : { fingerprint: saved.fingerprint }) };
  }
  if (credentials && flags.clearText) refuseClearText(server.host, flags.insecure);
  return credentials;
}

/** Credentials in clear text to another machine: refused unless `insecure`. */
export function refuseClearText(host: string, insecure: boolean | undefined): void {
  if (isLoopback(host) || insecure) return;
  throw new FerryError(
    'EUSAGE',
    `refusing to send credentials in clear text to ${host} (--no-tls): anyone on the way could read them; use TLS, or add --insecure to send them anyway`,
  );
}
