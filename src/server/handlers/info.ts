import { protocolVersion } from '../../protocol/frames.js';
import { ferryVersion } from '../../version.js';
import { serverCapabilities } from './hello.js';
import type { Handler } from './types.js';

export const info: Handler<'info'> = (_request, ctx) => {
  const { store, config, workers, startedAt } = ctx.services;
  const { files, bytes } = store.stats();
  return {
    result: {
      version: ferryVersion,
      protocolVersion,
      chunkSize: config.chunkSizeBytes,
      files,
      bytes,
      uploads: store.sessions().length,
      clients: ctx.services.clientCount(),
      workers: Math.max(workers.threads, config.workers),
      uptimeSeconds: Math.floor((Date.now() - startedAt) / 1000),
      capabilities: serverCapabilities,
    },
  };
};
