/**
 * The names a server lists in `hello`'s `capabilities` (docs/protocol.md, "hello"): what it can do
 * beyond the core. Servers offer them and clients check them before an optional feature, both from
 * here. Compression adds `compress:<codec>` for each codec (compression/negotiation.ts).
 */
export const capability = {
  resume: 'resume',
  xxh64: 'xxh64',
  sha256: 'sha256',
  listPaging: 'list-paging',
  uploads: 'uploads',
  /** An upload whose size is known only at its end (`put` without `size`). */
  putUnsized: 'put-unsized',
  accounts: 'accounts',
  /** The local file's mode and mtime kept, as given at `putEnd` or `putWhole`. */
  fileAttributes: 'file-attributes',
  /** `toChunk` in `get`: a range of a file's chunks, for parallel streams. */
  getRange: 'get-range',
  /** A whole small file in one `putWhole`. */
  putWhole: 'put-whole',
  /** A `putWhole`'s data may come packed (a PACKED CHUNK frame standing for the whole file), with a codec the server lists. */
  putWholePacked: 'put-whole-packed',
  /** `joinable` in `put`, and `putJoin`: one upload's chunks over several connections. */
  putJoin: 'put-join',
  /** `getDirect`: the client reads the file from the server's object store itself, by signed ranged GETs. */
  getDirect: 'get-direct',
} as const;
