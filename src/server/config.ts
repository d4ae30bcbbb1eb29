import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { defaultMaxControlBytes, maxChunkBytesCeiling } from '../protocol/frames.js';
import { serverDefaults as d, serverLimits as l } from './defaults.js';

const KiB = 1024;
const MiB = 1024 * KiB;

const count = (min: number, fallback: number): z.ZodDefault<z.ZodNumber> => z.number().int().min(min).default(fallback);

/**
 * Server settings. Every limit is finite and carries its unit in its name; the defaults are in
 * defaults.ts. Validated once by `resolveServerConfig`; unknown keys are refused; the result is frozen.
 */
const serverConfigSchema = z.strictObject({
  /** Root of the data directory: files/, partial/ and db/ live under it. */
  dataDir: z.string().min(1),
  /** Size of a chunk: the unit of hashing, writing, and resuming. */
  chunkSizeBytes: z
    .number()
    .int()
    .min(64 * KiB)
    .max(maxChunkBytesCeiling)
    .default(d.chunkSizeBytes),
  /** Worker threads in the chunk pool. */
  workers: z
    .number()
    .int()
    .min(1)
    .max(64)
    .default(Math.max(2, Math.min(availableParallelism(), 8))),
  /** Chunk buffers in flight (being received, written, read or sent) across all connections. */
  inflightBudgetBytes: count(1, d.inflightBudgetBytes),
  maxInflightChunksPerConnection: z.number().int().min(1).max(64).default(l.maxInflightChunksPerConnection),
  maxRequestsInFlightPerConnection: z.number().int().min(1).max(1024).default(l.maxRequestsInFlightPerConnection),
  maxWholePutsInFlightPerConnection: z.number().int().min(1).max(1024).default(l.maxWholePutsInFlightPerConnection),
  /** Largest control frame accepted. */
  maxControlBytes: z
    .number()
    .int()
    .min(4 * KiB)
    .max(16 * MiB)
    .default(defaultMaxControlBytes),
  /**
   * Written-but-unrecorded bytes of an upload before the server syncs them and records them in
   * LMDB. Reading pauses at twice this, which bounds what a crash makes clients send again.
   */
  syncEveryBytes: count(1, d.syncEveryBytes),
  syncIntervalMs: count(1, l.syncIntervalMs),
  /** An upload session untouched for this long is expired and its partial data removed. */
  sessionTtlMs: count(1, d.sessionTtlMs),
  sessionSweepIntervalMs: count(1, l.sessionSweepIntervalMs),
  takeoverGraceMs: count(0, l.takeoverGraceMs),
  downloadReadaheadChunks: z.number().int().min(1).max(16).default(l.downloadReadaheadChunks),
  /** Established connections at once; one more is refused with EBUSY before it is closed. */
  maxConnections: count(1, d.maxConnections),
  /** Established connections at once from one network (an IPv4 /24, an IPv6 /64). */
  maxConnectionsPerAddress: count(1, d.maxConnectionsPerAddress),
  /**
   * Connections not yet established (no accepted hello), in all and per network: a budget of
   * their own, where a newcomer closes the oldest instead of being refused (the connection gate).
   */
  maxUnauthenticated: count(1, d.maxUnauthenticated),
  maxUnauthenticatedPerAddress: count(1, d.maxUnauthenticatedPerAddress),
  /** Password checks (scrypt, about 150 ms each) running at once; more logins wait their turn. */
  maxConcurrentLogins: count(1, d.maxConcurrentLogins),
  passwordCostLogN: z.number().int().min(10).max(20).default(l.passwordCostLogN),
  /** A connection that has not completed its hello this long after connecting is closed. */
  handshakeTimeoutMs: count(1, d.handshakeTimeoutMs),
  /** A connection with nothing in progress (no request, no transfer) silent this long is closed. */
  idleTimeoutMs: count(1, d.idleTimeoutMs),
  /**
   * A connection with a transfer in progress on which no byte moves either way for this long is
   * closed (uploads are kept for resuming). Time the server itself holds the socket paused (waiting
   * for a buffer or a checkpoint) does not count.
   */
  stallTimeoutMs: count(1, d.stallTimeoutMs),
  lingerMs: count(0, l.lingerMs),
  /** Largest file an upload may declare. */
  maxFileSizeBytes: count(0, d.maxFileSizeBytes),
  /** Stored files plus what unfinished uploads count (docs/design.md, "Quota") may not exceed this. */
  maxStorageBytes: count(0, d.maxStorageBytes),
  sessionReserveBytes: count(0, l.sessionReserveBytes),
  /** Unfinished upload sessions kept at once, in all and per owner (the account that made them). */
  maxSessions: count(1, d.maxSessions),
  maxSessionsPerOwner: count(1, d.maxSessionsPerOwner),
  maxDetachedHashStates: count(0, l.maxDetachedHashStates),
  /** On shutdown, how long connections get to land their chunks and close before they are cut. */
  shutdownGraceMs: count(0, d.shutdownGraceMs),
  /** Transfer log entries older than this are removed; at most `maxLogEntries` are kept whatever their age. */
  logRetentionMs: count(1, d.logRetentionMs),
  maxLogEntries: count(1, l.maxLogEntries),
  frameTimeoutMs: count(1, l.frameTimeoutMs),
  maxQueuedOutputBytes: count(1, l.maxQueuedOutputBytes),
  maxReplyBytes: z
    .number()
    .int()
    .min(4 * KiB)
    .default(l.maxReplyBytes),
  budgetGraceMs: count(1, l.budgetGraceMs),
  minChunkRateBytesPerSec: count(0, l.minChunkRateBytesPerSec),
  /**
   * Whether names that differ only by case are one file on the data directory's file system;
   * probed at start-up when not given (a test may say so of a file system that is not).
   */
  caseInsensitiveNames: z.boolean().optional(),
  /** Serve TLS (the default): clients pin the certificate's fingerprint (docs/protocol.md, "TLS"). */
  tls: z.boolean().default(true),
  /** The operator's certificate and key (PEM); without them, one generated into `<data>/tls/` at the first start. */
  tlsCertFile: z.string().min(1).optional(),
  tlsKeyFile: z.string().min(1).optional(),
  /** Permission bits taken away from the folders (0777) and files (0666) the server creates in the data directory. */
  umask: z.number().int().min(0).max(0o777).default(d.umask),
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
    throw new RangeError(
      `inflightBudgetBytes (${config.inflightBudgetBytes}) must hold at least two chunks of ${config.chunkSizeBytes} bytes`,
    );
  }
  return Object.freeze(config);
}
