import { FerryError } from '../../protocol/errors.js';
import type { AccountInfo, LoginResult } from '../../protocol/messages.js';
import { accountOf } from '../account-view.js';
import type { Handler } from './types.js';

/** The same words for an unknown user and a wrong password: a failure tells nothing of which. */
const loginFailed = 'login failed: unknown user or wrong password';

/**
 * Checks a password and opens a login session: the connection is authenticated, and the reply's
 * token logs in later connections (`hello` with `token`) without the password.
 */
export const login: Handler<'login'> = async (request, ctx) => {
  if (ctx.account) throw new FerryError('EPROTO', `this connection is logged in as ${ctx.account.name} already`);
  const { accounts, logins } = ctx.services;
  const address = ctx.clientAddress.replace(/:\d+$/u, '');
  await logins.wait(address, request.user);
  const user = await accounts.authenticate(request.user, request.password);
  if (!user) {
    logins.failed(address, request.user);
    ctx.log.info({ user: request.user.slice(0, 64) }, 'login failed');
    throw new FerryError('EAUTH', loginFailed);
  }
  const { token, expires } = await accounts.issueToken(user);
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

export const whoami: Handler<'whoami'> = (_request, ctx) => {
  const result: AccountInfo = accountOf(ctx).info;
  return { result };
};
