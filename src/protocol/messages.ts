import { z } from 'zod';
import { FerryError, oneLine } from './errors.js';
import { maxHashesPageEntries, maxListPageEntries, maxLogPageEntries } from './limits.js';
import { maxNameBytes } from './names.js';
import { codecNames } from './frames.js';

/**
 * Control messages (docs/protocol.md, "Requests"). A request is `{id, op, ...arguments}`; the
 * server answers each with exactly one reply carrying the same id. Names are checked here only
 * for type and size: the name guard (names.ts) decides what a valid name is.
 */

const requestId = z.number().int().min(0).max(0xffffffff);
// Only type and an upper bound here: the name guard (names.ts) answers EBADNAME for the rest.
const name = z.string().max(maxNameBytes * 4);
const stream = z.number().int().min(1).max(0xffffffff);
const byteCount = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/u);
/** Permission bits, as chmod takes them (no file type). */
const fileMode = z.number().int().min(0).max(0o7777);
/** Milliseconds since the epoch, within what a JavaScript Date holds. */
const epochMs = z.number().int().min(-8.64e15).max(8.64e15);
/** 256 random bits, base64url. */
const sessionToken = z.string().regex(/^[A-Za-z0-9_-]{43}$/u);

export { maxHashesPageEntries, maxListPageEntries, maxLogPageEntries } from './limits.js';

/** `prefix` of a listing: checked by length only (at most 1024 bytes of UTF-8 by the handler), not by the name rule. */
const listPrefix = z
  .string()
  .max(maxNameBytes * 4)
  .optional();

export const requestSchema = z.discriminatedUnion('op', [
  z.strictObject({
    id: requestId,
    op: z.literal('hello'),
    protocol: z.number().int().min(0),
    client: z.string().max(200),
    capabilities: z.array(z.string().max(64)).max(64),
    /** A session token from an earlier `login`: the connection starts authenticated. */
    token: sessionToken.optional(),
  }),
  z.strictObject({
    id: requestId,
    op: z.literal('login'),
    user: z.string().max(64),
    password: z.string().max(4096),
  }),
  z.strictObject({ id: requestId, op: z.literal('logout') }),
  z.strictObject({ id: requestId, op: z.literal('whoami') }),
  z.strictObject({
    id: requestId,
    op: z.literal('list'),
    prefix: listPrefix,
    after: z
      .string()
      .max(maxNameBytes * 4)
      .optional(),
    limit: z.number().int().min(1).max(maxListPageEntries).optional(),
  }),
  z.strictObject({
    id: requestId,
    op: z.literal('uploads'),
    prefix: listPrefix,
    /** The `next` of the previous page. */
    after: z
      .string()
      .max(maxNameBytes * 4 + 100)
      .optional(),
    limit: z.number().int().min(1).max(maxListPageEntries).optional(),
  }),
  z.strictObject({ id: requestId, op: z.literal('stat'), name }),
  z.strictObject({ id: requestId, op: z.literal('delete'), name }),
  z.strictObject({ id: requestId, op: z.literal('info') }),
  z.strictObject({ id: requestId, op: z.literal('ping') }),
  z.strictObject({ id: requestId, op: z.literal('log'), limit: z.number().int().min(1).max(maxLogPageEntries).optional() }),
  z.strictObject({
    id: requestId,
    op: z.literal('hashes'),
    /** A stored file's name, or the stream of this connection's upload. */
    name: name.optional(),
    stream: stream.optional(),
    from: byteCount,
    count: z.number().int().min(1).max(maxHashesPageEntries),
  }),
  z.strictObject({
    id: requestId,
    op: z.literal('put'),
    name,
    /** Absent for an upload from a stream (capability `put-unsized`): `putEnd` says the size. */
    size: byteCount.optional(),
    /** Required with `size`; absent without it (a stream cannot be resumed). */
    fingerprint: z.string().min(1).max(128).optional(),
    force: z.boolean().optional(),
    /** Other connections will send chunks of this upload too (capability `put-join`): the reply carries a `joinKey`. */
    joinable: z.literal(true).optional(),
  }),
  z.strictObject({
    id: requestId,
    op: z.literal('putJoin'),
    /** The `joinKey` of a `put` reply, by the same account on another connection. */
    key: z.string().regex(/^[0-9a-f]{32}$/, 'a join key is 32 lowercase hex digits'),
  }),
  z.strictObject({
    id: requestId,
    op: z.literal('putEnd'),
    stream,
    sha256: sha256Hex,
    /** Required for an upload whose `put` had no size; else, if present, must equal it. */
    size: byteCount.optional(),
    /** The local file's permission bits and modification time (capability `file-attributes`): kept with the file, for `download -r` to restore. */
    mode: fileMode.optional(),
    mtime: epochMs.optional(),
  }),
  z.strictObject({
    id: requestId,
    op: z.literal('putWhole'),
    name,
    /** At most `wholePutMaxBytes(chunkSize)`; the file's bytes follow this request as a CHUNK frame on stream 0 (none when 0). */
    size: byteCount,
    sha256: sha256Hex,
    force: z.boolean().optional(),
    mode: fileMode.optional(),
    mtime: epochMs.optional(),
  }),
  z.strictObject({
    id: requestId,
    op: z.literal('get'),
    name,
    sha256: sha256Hex.optional(),
    fromChunk: byteCount.optional(),
    /** The chunk after the last one to send (capability `get-range`); default: to the end. Several `get`s of ranges, on several connections, fetch one file in parallel. */
    toChunk: byteCount.optional(),
    /** Send chunks compressed with `codec` (one of the server's `compress:` capabilities): every one that shrinks, or only while it pays (`auto`). */
    pack: z.strictObject({ codec: z.enum(codecNames), mode: z.enum(['auto', 'always']) }).optional(),
  }),
  z.strictObject({
    id: requestId,
    op: z.literal('getDirect'),
    name,
    sha256: sha256Hex.optional(),
    fromChunk: byteCount.optional(),
  }),
  z.strictObject({
    id: requestId,
    op: z.literal('getDirectEnd'),
    name,
    sha256: sha256Hex,
    /** Bytes this client read from the store for the file, and how long it took. */
    bytes: byteCount,
    durationMs: byteCount,
    /** 'ok', or the error code that ended the download. */
    result: z.string().regex(/^(ok|E[A-Z]{2,20})$/u),
  }),
]);

export type Request = z.infer<typeof requestSchema>;
export type Op = Request['op'];
export type RequestOf<O extends Op> = Extract<Request, { op: O }>;

/** Validates a decoded control message as a request; throws EPROTO with the first problem. */
export function parseRequest(message: Record<string, unknown>): Request {
  const parsed = requestSchema.safeParse(message);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const where = issue && issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
  const op = typeof message['op'] === 'string' ? message['op'] : '?';
  throw new FerryError('EPROTO', oneLine(`bad ${oneLine(op.slice(0, 40), 40)} request: ${where}${issue?.message ?? 'invalid'}`, 300));
}

// ---- Results (server -> client). The server builds them; the client reads them. ----

export interface FileSummary {
  name: string;
  size: number;
  sha256: string;
  /** ISO 8601 time of the upload that produced this content. */
  modified: string;
  /** Present when the stored bytes no longer match the record: why. Such a file is not served (ECORRUPT). */
  damaged?: string;
  /** The uploaded local file's permission bits and modification time (ISO 8601), when its client gave them. */
  mode?: number;
  mtime?: string;
}

export interface FileInfo extends FileSummary {
  chunkSize: number;
  chunkCount: number;
  created: string;
}

/** Who a connection is logged in as. `root` is the prefix the account's names live under (`''`: the whole store). */
export interface AccountInfo {
  user: string;
  role: 'read' | 'write' | 'admin';
  root: string;
}

export interface LoginResult extends AccountInfo {
  /** Give it in a later `hello` instead of the password; it lapses after 30 days unused, or at `logout`. */
  token: string;
  /** ISO 8601: when it lapses if not used before. */
  expires: string;
}

export interface HelloResult {
  protocol: number;
  /** Set when the hello's token was accepted: the connection is authenticated. */
  account?: AccountInfo;
  server: string;
  /** Size of every chunk of an upload to this server, and the largest chunk it accepts. */
  chunkSize: number;
  maxControlBytes: number;
  capabilities: string[];
}

export interface ListResult {
  files: FileSummary[];
  /** Name to pass as `after` for the next page, when there is one. */
  next?: string;
}

/** An unfinished upload: what the server holds of it, waiting for its client to resume it. */
export interface UploadSummary {
  name: string;
  /** The size the upload declared. */
  size: number;
  /** Bytes received and verified so far. */
  received: number;
  /** ISO 8601 times: when it began, and when a client last worked on it. */
  created: string;
  touched: string;
}

export interface UploadsResult {
  uploads: UploadSummary[];
  /** Cursor to pass as `after` for the next page, when there is one. */
  next?: string;
}

export interface InfoResult {
  version: string;
  protocolVersion: number;
  chunkSize: number;
  files: number;
  bytes: number;
  /** Unfinished uploads the server holds (see the `uploads` operation). */
  uploads: number;
  clients: number;
  workers: number;
  uptimeSeconds: number;
  capabilities: string[];
}

export interface LogEntry {
  time: string;
  client: string;
  /** The account that made the transfer (absent in entries from before accounts). */
  user?: string;
  op: 'upload' | 'download' | 'delete';
  name: string;
  bytes: number;
  durationMs: number;
  /** 'ok' or the error code that ended the transfer. */
  result: string;
  /** A download the client read from the server's object store itself (`getDirect`), as the client reported it. */
  direct?: true;
}

export interface HashesResult {
  from: number;
  /** xxh64 hex of each chunk from `from` on; null where an upload has not verified the chunk. */
  hashes: (string | null)[];
}

export interface PutResult {
  stream: number;
  chunkSize: number;
  /** Chunk index ranges [start, end) already verified on the server (a resumed upload). */
  verified: [number, number][];
  resumed: boolean;
  /** For a `joinable` put: the key other connections give in `putJoin` to send chunks of this upload. */
  joinKey?: string;
}

/** A connection that joined an upload: its chunks for the upload go on `stream` (of this connection). */
export interface PutJoinResult {
  stream: number;
  chunkSize: number;
}

export interface GetResult {
  stream: number;
  name: string;
  size: number;
  sha256: string;
  chunkSize: number;
  chunkCount: number;
  fromChunk: number;
  /** The chunk after the last one sent (`chunkCount` unless `toChunk` asked for less). */
  toChunk: number;
}

/**
 * Where a client reads a file from the server's object store itself (capability `get-direct`):
 * chunks `fromChunk` to `toChunk` of the file the other fields describe, by ranged GETs of `url`
 * with `If-Match: etag`, each checked against its xxh64 in `hashes` (one per chunk from
 * `fromChunk`). The URL is signed for that object only and lapses `expiresInSeconds` after the reply; a `getDirect`
 * from the next chunk gives the next window of hashes and a fresh URL.
 */
export interface GetDirectResult extends Omit<GetResult, 'stream'> {
  url: string;
  etag: string;
  /** Seconds from the reply until `url` lapses. */
  expiresInSeconds: number;
  hashes: string[];
}

export interface ResultOf {
  hello: HelloResult;
  login: LoginResult;
  logout: Record<string, never>;
  whoami: AccountInfo;
  list: ListResult;
  uploads: UploadsResult;
  stat: FileInfo;
  delete: { name: string };
  info: InfoResult;
  ping: Record<string, never>;
  log: { entries: LogEntry[] };
  hashes: HashesResult;
  put: PutResult;
  putJoin: PutJoinResult;
  putEnd: FileInfo;
  putWhole: FileInfo;
  get: GetResult;
  getDirect: GetDirectResult;
  getDirectEnd: Record<string, never>;
}

export type Reply = { id: number; ok: true; result: unknown } | { id: number; ok: false; code: string; message: string };

/** Server-initiated messages. `abort`: a transfer stream failed after its request was answered. */
export type ServerEvent =
  { event: 'abort'; stream: number; code: string; message: string } | { event: 'bye'; code: string; message: string };
