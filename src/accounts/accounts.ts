import { createHash, randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { FerryError } from '../protocol/errors.js';
import { checkName } from '../protocol/names.js';
import type { MetaStore } from '../store/meta-store.js';
import type { Role, TokenRecord, UserRecord } from '../store/records.js';
import { type ScryptCost, defaultScryptCost, hashPassword, verifyPassword } from './password-hash.js';

export const roles: readonly Role[] = ['read', 'write', 'admin'];
const userNamePattern = /^[A-Za-z0-9._-]{1,64}$/u;
export const minPasswordCharacters = 8;
export const maxPasswordBytes = 1024;
/** A login session lapses after this long unused. */
export const tokenIdleMs = 30 * 24 * 60 * 60 * 1000;
/** A session's last use is written at most this often (not on every connection). */
const tokenTouchMs = 60 * 60 * 1000;
/** The name of the account a data directory's first start makes. */
export const firstAdminName = 'admin';

function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** Checks an account name: 1 to 64 of `[A-Za-z0-9._-]`, and not `.` or `..` (it names the default root). */
export function checkUserName(name: string): string {
  if (!userNamePattern.test(name) || name === '.' || name === '..') {
    throw new FerryError('EBADNAME', `${JSON.stringify(name.slice(0, 80))} is not a valid user name: 1 to 64 of A-Z a-z 0-9 . _ -`);
  }
  return name;
}

/** Checks a new password: at least 8 characters, at most 1,024 bytes. */
export function checkPassword(password: string): string {
  if ([...password].length < minPasswordCharacters)
    throw new FerryError('EUSAGE', `a password needs at least ${minPasswordCharacters} characters`);
  if (Buffer.byteLength(password) > maxPasswordBytes) throw new FerryError('EUSAGE', `a password may be at most ${maxPasswordBytes} bytes`);
  return password;
}

export function checkRole(role: string): Role {
  if (!(roles as readonly string[]).includes(role)) throw new FerryError('EUSAGE', `no role ${role}: one of ${roles.join(', ')}`);
  return role as Role;
}

/**
 * A root as stored: `''` for the whole store, else a valid name prefix ending in `/` (`team/`).
 * Given as `team`, `team/` or `/` (the whole store).
 */
export function normalizeRoot(root: string): string {
  const trimmed = root.replace(/^\/+|\/+$/gu, '');
  if (trimmed === '') return '';
  checkName(trimmed);
  return `${trimmed}/`;
}

/** The account fields an admin sets. */
export interface AccountSettings {
  role?: Role;
  /** As `normalizeRoot` takes it. Default: `NAME/` for read and write users, the whole store for admins. */
  root?: string;
  /** Bytes; null removes the limit. */
  quotaBytes?: number | null;
}

/** A random password of 24 characters from a 64-symbol alphabet: 144 bits, printable, no quoting needed. */
export function randomPassword(): string {
  return randomBytes(18).toString('base64url');
}

/**
 * The accounts of a data directory (docs/design.md, "Accounts"): adding, changing and removing
 * them, and checking a password. Passwords are kept only as scrypt hashes; checking one runs off
 * the main thread, at most `maxConcurrentChecks` at once, and takes the same work whether the
 * user exists or not (an unknown user is checked against a hash of nothing).
 */
export class Accounts {
  readonly #store: MetaStore;
  readonly #cost: ScryptCost;
  readonly #maxConcurrentChecks: number;
  #checksRunning = 0;
  readonly #waitingChecks: (() => void)[] = [];
  /** Checked against when the user does not exist: the same scrypt work as a real check. */
  #decoyHash: Promise<string> | undefined;

  /** Where the first admin's password is written (0600), and removed once it is changed. */
  readonly #adminPasswordFile: string | undefined;

  constructor(store: MetaStore, options: { cost?: ScryptCost; maxConcurrentChecks?: number; adminPasswordFile?: string } = {}) {
    this.#store = store;
    this.#cost = options.cost ?? defaultScryptCost;
    this.#maxConcurrentChecks = options.maxConcurrentChecks ?? 4;
    this.#adminPasswordFile = options.adminPasswordFile;
  }

  /** Password checks waiting for one of the `maxConcurrentChecks` places. */
  get checksWaiting(): number {
    return this.#waitingChecks.length;
  }

  list(): UserRecord[] {
    return this.#store.users();
  }

  get(name: string): UserRecord | undefined {
    return this.#store.user(name);
  }

  /** Adds an account: EEXIST if the name is taken. */
  async add(name: string, password: string, settings: AccountSettings = {}): Promise<UserRecord> {
    checkUserName(name);
    checkPassword(password);
    const role = settings.role ?? 'write';
    const user: UserRecord = {
      name,
      passwordHash: await hashPassword(password, this.#cost),
      role,
      root: settings.root === undefined ? (role === 'admin' ? '' : `${name}/`) : normalizeRoot(settings.root),
      created: Date.now(),
      ...(settings.quotaBytes === undefined || settings.quotaBytes === null ? {} : { quotaBytes: settings.quotaBytes }),
    };
    if (!(await this.#store.addUser(user))) throw new FerryError('EEXIST', `a user ${name} already exists`);
    return user;
  }

  async remove(name: string): Promise<void> {
    if (!(await this.#store.removeUser(name))) throw new FerryError('ENOENT', `no user ${name}`);
  }

  /** Sets a new password; every login session of the account ends. */
  async setPassword(name: string, password: string): Promise<void> {
    checkPassword(password);
    const user = this.#existing(name);
    await this.#store.saveUserEndingSessions({ ...user, passwordHash: await hashPassword(password, this.#cost) });
    if (name === firstAdminName && this.#adminPasswordFile) await rm(this.#adminPasswordFile, { force: true });
  }

  /** Changes an account's role, root or quota. */
  async update(name: string, settings: AccountSettings): Promise<UserRecord> {
    const { quotaBytes: previousQuota, ...user } = this.#existing(name);
    const quotaBytes = settings.quotaBytes === undefined ? previousQuota : settings.quotaBytes;
    const updated: UserRecord = {
      ...user,
      ...(settings.role === undefined ? {} : { role: settings.role }),
      ...(settings.root === undefined ? {} : { root: normalizeRoot(settings.root) }),
      ...(quotaBytes === undefined || quotaBytes === null ? {} : { quotaBytes }),
    };
    await this.#store.saveUser(updated);
    return updated;
  }

  /**
   * The account `name` if `password` is its password, else undefined: the same answer, after the
   * same work, for an unknown user and a wrong password. Records the login time on success.
   */
  async authenticate(name: string, password: string): Promise<UserRecord | undefined> {
    const user = userNamePattern.test(name) ? this.#store.user(name) : undefined;
    this.#decoyHash ??= hashPassword(randomPassword(), this.#cost);
    const hash = user?.passwordHash ?? (await this.#decoyHash);
    const matches = await this.#limited(() => verifyPassword(password.slice(0, maxPasswordBytes), hash));
    if (!user || !matches) return undefined;
    const loggedIn = { ...user, lastLogin: Date.now() };
    await this.#store.saveUser(loggedIn);
    return loggedIn;
  }

  /** A new login session for `user`: its token (only the token's SHA-256 is stored) and when it lapses if unused. */
  async issueToken(user: UserRecord, now = Date.now()): Promise<{ token: string; expires: number }> {
    const token = randomBytes(32).toString('base64url');
    await this.#store.saveToken(tokenHash(token), { user: user.name, created: now, used: now });
    return { token, expires: now + tokenIdleMs };
  }

  /** The account a token logs in as, if it is a live session (used within `tokenIdleMs`); marks it used. */
  async userOfToken(token: string, now = Date.now()): Promise<UserRecord | undefined> {
    const hash = tokenHash(token);
    const record: TokenRecord | undefined = this.#store.token(hash);
    if (!record) return undefined;
    const user = this.#store.user(record.user);
    if (!user || now - record.used > tokenIdleMs) {
      await this.#store.removeToken(hash);
      return undefined;
    }
    if (now - record.used > tokenTouchMs) await this.#store.saveToken(hash, { ...record, used: now });
    return user;
  }

  /** Ends a login session (`logout`). */
  async revokeToken(token: string): Promise<void> {
    await this.#store.removeToken(tokenHash(token));
  }

  /**
   * A data directory with no account gets `admin`, with a random password: returned (to be shown
   * once), else undefined.
   */
  async createFirstAdmin(): Promise<string | undefined> {
    if (this.#store.users().length > 0) return undefined;
    const password = randomPassword();
    try {
      await this.add(firstAdminName, password, { role: 'admin' });
    } catch (error) {
      // Another process made the first account meanwhile: nothing to show.
      if (error instanceof FerryError && error.code === 'EEXIST') return undefined;
      throw error;
    }
    if (this.#adminPasswordFile) await writeFile(this.#adminPasswordFile, `${password}\n`, { mode: 0o600 });
    return password;
  }

  #existing(name: string): UserRecord {
    const user = this.#store.user(name);
    if (!user) throw new FerryError('ENOENT', `no user ${name}`);
    return user;
  }

  /** Runs `check` once fewer than `maxConcurrentChecks` are running: a login storm queues, it does not take every thread. */
  async #limited<T>(check: () => Promise<T>): Promise<T> {
    if (this.#checksRunning >= this.#maxConcurrentChecks) await new Promise<void>((resolve) => this.#waitingChecks.push(resolve));
    else this.#checksRunning += 1;
    try {
      return await check();
    } finally {
      const next = this.#waitingChecks.shift();
      if (next) next();
      else this.#checksRunning -= 1;
    }
  }
}
