import { FerryError } from '../protocol/errors.js';
import type { AccountInfo, Op } from '../protocol/messages.js';
import { checkName } from '../protocol/names.js';
import type { Role, UserRecord } from '../store/records.js';

/** What each operation needs: nothing (before login), or at least this role. */
const neededRole: Record<Op, Role | 'anyone'> = {
  hello: 'anyone',
  login: 'anyone',
  ping: 'anyone',
  logout: 'read',
  whoami: 'read',
  list: 'read',
  uploads: 'read',
  stat: 'read',
  info: 'read',
  log: 'read',
  hashes: 'read',
  get: 'read',
  getDirect: 'read',
  getDirectEnd: 'read',
  put: 'write',
  putJoin: 'write',
  putEnd: 'write',
  putWhole: 'write',
  delete: 'write',
};
const rank: Record<Role, number> = { read: 0, write: 1, admin: 2 };

/**
 * The store as one logged-in account sees it: its names are relative to its root (the name
 * guard runs on the name it gave, then the root is joined, so no name leaves the root), and its
 * role decides what it may do.
 */
export class AccountView {
  readonly name: string;
  readonly role: Role;
  /** `''` (the whole store) or a folder ending in `/`. */
  readonly root: string;
  /** Bytes the account may hold under its root (stored plus unfinished uploads), if it is limited. */
  readonly quotaBytes: number | undefined;

  constructor(user: UserRecord) {
    this.name = user.name;
    this.role = user.role;
    this.root = user.root;
    this.quotaBytes = user.quotaBytes;
  }

  get info(): AccountInfo {
    return { user: this.name, role: this.role, root: this.root };
  }

  get isAdmin(): boolean {
    return this.role === 'admin';
  }

  /** A name the account gave, checked, as stored. */
  stored(name: string): string {
    return this.root + checkName(name);
  }

  /** A listing's prefix or cursor the account gave, as stored (checked for length by the caller). */
  storedPrefix(prefix: string | undefined): string {
    return this.root + (prefix ?? '');
  }

  /** Whether a stored name lies under the account's root. */
  owns(stored: string): boolean {
    return stored.startsWith(this.root);
  }

  /** A stored name under the root, as the account sees it. */
  shown(stored: string): string {
    return this.owns(stored) ? stored.slice(this.root.length) : stored;
  }

  /**
   * An error of the upload rules, which speak of stored names, in the account's names: the root
   * is taken off every name the message starts with or quotes after a space, colon or parenthesis.
   */
  inOwnNames(error: unknown): unknown {
    if (this.root === '' || !(error instanceof FerryError)) return error;
    const escaped = this.root.replace(/[.*+?^${}()|[\]\\]/gu, '\\$&');
    const message = error.message.replace(new RegExp(`(^|[\\s(:,])${escaped}`, 'gu'), '$1');
    return message === error.message ? error : new FerryError(error.code, message, { cause: error });
  }
}

/**
 * Refuses an operation the connection may not run: EAUTH before a login (every operation but
 * hello, login and ping), EPERM for a role below what it needs.
 */
export function checkAccess(op: Op, account: AccountView | undefined): void {
  const needed = neededRole[op];
  if (needed === 'anyone') return;
  if (!account) throw new FerryError('EAUTH', 'authentication required: log in first');
  if (rank[account.role] < rank[needed]) {
    throw new FerryError('EPERM', `${op} needs the ${needed} role; ${account.name} has ${account.role}`);
  }
}

/** The account of a request that passed `checkAccess` (EAUTH otherwise, which it never is then). */
export function accountOf(holder: { readonly account: AccountView | undefined }): AccountView {
  if (!holder.account) throw new FerryError('EAUTH', 'authentication required: log in first');
  return holder.account;
}
