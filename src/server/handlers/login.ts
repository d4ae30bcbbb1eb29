import { FerryError } from '../../protocol/errors.js';
import type { AccountInfo, LoginResult } from '../../protocol/messages.js';
import type { UserRecord } from '../../store/records.js';
import { accountOf } from '../account-view.js';
import type { RequestScope } from '../request-context.js';
import type { Handler, ScopedHandler } from './types.js';

/** The same words for an unknown user and a wrong password: a failure tells nothing of which. */
const loginFailed = 'login failed: unknown user or wrong password';

/**
 * The account `name` if `password` is its password; EAUTH otherwise, in the same words and after
 * the same work for an unknown user. Repeated failures from one address or for one name are
 * slowed (LoginThrottle). The one password check of every side (a Ferry login, HTTP).
 */
export async function checkPassword(scope: RequestScope, name: string, password: string): Promise<UserRecord> {
  const { accounts, logins } = scope.services;
  const address = scope.clientAddress.replace(/:\d+$/u, '');
  await logins.wait(address, name);
  const user = await accounts.authenticate(name, password);
  if (!user) {
    logins.failed(address, name);
    scope.log.info({ user: name.slice(0, 64) }, 'login failed');
    throw new FerryError('EAUTH', loginFailed);
  }
  return user;
}

/**
 * Checks a password and opens a login session: the connection is authenticated, and the reply's
 * token logs in later connections (`hello` with `token`) without the password.
 */
export const login: Handler<'login'> = async (request, ctx) => {
  if (ctx.account) throw new FerryError('EPROTO', `this connection is logged in as ${ctx.account.name} already`);
  const user = await checkPassword(ctx, request.user, request.password);
  const { token, expires } = await ctx.services.accounts.issueToken(user);
  const account = ctx.authenticate(user, token);
  ctx.log.info('logged in');
  const result: LoginResult = { ...account.info, token, expires: new Date(expires).toISOString() };
  return { result };
};

/** Ends the login session: its token no longer logs anything in, and the connection is anonymous again. */
export const logout: Handler<'logout'> = async (_request, ctx) => {
  const token = ctx.logout();
  if (token !== undefined) await ctx.services.accounts.revokeToken(token);
  return { result: {} };
};

export const whoami: ScopedHandler<'whoami'> = (_request, ctx) => {
  const result: AccountInfo = accountOf(ctx).info;
  return { result };
};
