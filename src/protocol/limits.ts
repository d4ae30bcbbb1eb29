/** Page sizes of the paged requests: the most entries one request may ask for. */
export const maxListPage = 1000;
export const maxHashesPage = 4096;
export const maxLogEntries = 1000;
