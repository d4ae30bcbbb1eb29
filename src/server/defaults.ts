/**
 * Every number the server is configured with, in one place, each with its unit in its name. The
 * first group are `ferry serve` flags (their help text shows these defaults); the rest are fixed
 * limits that tests and embedders may set through `createServer`. Plain numbers, so the CLI can
 * show them without loading zod.
 */
const KiB = 1024;
const MiB = 1024 * KiB;
const TiB = 1024 ** 4;
const minute = 60_000;
const day = 24 * 60 * minute;

export const serverDefaults = {
  chunkSizeBytes: 4 * MiB,
  inflightBudgetBytes: 64 * MiB,
  syncEveryBytes: 8 * MiB,
  sessionTtlMs: day,
  maxConnections: 1024,
  maxConnectionsPerAddress: 64,
  maxUnauthenticated: 64,
  maxUnauthenticatedPerAddress: 8,
  maxConcurrentLogins: 4,
  handshakeTimeoutMs: 10_000,
  idleTimeoutMs: 5 * minute,
  stallTimeoutMs: 30_000,
  maxFileSizeBytes: 4 * TiB,
  maxStorageBytes: 16 * TiB,
  shutdownGraceMs: 10_000,
  maxSessions: 10_000,
  maxSessionsPerOwner: 256,
  logRetentionMs: 30 * day,
  /** Permission bits taken away from what the server creates: 077, only its owner may read the data. */
  umask: 0o077,
} as const;

/** Fixed limits: not flags, but settable through `createServer` (the tests use small ones). */
export const serverLimits = {
  /** Chunks one connection may have in flight at once, so one client cannot take the whole budget. */
  maxInflightChunksPerConnection: 3,
  /** Requests of one connection being handled at once, whole puts aside; reading pauses at this many. */
  maxRequestsInFlightPerConnection: 16,
  /**
   * Whole puts (`putWhole`) of one connection being handled at once; reading pauses at this many.
   * More than other requests: a whole put's data is held in the whole-put budget, its reply is a
   * few hundred bytes, and a tree's small files in flight together share each folder fsync and
   * LMDB commit (docs/perf-notes.md, "Whole puts in flight").
   */
  maxWholePutsInFlightPerConnection: 128,
  /** How long an ending connection reads (and drops) what the client still sends before it is cut. */
  lingerMs: 2000,
  /** Upper bound on how long written chunks wait for their checkpoint. */
  syncIntervalMs: 1000,
  /** How long a reconnecting upload waits for its old connection to end by itself before taking over. */
  takeoverGraceMs: 3000,
  /** Chunks a download reads ahead of what it has sent. */
  downloadReadaheadChunks: 2,
  /** What an unfinished upload counts against the quota beyond what it has received (at most its size). */
  sessionReserveBytes: 64 * MiB,
  /** Running SHA-256 states kept for uploads that detached (a resume in this process goes on from them). */
  maxDetachedHashStates: 256,
  /** How often idle upload sessions are looked for and expired while the server runs. */
  sessionSweepIntervalMs: 5 * minute,
  /** Transfer log entries kept at most, whatever their age: a bound on disk use under a flood. */
  maxLogEntries: 1_000_000,
  /** A frame's head, a chunk's fields or a control frame, once started, must arrive within this. */
  frameTimeoutMs: 10_000,
  /** Bytes written to a connection and not yet taken by the client beyond which no new request is started. */
  maxQueuedOutputBytes: 256 * KiB,
  /** The largest reply the server builds: a page of `list` or `log` is cut to fit. */
  maxReplyBytes: 64 * KiB,
  /**
   * While others wait for a chunk buffer, a connection that holds one and is this slow loses it
   * (the connection is closed; uploads resume): a chunk arriving under `minChunkRateBytesPerSec`
   * for longer than `budgetGraceMs`, or a download whose client took nothing for `budgetGraceMs`.
   */
  budgetGraceMs: 5000,
  minChunkRateBytesPerSec: 16 * KiB,
  /** scrypt cost of new password hashes: N = 2^this (15 in use; the tests make cheaper ones). */
  passwordCostLogN: 15,
} as const;
