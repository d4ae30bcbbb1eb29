// The server the fuzz runs against: its limits, which the generators aim at and around.
export const KiB = 1024;
export const MiB = 1024 * KiB;
export const chunkSize = 64 * KiB;
export const inflightBudgetBytes = MiB;
export const maxControlBytes = 8 * KiB;
/** Frame types as the wire carries them (docs/protocol.md), for frames built by hand. */
export const CONTROL = 1;
export const CHUNK = 2;
/** The bound on every single wait of this test (a reply, a close, a write): longer is a hang. */
export const waitMs = 8000;
