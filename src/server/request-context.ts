import type { Logger } from 'pino';
import type { Packing } from '../compression/negotiation.js';
import type { FerryError } from '../protocol/errors.js';
import type { StoredFile, TransferLogRecord, UserRecord } from '../store/records.js';
import type { AccountView } from './account-view.js';
import type { ChunkRange, DownloadTransfer } from './download-transfer.js';
import type { ServerServices } from './services.js';
import type { ActiveUpload, ClaimedUpload } from './upload-registry.js';
import type { UploadTransfer } from './upload-transfer.js';
import type { WholePutData } from './whole-put-intake.js';

/**
 * What every request may use, whichever side it came on (a Ferry connection, an HTTP request):
 * the client's identity, its account, the shared services and the transfer log.
 */
export interface RequestScope {
  readonly services: ServerServices;
  /** The client, as `address:port`: for logs and the transfer log. */
  readonly clientAddress: string;
  /** The client's network (an IPv4 /24, an IPv6 /64): what per-client limits count. */
  readonly clientNetwork: string;
  /** This request's logger (the client's address is on every line). */
  readonly log: Logger;
  /** The account the request is made as; undefined before a login. */
  readonly account: AccountView | undefined;
  /** Who a transfer log entry names: the client's address and the account. */
  readonly who: Pick<TransferLogRecord, 'client' | 'user'>;
  /** Adds a transfer log entry for this client (best effort: never fails the request), and reports it on the console. */
  logTransfer(entry: Omit<TransferLogRecord, 'client' | 'user'>): Promise<void>;
  /** Reports a finished transfer on the server's console only (its log entry is written by the caller). */
  reportTransfer(entry: Omit<TransferLogRecord, 'client' | 'user'>): void;
}

/**
 * What a request handler may do with the connection its request came on, and nothing more: the
 * client's identity, its streams, and the shared services. Handlers never see the socket, the
 * decoder or the connection's own bookkeeping.
 */
export interface RequestContext extends RequestScope {
  /** Whether `hello` has been answered. */
  readonly greeted: boolean;
  markGreeted(): void;
  /**
   * The connection logged in as `user` with the session `token`: it passes the connection gate
   * (or is closed with bye EBUSY, and this throws).
   */
  authenticate(user: UserRecord, token: string): AccountView;
  /** Ends the login: the session's token is revoked; the connection is anonymous again. Returns the token it had. */
  logout(): string | undefined;
  /** The connection is closing: no transfer may attach to it. */
  readonly ending: boolean;
  /** Attaches a claimed upload to this connection under a new stream; its chunks are accepted from here on. */
  attachUpload(claim: ClaimedUpload, force: boolean): Promise<UploadTransfer>;
  /** Sends chunks of `upload` (another connection's, taking chunks) from this connection too: returns this connection's stream for them. */
  joinUpload(upload: UploadTransfer): number;
  /** This connection's upload on `stream`, if any. */
  upload(stream: number): UploadTransfer | undefined;
  /** Whether `upload` is attached to this connection. */
  ownsUpload(upload: ActiveUpload): boolean;
  /** The bytes of the `putWhole` with request id `id`, handed over once (the handler releases them). */
  takeWholePutData(id: number): WholePutData | undefined;
  /** Takes this connection's upload on `stream` off the connection (putEnd): its chunks are a protocol error from here on. */
  takeUpload(stream: number): UploadTransfer | undefined;
  /**
   * Prepares a download of `file` from chunk `fromChunk` under a new stream; `start` it once the
   * reply is on the wire. `onEnd` hears how it ended.
   */
  /** Starts a download of `file`'s `chunks`, packed as `packing` says (or never). */
  openDownload(
    file: StoredFile,
    chunks: ChunkRange,
    packing: Packing | undefined,
    onEnd: (download: DownloadTransfer, error?: FerryError) => void,
  ): DownloadTransfer;
}
