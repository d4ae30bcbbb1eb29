import type { Logger } from 'pino';
import type { MetaStore } from '../store/meta-store.js';
import type { ChunkBuffers } from './chunk-buffers.js';
import type { ChunkWorkers } from './chunk-workers.js';
import type { ServerConfig } from './config.js';
import type { DataLayout } from './data-layout.js';
import type { Sha256Thread } from '../hashing/sha256-thread.js';
import type { SessionHashState } from './in-order-hasher.js';
import type { UploadTransfer } from './upload-transfer.js';

/**
 * Holds a name in `activeUploads` while its `put` is being prepared, before its UploadTransfer
 * exists. Another put of the name waits for `settled`, then looks again.
 */
export class NameClaim {
  readonly settled: Promise<void>;
  readonly settle: () => void;

  constructor() {
    let settle!: () => void;
    this.settled = new Promise<void>((resolve) => {
      settle = resolve;
    });
    this.settle = settle;
  }
}

/** What every connection shares: one instance per server. */
export interface ServerServices {
  readonly config: ServerConfig;
  readonly layout: DataLayout;
  readonly store: MetaStore;
  readonly workers: ChunkWorkers;
  readonly buffers: ChunkBuffers;
  /** The thread that keeps each upload session's running SHA-256. */
  readonly sha256: Sha256Thread;
  /** Running SHA-256 progress by session id; lost on restart (the file is then hashed at the end). */
  readonly sessionHashes: Map<string, SessionHashState>;
  readonly logger: Logger;
  /** Uploads attached to a live connection (or being set up), by name: one writer per name. */
  readonly activeUploads: Map<string, UploadTransfer | NameClaim>;
  /**
   * Declared sizes of puts that passed the quota check but whose session is not saved yet, by
   * name: counted by the next check, so puts racing for the last free bytes cannot all pass.
   */
  readonly quotaReservations: Map<string, number>;
  readonly startedAt: number;
  clients: number;
}
