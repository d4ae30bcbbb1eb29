import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { FerryError } from '../protocol/errors.js';
import { type AccountView, accountOf, checkAccess } from '../server/account-view.js';
import type { ServerServices } from '../server/services.js';
import { claimFor } from '../server/handlers/put.js';
import { finishUpload } from '../server/handlers/put-end.js';
import { UploadTransfer } from '../server/upload-transfer.js';
import { type UploadSessionRecord, chunkCountOf, chunkLengthOf } from '../store/records.js';
import { type PieceTaken, forEachPiece } from './body-pieces.js';
import { sendError, sendJson } from './http-errors.js';
import type { HttpRequestScope } from './http-scope.js';

const tusVersion = '1.0.0';
const tusExtensions = 'creation,creation-with-upload,termination,expiration';
/** What a tus session's fingerprint starts with: `tus ID SHA256|- overwrite|new` (no Ferry client sends one). */
const tusFingerprintTag = 'tus';

/** What a tus upload's creation said, kept in its session's fingerprint so it survives a restart. */
interface TusTerms {
  /** The SHA-256 the whole file must have (Upload-Metadata `sha256`), if the client gave one. */
  sha256: string | undefined;
  /** Whether an existing file of the name may be replaced (Upload-Metadata `overwrite`). */
  overwrite: boolean;
}

function fingerprintOf(terms: TusTerms): string {
  return [tusFingerprintTag, randomUUID(), terms.sha256 ?? '-', terms.overwrite ? 'overwrite' : 'new'].join(' ');
}

function termsOf(session: UploadSessionRecord): TusTerms | undefined {
  const [tag, , sha256, overwrite] = session.fingerprint.split(' ');
  if (tag !== tusFingerprintTag) return undefined;
  return { sha256: sha256 === '-' ? undefined : sha256, overwrite: overwrite === 'overwrite' };
}

/** A chunk being filled from PATCH bodies: whole chunks go to the engine, the last part of one waits for the next PATCH. */
interface OpenChunk {
  index: number;
  buffer: SharedArrayBuffer;
  filled: number;
}

/** A tus upload attached to the engine: its UploadTransfer holds the name between PATCHes, until it idles. */
interface Attached {
  transfer: UploadTransfer;
  terms: TusTerms;
  /** Bytes accepted, in order: the tus offset. */
  offset: number;
  open: OpenChunk | undefined;
  /** A PATCH is running: another one is refused (423). */
  busy: boolean;
  /** Called when the running PATCH ends. */
  whenIdle: (() => void)[];
  idleTimer: NodeJS.Timeout | undefined;
}

/**
 * tus 1.0.0 uploads at `/tus/` (docs/http.md): core, creation, creation-with-upload, termination
 * and expiration, on the engine's own upload rules and records. A tus upload is a Ferry upload
 * session (its id is the tus id), claimed with the same rules as a `put` (names, roots, quotas,
 * one writer per name), written chunk by chunk by the same UploadTransfer (each chunk's xxh64
 * computed by the worker that writes it, synced before LMDB records it),
 * and published by the same verified, atomic rename. The offset a HEAD reports after a restart
 * is the recorded one: what a `kill -9` could not take back.
 */
export class TusUploads {
  readonly #services: ServerServices;
  readonly #attached = new Map<string, Attached>();
  /** Claims being made for uploads not attached yet, by id. */
  readonly #attaching = new Map<string, Promise<Attached>>();

  constructor(services: ServerServices) {
    this.#services = services;
  }

  /** Serves a request under `/tus/` (`id` is what follows it, '' for the collection). */
  async serve(scope: HttpRequestScope, request: IncomingMessage, response: ServerResponse, id: string): Promise<void> {
    response.setHeader('Tus-Resumable', tusVersion);
    const method = request.method ?? 'GET';
    if (method === 'OPTIONS') {
      response.writeHead(204, {
        'Tus-Version': tusVersion,
        'Tus-Extension': tusExtensions,
        'Tus-Max-Size': String(this.#services.config.maxFileSizeBytes),
      });
      return void response.end();
    }
    if (request.headers['tus-resumable'] !== tusVersion) {
      response.setHeader('Tus-Version', tusVersion);
      return sendJson(response, 412, { error: { code: 'EPROTO', message: `Tus-Resumable: ${tusVersion} is required` } });
    }
    const account = accountOf(scope);
    if (id === '') {
      if (method !== 'POST') throw allowOnly(response, method, 'POST, OPTIONS');
      return this.#create(scope, request, response, account);
    }
    const session = this.#sessionOf(id, account);
    if (method === 'HEAD') return this.#head(response, session);
    if (method === 'PATCH') return this.#patch(scope, request, response, session, account);
    if (method === 'DELETE') return this.#terminate(scope, response, session, account);
    throw allowOnly(response, method, 'HEAD, PATCH, DELETE');
  }

  /** Detaches every upload once its PATCH (cut by the closing server) has ended: their written chunks are recorded. */
  async close(): Promise<void> {
    const uploads = [...this.#attached.entries()];
    await Promise.all(
      uploads.map(async ([id, attached]) => {
        if (attached.busy) await new Promise<void>((resolve) => attached.whenIdle.push(resolve));
        await this.#detach(id);
      }),
    );
  }

  async #create(scope: HttpRequestScope, request: IncomingMessage, response: ServerResponse, account: AccountView): Promise<void> {
    checkAccess('put', account);
    const lengthHeader = headerOf(request, 'upload-length');
    if (lengthHeader === undefined) throw new FerryError('EPROTO', 'Upload-Length is required (Upload-Defer-Length is not supported)');
    if (!/^\d{1,16}$/u.test(lengthHeader)) throw new FerryError('EPROTO', 'Upload-Length is not a byte count');
    const size = Number(lengthHeader);
    const metadata = parseMetadata(headerOf(request, 'upload-metadata'));
    const filename = metadata.get('filename');
    if (filename === undefined) throw new FerryError('EBADNAME', 'Upload-Metadata needs filename: the name to store the file under');
    const sha256 = metadata.get('sha256');
    if (sha256 !== undefined && !/^[0-9a-f]{64}$/u.test(sha256)) {
      throw new FerryError('EPROTO', 'Upload-Metadata sha256 must be 64 lowercase hex digits');
    }
    const terms: TusTerms = { sha256, overwrite: metadata.has('overwrite') };
    const name = account.stored(filename);
    const claim = await claimFor(
      this.#services.uploads,
      account,
      { name, file: { size, fingerprint: fingerprintOf(terms) }, force: terms.overwrite },
      notAttachedHere,
    );
    const { session } = claim;
    scope.log.info({ file: name, size, id: session.id }, 'tus upload created');
    response.setHeader('Location', `/tus/${session.id}`);
    response.setHeader('Upload-Expires', this.#expires(session));
    if (!hasBody(request)) {
      claim.cancel();
      response.writeHead(201, { 'Content-Length': 0 });
      return void response.end();
    }
    const transfer = await UploadTransfer.open(this.#services, 0, claim, terms.overwrite, () => undefined).catch((error: unknown) => {
      claim.cancel();
      throw error;
    });
    claim.attach(transfer);
    const attached: Attached = { transfer, terms, offset: 0, open: undefined, busy: false, whenIdle: [], idleTimer: undefined };
    this.#attached.set(session.id, attached);
    await this.#receive(scope, request, response, attached, account, 201);
  }

  #head(response: ServerResponse, session: UploadSessionRecord): void {
    const attached = this.#attached.get(session.id);
    response.writeHead(200, {
      'Upload-Offset': String(attached ? attached.offset : recordedOffset(this.#services, session)),
      'Upload-Length': String(session.size),
      'Upload-Expires': this.#expires(session),
      'Cache-Control': 'no-store',
    });
    response.end();
  }

  async #patch(
    scope: HttpRequestScope,
    request: IncomingMessage,
    response: ServerResponse,
    session: UploadSessionRecord,
    account: AccountView,
  ): Promise<void> {
    checkAccess('put', account);
    if (request.headers['content-type'] !== 'application/offset+octet-stream') {
      return sendJson(response, 415, {
        error: { code: 'EPROTO', message: 'a PATCH body is Content-Type: application/offset+octet-stream' },
      });
    }
    const attached = await this.#attach(session, account);
    if (attached.busy) throw new FerryError('EBUSY', 'another PATCH of this upload is running');
    const offsetHeader = headerOf(request, 'upload-offset');
    if (offsetHeader === undefined || String(attached.offset) !== offsetHeader) {
      this.#idleLater(session.id, attached);
      response.setHeader('Connection', 'close');
      return sendError(
        response,
        new FerryError('EPROTO', `Upload-Offset ${String(offsetHeader)} is not this upload's offset, ${attached.offset}`),
        {},
        409,
      );
    }
    await this.#receive(scope, request, response, attached, account, 204);
  }

  /**
   * Takes a PATCH body (or a creation's) into the upload: whole chunks to the engine as they fill,
   * the part of a chunk at the end kept for the next PATCH. At Upload-Length the file is verified
   * and published before the answer.
   */
  async #receive(
    scope: HttpRequestScope,
    request: IncomingMessage,
    response: ServerResponse,
    attached: Attached,
    account: AccountView,
    status: number,
  ): Promise<void> {
    attached.busy = true;
    clearTimeout(attached.idleTimer);
    const { transfer } = attached;
    const { size, chunkSize, id } = transfer.session;
    const { buffers } = this.#services;
    const writes = new Set<Promise<void>>();
    const openChunk = (buffer: SharedArrayBuffer): OpenChunk => {
      const index = Math.floor(attached.offset / chunkSize);
      return { index, buffer, filled: attached.offset - index * chunkSize };
    };
    /** Copies `piece` from `from` on into chunks; returns a promise when a buffer or the writes must be waited for. */
    const take = (piece: Buffer, from = 0): PieceTaken => {
      for (let at = from; at < piece.length;) {
        if (attached.offset >= size) throw new FerryError('EPROTO', `the body goes past Upload-Length (${size} bytes)`);
        if (!attached.open) {
          const buffer = buffers.tryAcquire();
          if (!buffer) {
            return this.#waitForBuffer(request).then((waited) => {
              attached.open = openChunk(waited);
              return take(piece, at);
            });
          }
          attached.open = openChunk(buffer);
        }
        const open = attached.open;
        const length = chunkLengthOf(open.index, size, chunkSize);
        const count = Math.min(piece.length - at, length - open.filled);
        new Uint8Array(open.buffer, open.filled, count).set(piece.subarray(at, at + count));
        open.filled += count;
        attached.offset += count;
        at += count;
        if (open.filled === length) {
          attached.open = undefined;
          // No xxh64 came with the bytes: the worker that writes the chunk computes the one recorded.
          const write = transfer.write(open.index, { offset: open.index * chunkSize, length, xxh64: undefined }, open.buffer);
          writes.add(write);
          void write.finally(() => writes.delete(write));
          const held = this.#heldBack(transfer, writes);
          if (held) return held.then(() => take(piece, at));
        }
      }
      return undefined;
    };
    try {
      await forEachPiece(request, take);
      await Promise.all(writes);
      if (transfer.failed) throw transfer.failed;
    } catch (error) {
      // The client went away mid-body, or the body broke a rule: what was accepted stays (its offset
      // is what HEAD says); a failed transfer is let go, and the session resumes from its records.
      await Promise.all(writes);
      endPatch(attached);
      if (transfer.failed) await this.#detach(id);
      else this.#idleLater(id, attached);
      throw account.inOwnNames(error);
    }
    if (attached.offset === size) return this.#finish(response, attached, scope, status).finally(() => endPatch(attached));
    endPatch(attached);
    this.#idleLater(id, attached);
    response.writeHead(status, { 'Upload-Offset': String(attached.offset), 'Content-Length': 0 });
    response.end();
  }

  /**
   * What a PATCH waits for after handing a chunk over, if anything: at most this upload's share
   * of chunks in flight, and no further ahead of its records than a Ferry upload. Throws once the
   * upload has failed.
   */
  #heldBack(transfer: UploadTransfer, writes: Set<Promise<void>>): Promise<void> | undefined {
    if (transfer.failed) throw transfer.failed;
    if (writes.size >= this.#services.config.maxInflightChunksPerConnection) {
      return Promise.race(writes).then(() => this.#heldBack(transfer, writes));
    }
    if (transfer.lagging)
      return new Promise<void>((resolve) => transfer.onceRecorded(resolve)).then(() => this.#heldBack(transfer, writes));
    return undefined;
  }

  /** Waits for a chunk buffer from the budget: the server is the one holding the PATCH up, so its stall timeout does not run meanwhile. */
  async #waitForBuffer(request: IncomingMessage): Promise<SharedArrayBuffer> {
    const { socket } = request;
    socket.setTimeout(0);
    try {
      return await new Promise<SharedArrayBuffer>((resolve) => this.#services.buffers.acquire(resolve));
    } finally {
      if (!socket.destroyed) socket.setTimeout(this.#services.config.stallTimeoutMs);
    }
  }

  /** Every byte is in: the whole file is verified (against the client's sha256 if it gave one) and published. */
  async #finish(response: ServerResponse, attached: Attached, scope: HttpRequestScope, status: number): Promise<void> {
    const { transfer, terms } = attached;
    this.#attached.delete(transfer.session.id);
    await finishUpload(scope, transfer, terms.sha256, undefined);
    response.writeHead(status, { 'Upload-Offset': String(attached.offset), 'Content-Length': 0 });
    response.end();
  }

  async #terminate(scope: HttpRequestScope, response: ServerResponse, session: UploadSessionRecord, account: AccountView): Promise<void> {
    checkAccess('put', account);
    const attached = this.#attached.get(session.id);
    if (attached?.busy) throw new FerryError('EBUSY', 'a PATCH of this upload is running');
    if (attached) await this.#detach(session.id);
    await this.#services.uploads.dropSession(session);
    scope.log.info({ file: session.name, id: session.id }, 'tus upload terminated');
    response.writeHead(204, { 'Content-Length': 0 });
    response.end();
  }

  /**
   * The upload attached to the engine: as it is, or claimed again (after it idled, or a restart).
   * Two PATCHes racing to attach it share one claim: a second claim of the same upload would take
   * the first one over.
   */
  #attach(session: UploadSessionRecord, account: AccountView): Promise<Attached> {
    const existing = this.#attached.get(session.id);
    if (existing) return Promise.resolve(existing);
    let attaching = this.#attaching.get(session.id);
    if (!attaching) {
      attaching = this.#claimAndAttach(session, account).finally(() => this.#attaching.delete(session.id));
      this.#attaching.set(session.id, attaching);
    }
    return attaching;
  }

  async #claimAndAttach(session: UploadSessionRecord, account: AccountView): Promise<Attached> {
    const terms = termsOf(session)!;
    const file = { size: session.size, fingerprint: session.fingerprint };
    const claim = await claimFor(this.#services.uploads, account, { name: session.name, file, force: terms.overwrite }, notAttachedHere);
    if (claim.session.id !== session.id) {
      // The session lapsed meanwhile and a new one was started: that is not this tus upload.
      claim.cancel();
      await this.#services.uploads.dropSession(claim.session);
      throw new FerryError('ENOENT', 'this upload expired');
    }
    const transfer = await UploadTransfer.open(this.#services, 0, claim, terms.overwrite, () => undefined).catch((error: unknown) => {
      claim.cancel();
      throw error;
    });
    claim.attach(transfer);
    const attached: Attached = {
      transfer,
      terms,
      offset: prefixOffset(claim.verified, session),
      open: undefined,
      busy: false,
      whenIdle: [],
      idleTimer: undefined,
    };
    this.#attached.set(session.id, attached);
    return attached;
  }

  /** An upload with no PATCH for the stall timeout lets go of the engine (its chunk part in memory, its name). */
  #idleLater(id: string, attached: Attached): void {
    clearTimeout(attached.idleTimer);
    attached.idleTimer = setTimeout(() => void this.#detach(id), this.#services.config.stallTimeoutMs);
    attached.idleTimer.unref();
  }

  async #detach(id: string): Promise<void> {
    const attached = this.#attached.get(id);
    if (!attached || attached.busy) return;
    this.#attached.delete(id);
    clearTimeout(attached.idleTimer);
    if (attached.open) this.#services.buffers.release(attached.open.buffer);
    attached.open = undefined;
    await attached.transfer.detach().catch((error: unknown) => {
      this.#services.logger.warn({ err: error, name: attached.transfer.session.name }, 'tus: saving an idle upload failed');
    });
  }

  /** The session `id` names, if the account may see it (another account's is not found, as its files are not). */
  #sessionOf(id: string, account: AccountView): UploadSessionRecord {
    const session = /^[0-9a-f-]{36}$/u.test(id) ? this.#services.store.sessions().find((candidate) => candidate.id === id) : undefined;
    if (!session || termsOf(session) === undefined || !account.owns(session.name) || (session.owner !== account.name && !account.isAdmin)) {
      throw new FerryError('ENOENT', 'no such upload (it finished, expired or was terminated)');
    }
    return session;
  }

  #expires(session: UploadSessionRecord): string {
    return new Date(session.touched + this.#services.config.sessionTtlMs).toUTCString();
  }
}

/** No tus upload is ever attached to the asking request itself: each PATCH is a request of its own. */
const notAttachedHere = (): boolean => false;

function endPatch(attached: Attached): void {
  attached.busy = false;
  for (const wake of attached.whenIdle.splice(0)) wake();
}

/** The bytes from the start that the recorded chunks cover without a gap: where a tus client resumes. */
function prefixOffset(verified: Map<number, bigint>, session: UploadSessionRecord): number {
  const count = chunkCountOf(session.size, session.chunkSize);
  let index = 0;
  while (index < count && verified.has(index)) index += 1;
  return Math.min(index * session.chunkSize, session.size);
}

function recordedOffset(services: ServerServices, session: UploadSessionRecord): number {
  return prefixOffset(services.store.verifiedChunks(session.id), session);
}

/** `Upload-Metadata: key base64,key base64`: the values decoded (a key alone has ''). */
function parseMetadata(header: string | undefined): Map<string, string> {
  const pairs = new Map<string, string>();
  if (header === undefined || header.trim() === '') return pairs;
  for (const pair of header.split(',')) {
    const [key = '', value = ''] = pair.trim().split(/\s+/u, 2);
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$/u.test(key) || !/^[A-Za-z0-9+/]*={0,2}$/u.test(value)) {
      throw new FerryError('EPROTO', 'Upload-Metadata is not "key base64" pairs separated by commas');
    }
    pairs.set(key, Buffer.from(value, 'base64').toString('utf8'));
  }
  return pairs;
}

/** A header sent once (a repeated one is taken as absent: no tus header repeats). */
function headerOf(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return typeof value === 'string' ? value : undefined;
}

function hasBody(request: IncomingMessage): boolean {
  return request.headers['content-type'] === 'application/offset+octet-stream' && Number(request.headers['content-length'] ?? '1') > 0;
}

function allowOnly(response: ServerResponse, method: string, allowed: string): FerryError {
  response.setHeader('Allow', allowed);
  return new FerryError('EPROTO', `${method} is not allowed here: use ${allowed}`);
}
