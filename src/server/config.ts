import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { defaultMaxControlBytes, maxChunkBytesCeiling } from '../protocol/frames.js';
import { serverDefaults } from './defaults.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/**
 * Server settings. Every limit is finite and carries its unit in its name. Validated once by
 * `resolveServerConfig`; unknown keys are refused; the result is frozen.
 */
const serverConfigSchema = z.strictObject({
  /** Root of the data directory: files/, partial/ and db/ live under it. */
  dataDir: z.string().min(1),
  /** Size of a chunk: the unit of hashing, writing, and resuming. */
  chunkSizeBytes: z.number().int().min(64 * KiB).max(maxChunkBytesCeiling).default(serverDefaults.chunkSizeBytes),
  /** Worker threads in the chunk pool. */
  workers: z.number().int().min(1).max(64).default(Math.max(2, Math.min(availableParallelism(), 8))),
  /** Chunk buffers in flight (being received, written, read or sent) across all connections. */
  inflightBudgetBytes: z.number().int().min(1).default(serverDefaults.inflightBudgetBytes),
  /** Chunks one connection may have in flight at once, so one client cannot take the whole budget. */
  maxInflightChunksPerConnection: z.number().int().min(1).max(64).default(3),
  /** Largest control frame accepted. */
  maxControlBytes: z.number().int().min(4 * KiB).max(16 * MiB).default(defaultMaxControlBytes),
  /**
   * Written-but-unrecorded bytes of an upload before the server syncs them and records them in
   * LMDB. Reading pauses at twice this, which bounds what a crash makes clients send again.
   */
  syncEveryBytes: z.number().int().min(1).default(serverDefaults.syncEveryBytes),
  /** Upper bound on how long written chunks wait for that checkpoint. */
  syncIntervalMs: z.number().int().min(1).default(1000),
  /** An upload session untouched for this long is expired and its partial data removed. */
  sessionTtlMs: z.number().int().min(1).default(serverDefaults.sessionTtlMs),
  /** How long a reconnecting upload waits for its old connection to end by itself before taking over. */
  takeoverGraceMs: z.number().int().min(0).default(3000),
  /** Chunks a download reads ahead of what it has sent. */
  downloadReadaheadChunks: z.number().int().min(1).max(16).default(2),
  /** Connections open at once; one more is refused with EBUSY before it is closed. */
  maxConnections: z.number().int().min(1).default(serverDefaults.maxConnections),
  /** Connections open at once from one IP address. */
  maxConnectionsPerIp: z.number().int().min(1).default(serverDefaults.maxConnectionsPerIp),
  /** A connection that has not completed its hello this long after connecting is closed. */
  handshakeTimeoutMs: z.number().int().min(1).default(serverDefaults.handshakeTimeoutMs),
  /** A connection with nothing in progress (no request, no transfer) silent this long is closed. */
  idleTimeoutMs: z.number().int().min(1).default(serverDefaults.idleTimeoutMs),
  /**
   * A connection with a transfer in progress on which no byte moves either way for this long is
   * closed (uploads are kept for resuming). Time the server itself holds the socket paused (waiting
   * for a buffer or a checkpoint) does not count.
   */
  stallTimeoutMs: z.number().int().min(1).default(serverDefaults.stallTimeoutMs),
  /** Largest file an upload may declare. */
  maxFileSizeBytes: z.number().int().min(0).default(serverDefaults.maxFileSizeBytes),
  /** Stored files plus the declared sizes of unfinished uploads may not exceed this. */
  maxStorageBytes: z.number().int().min(0).default(serverDefaults.maxStorageBytes),
  /** On shutdown, how long connections get to land their chunks and close before they are cut. */
  shutdownGraceMs: z.number().int().min(0).default(serverDefaults.shutdownGraceMs),
});

export type ServerConfigInput = z.input<typeof serverConfigSchema>;
export type ServerConfig = Readonly<z.output<typeof serverConfigSchema>>;

export function resolveServerConfig(input: ServerConfigInput): ServerConfig {
  const parsed = serverConfigSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new RangeError(`invalid server option ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`);
  }
  const config = parsed.data;
  if (config.inflightBudgetBytes < 2 * config.chunkSizeBytes) {
    throw new RangeError(`inflightBudgetBytes (${config.inflightBudgetBytes}) must hold at least two chunks of ${config.chunkSizeBytes} bytes`);
  }
  return Object.freeze(config);
}
