import type { Handler } from './types.js';

/** Keeps a connection alive while the client works locally (e.g. re-hashing a file it resumes). */
export const ping: Handler<'ping'> = () => ({ result: {} });
