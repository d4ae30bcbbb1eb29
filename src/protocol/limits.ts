/** The port a Ferry server listens on unless told otherwise. */
export const defaultPort = 8888;

/** The port of a server's HTTP side (docs/http.md) unless told otherwise; 0 turns it off. */
export const defaultHttpPort = 8080;

/**
 * The largest control frame a client accepts from a server. A server's replies stay far below it
 * (a page of `list` or `log` is cut by bytes as well as by entries).
 */
export const maxServerControlBytes = 4 * 1024 * 1024;

/** Page sizes of the paged requests: the most entries one request may ask for, and what it gets by default. */
export const maxListPageEntries = 1000;
export const maxHashesPageEntries = 4096;
export const maxLogPageEntries = 1000;
export const defaultLogPageEntries = 20;

/**
 * The largest file a `putWhole` carries (capability `put-whole`): the whole file in one request
 * and one reply. No larger than a chunk of the server's, so it is one chunk of a stored file.
 */
export function wholePutMaxBytes(chunkSize: number): number {
  return Math.min(256 * 1024, chunkSize);
}
