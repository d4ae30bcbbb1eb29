import { FerryError } from '../../protocol/errors.js';
import { protocolVersion } from '../../protocol/frames.js';
import { ferryVersion } from '../../version.js';
import type { Handler } from './types.js';

/** What this server can do; clients look here before using an optional feature. */
export const serverCapabilities = ['resume', 'xxh64', 'sha256', 'list-paging'];

export const hello: Handler<'hello'> = async (connection, request) => {
  if (connection.greeted) throw new FerryError('EPROTO', 'hello was already received');
  if (request.protocol !== protocolVersion) {
    throw new FerryError('EVERSION', `protocol version ${request.protocol} is not supported; this server speaks ${protocolVersion}`);
  }
  connection.markGreeted();
  const { config } = connection.services;
  return {
    result: {
      protocol: protocolVersion,
      server: `ferry/${ferryVersion}`,
      chunkSize: config.chunkSizeBytes,
      maxChunkBytes: config.chunkSizeBytes,
      maxControlBytes: config.maxControlBytes,
      capabilities: serverCapabilities,
    },
  };
};
