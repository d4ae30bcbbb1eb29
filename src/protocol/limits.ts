/** The port a Ferry server listens on unless told otherwise. */
export const defaultPort = 8888;

/** Page sizes of the paged requests: the most entries one request may ask for, and what it gets by default. */
export const maxListPageEntries = 1000;
export const maxHashesPageEntries = 4096;
export const maxLogPageEntries = 1000;
export const defaultLogPageEntries = 20;
