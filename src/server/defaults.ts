/**
 * Defaults of the server settings that `ferry serve` exposes as flags: one place for the
 * config schema and the help text. Plain numbers, so the CLI can show them without loading zod.
 */
const KiB = 1024;
const MiB = 1024 * KiB;
const TiB = 1024 ** 4;

export const serverDefaults = {
  chunkSizeBytes: 4 * MiB,
  inflightBudgetBytes: 64 * MiB,
  syncEveryBytes: 8 * MiB,
  sessionTtlMs: 24 * 60 * 60 * 1000,
  maxConnections: 1024,
  maxConnectionsPerIp: 64,
  handshakeTimeoutMs: 10_000,
  idleTimeoutMs: 5 * 60_000,
  stallTimeoutMs: 30_000,
  maxFileSizeBytes: 4 * TiB,
  maxStorageBytes: 16 * TiB,
  shutdownGraceMs: 10_000,
} as const;
