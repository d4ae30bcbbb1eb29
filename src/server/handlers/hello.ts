import { FerryError } from '../../protocol/errors.js';
import { protocolVersion } from '../../protocol/frames.js';
import { ferryVersion } from '../../version.js';
import type { Handler } from './types.js';

/** What this server can do; clients look here before using an optional feature. */
export const serverCapabilities = ['resume', 'xxh64', 'sha256', 'list-paging', 'uploads', 'put-unsized'];

export const hello: Handler<'hello'> = (request, ctx) => {
  if (ctx.greeted) throw new FerryError('EPROTO', 'hello was already received');
  if (request.protocol !== protocolVersion) {
    throw new FerryError('EVERSION', `protocol version ${request.protocol} is not supported; this server speaks ${protocolVersion}`);
  }
  ctx.markGreeted();
  const { config } = ctx.services;
  return {
    result: {
      protocol: protocolVersion,
      server: `ferry/${ferryVersion}`,
      chunkSize: config.chunkSizeBytes,
      maxControlBytes: config.maxControlBytes,
      capabilities: serverCapabilities,
    },
  };
};
