import { protocolVersion } from '../../protocol/frames.js';
import { ferryVersion } from '../../version.js';
import { serverCapabilities } from './hello.js';
import type { Handler } from './types.js';

export const info: Handler<'info'> = async (connection) => {
  const { store, config, workers, startedAt, clients } = connection.services;
  const { files, bytes } = store.stats();
  return {
    result: {
      version: ferryVersion,
      protocolVersion,
      chunkSize: config.chunkSizeBytes,
      files,
      bytes,
      clients,
      workers: Math.max(workers.threads, config.workers),
      uptimeSeconds: Math.floor((Date.now() - startedAt) / 1000),
      capabilities: serverCapabilities,
    },
  };
};
