import { codecCapabilities } from '../../compression/negotiation.js';
import { FerryError } from '../../protocol/errors.js';
import { capability } from '../../protocol/capabilities.js';
import { protocolVersion } from '../../protocol/frames.js';
import type { HelloResult } from '../../protocol/messages.js';
import { ferryVersion } from '../../version.js';
import type { ServerServices } from '../services.js';
import type { Handler } from './types.js';

/** What this server can do; clients look here before using an optional feature. `compress:<codec>` for each codec it has. */
export const serverCapabilities: string[] = [
  ...Object.values(capability).filter((offered) => offered !== capability.getDirect),
  ...codecCapabilities(),
];

/**
 * What a server on a shared S3 store can do: not parallel streams for an upload (its running
 * SHA-256 must be fed in order: it cannot read back an unfinished upload); see docs/design.md,
 * "The store interface".
 */
const sharedStoreCapabilities = serverCapabilities.filter((offered) => offered !== capability.putJoin);

/** The capabilities of the server these services make up. */
export function capabilitiesOf(services: ServerServices): string[] {
  if (!services.catalog) return serverCapabilities;
  return services.bytes.directReads ? [...sharedStoreCapabilities, capability.getDirect] : sharedStoreCapabilities;
}

/**
 * The handshake. With a `token` (from an earlier `login`) the connection is logged in at once; an
 * unknown or lapsed one is EAUTH, and the connection may say hello again without it.
 */
export const hello: Handler<'hello'> = async (request, ctx) => {
  if (ctx.greeted) throw new FerryError('EPROTO', 'hello was already received');
  if (request.protocol !== protocolVersion) {
    throw new FerryError('EVERSION', `protocol version ${request.protocol} is not supported; this server speaks ${protocolVersion}`);
  }
  const user = request.token === undefined ? undefined : await ctx.services.accounts.userOfToken(request.token);
  if (request.token !== undefined && !user) {
    throw new FerryError('EAUTH', 'the session token is not valid (it lapsed, or was logged out): log in again');
  }
  ctx.markGreeted();
  const account = user && request.token !== undefined ? ctx.authenticate(user, request.token) : undefined;
  const { config } = ctx.services;
  const result: HelloResult = {
    protocol: protocolVersion,
    server: `ferry/${ferryVersion}`,
    chunkSize: config.chunkSizeBytes,
    maxControlBytes: config.maxControlBytes,
    capabilities: capabilitiesOf(ctx.services),
  };
  if (account) result.account = account.info;
  return { result };
};
