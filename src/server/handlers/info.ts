import { protocolVersion } from '../../protocol/frames.js';
import { ferryVersion } from '../../version.js';
import { accountOf } from '../account-view.js';
import { capabilitiesOf } from './hello.js';
import type { ScopedHandler } from './types.js';

export const info: ScopedHandler<'info'> = (_request, ctx) => {
  const { store, config, workers, startedAt } = ctx.services;
  const account = accountOf(ctx);
  // An admin sees the whole store; anyone else what lies under their root.
  let { files, bytes } = store.stats();
  if (account.root !== '') {
    files = 0;
    bytes = 0;
    for (const file of store.filesFrom({ prefix: account.root })) {
      files += 1;
      bytes += file.size;
    }
  }
  return {
    result: {
      version: ferryVersion,
      protocolVersion,
      chunkSize: config.chunkSizeBytes,
      files,
      bytes,
      uploads: store.sessions().filter((session) => account.owns(session.name)).length,
      clients: ctx.services.clientCount(),
      workers: Math.max(workers.threads, config.workers),
      uptimeSeconds: Math.floor((Date.now() - startedAt) / 1000),
      capabilities: capabilitiesOf(ctx.services),
    },
  };
};
