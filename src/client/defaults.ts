/**
 * The client's defaults that the CLI's help shows, in a module of their own: the help is printed
 * without loading the connection code (and with it node:tls and node:crypto).
 */

/** Reconnect (and resume) when no byte moves this long. */
export const defaultClientStallTimeoutMs = 30_000;

/**
 * Retries a transfer makes by default: with the default backoff (0.5 s doubling to 10 s, as wget
 * and curl cap theirs) they ride out an outage of more than two and a half minutes.
 */
export const defaultTransferRetries = 20;

/** The most connections one upload or download opens (`--streams`): more rarely helps, and each costs the server a connection. */
export const maxStreams = 16;
