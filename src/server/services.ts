import type { Logger } from 'pino';
import type { MetaStore } from '../store/meta-store.js';
import type { ChunkBuffers } from './chunk-buffers.js';
import type { ChunkWorkers } from './chunk-workers.js';
import type { ServerConfig } from './config.js';
import type { DataLayout } from './data-layout.js';
import type { UploadTransfer } from './upload-transfer.js';

/** Holds a name in `activeUploads` while its `put` is being prepared, before its UploadTransfer exists. */
export const nameClaimed: unique symbol = Symbol('name claimed');

/** What every connection shares: one instance per server. */
export interface ServerServices {
  readonly config: ServerConfig;
  readonly layout: DataLayout;
  readonly store: MetaStore;
  readonly workers: ChunkWorkers;
  readonly buffers: ChunkBuffers;
  readonly logger: Logger;
  /** Uploads attached to a live connection (or being set up), by name: one writer per name. */
  readonly activeUploads: Map<string, UploadTransfer | typeof nameClaimed>;
  readonly startedAt: number;
  clients: number;
}
