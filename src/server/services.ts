import type { Logger } from 'pino';
import type { Accounts } from '../accounts/accounts.js';
import type { Sha256Thread } from '../hashing/sha256-thread.js';
import type { MetaStore } from '../store/meta-store.js';
import type { ByteStore } from './byte-store.js';
import type { ChunkBuffers } from './chunk-buffers.js';
import type { ChunkWorkers } from './chunk-workers.js';
import type { RegisteredConnection } from './connection-registry.js';
import type { ServerConfig } from './config.js';
import type { DataLayout } from './data-layout.js';
import type { DescriptorBudget } from './descriptor-budget.js';
import type { LoginThrottle } from './login-throttle.js';
import type { SharedCatalog } from './shared-catalog.js';
import type { UploadRegistry } from './upload-registry.js';

/** What every connection shares: one instance per server, made once and never changed. */
export interface ServerServices {
  readonly config: ServerConfig;
  readonly layout: DataLayout;
  /** Where the bytes of files and unfinished uploads live: the data directory, or a shared S3 store. */
  readonly bytes: ByteStore;
  /** On a shared store: brings LMDB's file records (a cache there) up to date before they are read. */
  readonly catalog: SharedCatalog | undefined;
  readonly store: MetaStore;
  readonly workers: ChunkWorkers;
  readonly buffers: ChunkBuffers;
  /** Buffers for the data of whole small files (`putWhole`), apart from the chunk budget: one per whole put being received or written. */
  readonly wholePutBuffers: ChunkBuffers;
  /** The thread that keeps large uploads' running SHA-256s. */
  readonly sha256: Sha256Thread;
  /** The upload rules: names being written, quota, sessions and their hash states. */
  readonly uploads: UploadRegistry;
  readonly logger: Logger;
  /** File descriptors: sockets and open transfer files count against it. */
  readonly descriptors: DescriptorBudget;
  readonly startedAt: number;
  /** Connections open now. */
  clientCount(): number;
  /** The accounts, their passwords and login sessions. */
  readonly accounts: Accounts;
  /** Slows repeated failed logins. */
  readonly logins: LoginThrottle;
  /** The connection gate (ConnectionRegistry): `establish` lets a connection past it, or throws EBUSY. */
  readonly gate: { establish(connection: RegisteredConnection): void };
}
