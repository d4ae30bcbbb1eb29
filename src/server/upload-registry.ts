import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { resumableSha256 } from '../hashing/resumable-sha256.js';
import { isSha256State } from '../hashing/sha256-state.js';
import { type RunningSha256, runningSha256 } from '../hashing/running-sha256.js';
import type { Sha256Thread } from '../hashing/sha256-thread.js';
import { FerryError } from '../protocol/errors.js';
import { foldName } from '../protocol/names.js';
import type { MetaStore } from '../store/meta-store.js';
import { type StoredFile, type UploadSessionRecord, chunkLengthOf } from '../store/records.js';
import { fromSystemError } from '../system-errors.js';
import type { ServerConfig } from './config.js';
import type { ByteStore, FoundUpload } from './byte-store.js';
import type { SessionHashState } from './in-order-hasher.js';

/** What the registry needs of an upload attached to a connection (UploadTransfer is one). */
export interface ActiveUpload {
  readonly session: UploadSessionRecord;
  /** putEnd began: the upload is being verified and published and cannot be taken over. */
  readonly finishing: boolean;
  /** Settles once the upload no longer holds its name. */
  readonly released: Promise<void>;
  abort(error: FerryError): void;
}

/** The local file a `put` sends: what a later `put` of the same file matches to resume its session. */
export interface FileIdentity {
  size: number;
  fingerprint: string;
}

/**
 * What a `put` asks for. `owner` is who the session is counted against (the logged-in account).
 * Without `file`, the upload comes from a stream of unknown size (standard input): its
 * session lives only as long as its upload (it is never saved: a stream cannot be read again), and
 * its `putEnd` says the size.
 */
export interface PutRequest {
  name: string;
  file: FileIdentity | undefined;
  force: boolean;
  owner: string;
  /** The account's own limit, if it has one. */
  quota?: AccountQuota;
}

/** An account's limit: the bytes of the files under its root plus what its unfinished uploads there have received. */
export interface AccountQuota {
  root: string;
  bytes: number;
}

/** A put that passed every rule: the session it resumes (or starts) and the name, held until `attach` or `cancel`. */
export interface ClaimedUpload {
  readonly session: UploadSessionRecord;
  /** Chunk index -> xxh64 of every chunk the session has recorded. */
  readonly verified: Map<number, bigint>;
  readonly hashState: SessionHashState;
  /**
   * The upload comes from a stream of unknown size: the session is not saved, its `size` is the
   * most it may become (the file size limit) until `putEnd` fixes it, and it goes with its upload.
   */
  readonly streamed: boolean;
  /** The upload that now holds the name. */
  attach(upload: ActiveUpload): void;
  /** The put failed after its claim: the name is let go. */
  cancel(): void;
}

/**
 * On a shared store, an unfinished upload another server touched this recently is taken to be in
 * progress there: a put of another file to its name is refused (EBUSY) rather than dropping it.
 * An upload being sent records its progress at least every chunk.
 */
const sharedUploadLiveMs = 60_000;

/** Holds a name while a `put` of it is being set up, before its upload exists. */
class PendingClaim {
  readonly settled: Promise<void>;
  readonly settle: () => void;
  /** Set while the whole put that holds the name publishes it (see `isPublishing`). */
  publishing = false;

  constructor() {
    let settle!: () => void;
    this.settled = new Promise<void>((resolve) => {
      settle = resolve;
    });
    this.settle = settle;
  }
}

/** What an unfinished upload session counts against the storage quota. */
interface SessionCharge {
  /** Distinct bytes received so far: what it counts against an account's quota (no reserve there). */
  received: number;
  /** The quota of the account whose put attached it last, if it has one. */
  quota?: AccountQuota;
  readonly id: string;
  readonly size: number;
  readonly owner: string;
  /** Bytes counted against the quota now: what it has received plus a bounded reserve, at most its size. */
  charged: number;
}

/**
 * The one owner of the upload rules (docs/design.md, "Uploads"): who may write a name (one writer
 * per name, taken over only by the same file from a newer connection), which session a put
 * resumes, the file size limit, the storage quota and the limits on sessions, and each session's
 * running SHA-256 state.
 *
 * Quota: stored files count their size; an unfinished session counts what it has received plus a
 * reserve of `sessionReserveBytes` (at most its declared size), grown as its data arrives. So a
 * put that declares a huge size and sends nothing holds only the reserve, whatever it declared.
 */
export class UploadRegistry {
  readonly #store: MetaStore;
  readonly #bytes: ByteStore;
  readonly #config: ServerConfig;
  readonly #sha256: Sha256Thread;
  readonly #log: Logger;
  /** Uploads attached to a live connection (or being set up), by name: one writer per name. */
  readonly #active = new Map<string, ActiveUpload | PendingClaim>();
  /** Unfinished sessions, by name, with what each counts against the quota. */
  readonly #charges = new Map<string, SessionCharge>();
  /** Bytes of the stored files under each account root asked about so far, kept up to date as files come and go. */
  readonly #storedUnder = new Map<string, number>();
  #chargedBytes = 0;
  /** Bytes reserved by puts past their checks whose session is not saved yet. */
  #reservedBytes = 0;
  /** Running SHA-256 progress by session id; lost on restart (the file is then hashed at the end). */
  readonly #hashStates = new Map<string, SessionHashState>();
  /** Ids of sessions whose upload is detached but whose hash state is kept, oldest first. */
  readonly #detachedHashes = new Set<string>();
  /** Per name, the end of the publish or delete running now (see `exclusive`). */
  readonly #nameLocks = new Map<string, Promise<void>>();
  /**
   * Whether the data directory's file system takes names that differ only by case for one file
   * (probed at start-up): the rules then hold per folded name (`foldName`), not per name.
   */
  readonly #caseInsensitive: boolean;

  constructor(options: { store: MetaStore; bytes: ByteStore; config: ServerConfig; sha256: Sha256Thread; logger: Logger }) {
    this.#caseInsensitive = options.config.caseInsensitiveNames ?? false;
    this.#store = options.store;
    this.#bytes = options.bytes;
    this.#config = options.config;
    this.#sha256 = options.sha256;
    this.#log = options.logger;
  }

  /** Reads the sessions LMDB holds (after start-up recovery): what each counts against the quota. */
  load(): void {
    this.#charges.clear();
    this.#chargedBytes = 0;
    for (const session of this.#store.sessions()) {
      let received = 0;
      for (const index of this.#store.verifiedChunks(session.id).keys()) received += chunkLengthOf(index, session.size, session.chunkSize);
      this.#addCharge(session, received);
    }
  }

  /** Bytes stored plus what unfinished uploads count: what the quota compares with `maxStorageBytes`. */
  get usedBytes(): number {
    return this.#store.stats().bytes + this.#chargedBytes + this.#reservedBytes;
  }

  get sessionCount(): number {
    return this.#charges.size;
  }

  /**
   * Everything a `put` must pass before its upload may attach, in order: the name may be created,
   * the name is free (waiting for, or taking over, an upload of it still attached elsewhere), the
   * size, session and quota limits; then the session it resumes, or a new one with its partial
   * file. `ownsUpload` tells an upload attached to the asking connection itself.
   */
  async claim(request: PutRequest, ownsUpload: (upload: ActiveUpload) => boolean): Promise<ClaimedUpload> {
    const { name } = request;
    const admitted = await this.#admit(request, ownsUpload, { sessionless: false });
    const { pending } = admitted;
    let reserved = admitted.reserved;
    try {
      const { session, verified, hashState } = this.#bytes.findUpload
        ? await this.#claimShared(request, this.#bytes.findUpload.bind(this.#bytes))
        : await this.#claimLocal(request);
      this.#reservedBytes -= reserved;
      reserved = 0;
      const charge = this.#charges.get(session.name);
      if (charge) {
        if (request.quota) charge.quota = request.quota;
        else delete charge.quota;
      }
      const streamed = request.file === undefined;
      return {
        session,
        verified,
        hashState,
        streamed,
        attach: (upload) => {
          this.#active.set(this.#key(name), upload);
          pending.settle();
        },
        cancel: () => {
          this.#letGo(name, pending);
          if (streamed) void this.dropStreamed(session);
        },
      };
    } catch (error) {
      this.#reservedBytes -= reserved;
      this.#letGo(name, pending);
      throw error;
    }
  }

  /** The session a put resumes (or starts) on the data directory, what it has recorded, and its running hash. */
  async #claimLocal(
    request: PutRequest,
  ): Promise<{ session: UploadSessionRecord; verified: Map<number, bigint>; hashState: SessionHashState }> {
    const session = await this.#findOrStartSession(request);
    const verified = this.#store.verifiedChunks(session.id);
    return { session, verified, hashState: this.#hashStateFor(session, verified.size) };
  }

  /**
   * The same on a store several servers share: the store is the record of unfinished uploads, and
   * LMDB follows it. The upload of the name found there (whichever server began it) is resumed if
   * it is the same file and fresh, from its running hash's saved state: its chunks past that
   * state's end are sent again (they cannot be read back to be hashed). Anything else of the
   * name is dropped, and a new upload begins.
   */
  async #claimShared(
    request: PutRequest,
    findUpload: (name: string) => Promise<FoundUpload | undefined>,
  ): Promise<{ session: UploadSessionRecord; verified: Map<number, bigint>; hashState: SessionHashState }> {
    const { name, file } = request;
    const { chunkSizeBytes, sessionTtlMs } = this.#config;
    const found = await findUpload(name);
    const local = this.#store.session(name);
    if (local && local.id !== found?.session.id) await this.dropSession(local);
    if (found) {
      const { session } = found;
      // An upload from a stream (`file` undefined) never resumes one: it starts anew.
      const matches =
        file !== undefined &&
        session.size === file.size &&
        session.fingerprint === file.fingerprint &&
        session.chunkSize === chunkSizeBytes;
      const hashState = matches && Date.now() - session.touched < sessionTtlMs ? await this.#takeUpHash(found) : undefined;
      if (hashState) {
        const verified = new Map([...found.chunks].filter(([index]) => index < hashState.next));
        if (local) await this.#store.dropSession(local);
        await this.#store.saveSession(session);
        await this.#store.recordChunks(session, verified);
        let received = 0;
        for (const index of verified.keys()) received += chunkLengthOf(index, session.size, session.chunkSize);
        this.#addCharge(session, received);
        return { session, verified, hashState };
      }
      // Another server's upload of another file, touched a moment ago: most likely still going there.
      const othersLive = !matches && local?.id !== session.id && Date.now() - session.touched < sharedUploadLiveMs;
      if (othersLive) throw new FerryError('EBUSY', `${name} is being uploaded through another server; try again later`);
      this.#forgetHash(found.session.id);
      this.#removeCharge(found.session);
      await this.#bytes.removeUpload(found.session);
    }
    const session = await this.#findOrStartSession(request);
    const hashState: SessionHashState = { next: 0, broken: false, sha256: await resumableSha256(this.#sha256) };
    this.#hashStates.set(session.id, hashState);
    return { session, verified: new Map(), hashState };
  }

  /**
   * The running hash of a found upload: this server's own if it is at the saved state's point,
   * else one begun from the saved state; undefined if that state cannot be taken up (a form this
   * server does not read): then the upload starts over, as its chunks cannot be read back.
   */
  async #takeUpHash(found: FoundUpload): Promise<SessionHashState | undefined> {
    const { session } = found;
    const live = this.#hashStates.get(session.id);
    const savedNext = found.hash?.next ?? 0;
    if (live && !live.broken && live.next === savedNext) {
      this.#detachedHashes.delete(session.id);
      return live;
    }
    this.#forgetHash(session.id);
    const state = found.hash?.state;
    if (state !== undefined && !isSha256State(state)) return undefined;
    // Any other failure (the hashing thread's) fails the put: the upload stays for a later one.
    const sha256 = await resumableSha256(this.#sha256, state);
    const hashState: SessionHashState = { next: savedNext, broken: false, sha256 };
    this.#hashStates.set(session.id, hashState);
    return hashState;
  }

  /**
   * A whole small file (`putWhole`) under the same rules as a put: the name may be created and is
   * free (held for the call, as a put holds it), its size fits the limits and quotas (reserved
   * until it is stored). No session is made: the file is complete before it is asked for. Then
   * `publish` runs under the name's lock, given the unfinished session of the name (from an
   * earlier put), if there is one, for its commit to end.
   */
  async storeWhole(
    request: PutRequest & { file: FileIdentity },
    ownsUpload: (upload: ActiveUpload) => boolean,
    publish: (staleSession: UploadSessionRecord | undefined) => Promise<{ file: StoredFile; replacedBytes: number }>,
  ): Promise<StoredFile> {
    const { name } = request;
    const { pending, reserved } = await this.#admit(request, ownsUpload, { sessionless: true });
    try {
      const stale = this.#store.session(name);
      // From the rename to the commit, a download of the old file may read the new bytes: it
      // must take that for a replace (ECHANGED), not for damage.
      pending.publishing = true;
      const { file, replacedBytes } = await this.exclusive(name, () => publish(stale));
      this.storedChanged(name, replacedBytes, file.size);
      if (stale) {
        this.#forgetHash(stale.id);
        this.#removeCharge(stale);
        await this.#bytes.removeUpload(stale);
      }
      return file;
    } finally {
      this.#reservedBytes -= reserved;
      this.#letGo(name, pending);
    }
  }

  /**
   * What every put passes first: the name may be created, then it is held for this put, then
   * (the put it waited for may have finished the file meanwhile) it may still be created and
   * the size fits the limits (#reserve). Returns the hold and the bytes reserved.
   */
  async #admit(
    request: PutRequest,
    ownsUpload: (upload: ActiveUpload) => boolean,
    options: { sessionless: boolean },
  ): Promise<{ pending: PendingClaim; reserved: number }> {
    const { name, force } = request;
    this.#checkCanCreate(name, force);
    const pending = await this.#holdName(request, ownsUpload);
    try {
      this.#checkCanCreate(name, force);
      return { pending, reserved: this.#reserve(request, options) };
    } catch (error) {
      this.#letGo(name, pending);
      throw error;
    }
  }

  /** A put that held `name` lets go of it: the next one may proceed. */
  #letGo(name: string, pending: PendingClaim): void {
    if (this.#active.get(this.#key(name)) === pending) this.#active.delete(this.#key(name));
    pending.settle();
  }

  /**
   * Runs `critical` once no other publish or delete of `name` is running: the two never
   * interleave (a delete removing the bytes a publish has just put in place, or the reverse).
   */
  async exclusive<T>(name: string, critical: () => Promise<T>): Promise<T> {
    const key = this.#key(name);
    const before = this.#nameLocks.get(key) ?? Promise.resolve();
    const run = before.then(critical);
    const tail = run.then(
      () => undefined,
      () => undefined, // the caller hears of the failure through `run`; the next one goes ahead
    );
    this.#nameLocks.set(key, tail);
    try {
      return await run;
    } finally {
      if (this.#nameLocks.get(key) === tail) this.#nameLocks.delete(key);
    }
  }

  /** An upload of `name` is being verified and published (a download of the old file may see it change). */
  isPublishing(name: string): boolean {
    const active = this.#active.get(this.#key(name));
    if (active instanceof PendingClaim) return active.publishing;
    return active !== undefined && active.finishing;
  }

  /** The upload lets go of its name (finished, failed or detached): the next put of it may proceed. */
  release(upload: ActiveUpload): void {
    if (this.#active.get(this.#key(upload.session.name)) === upload) this.#active.delete(this.#key(upload.session.name));
  }

  /**
   * The session has received `bytes` distinct bytes in all: its charge grows to cover them plus
   * the reserve. Throws EQUOTA (and charges nothing more) when that would pass the quota.
   */
  chargeReceived(session: UploadSessionRecord, bytes: number): void {
    const charge = this.#charges.get(session.name);
    if (!charge || charge.id !== session.id) return;
    if (charge.quota && bytes > charge.received) {
      const { root, bytes: limit } = charge.quota;
      const used = this.#accountUsage(root, session.name) - charge.received;
      if (used + bytes > limit) {
        throw new FerryError('EQUOTA', `${session.name}: your quota is full (${used} of ${limit} bytes in use)`);
      }
    }
    charge.received = Math.max(charge.received, bytes);
    if (bytes <= charge.charged) return;
    const wanted = Math.min(session.size, bytes + this.#config.sessionReserveBytes);
    const used = this.usedBytes;
    if (used + wanted - charge.charged > this.#config.maxStorageBytes) {
      throw new FerryError(
        'EQUOTA',
        `${session.name}: the server's storage quota is full (${used} of ${this.#config.maxStorageBytes} bytes in use)`,
      );
    }
    this.#chargedBytes += wanted - charge.charged;
    charge.charged = wanted;
  }

  /** The upload detached from its connection: its hash state is kept, among the most recent few. */
  detached(session: UploadSessionRecord): void {
    if (!this.#hashStates.has(session.id)) return;
    this.#detachedHashes.delete(session.id);
    this.#detachedHashes.add(session.id);
    for (const oldest of this.#detachedHashes) {
      if (this.#detachedHashes.size <= this.#config.maxDetachedHashStates) break;
      this.#forgetHash(oldest);
    }
  }

  /** The session became a stored file (its record is committed), replacing one of `replacedBytes`: it no longer counts as unfinished. */
  published(session: UploadSessionRecord, replacedBytes: number): void {
    this.#forgetHash(session.id);
    this.#removeCharge(session);
    this.storedChanged(session.name, replacedBytes, session.size);
  }

  /** The stored file `name` went from `before` bytes to `after` (0: none): the accounts' usage follows. */
  storedChanged(name: string, before: number, after: number): void {
    for (const [root, bytes] of this.#storedUnder) if (name.startsWith(root)) this.#storedUnder.set(root, bytes - before + after);
  }

  /**
   * What an account with `root` uses: the stored files under it (except `replacing`, which a
   * put replaces) plus what its unfinished uploads have received.
   */
  #accountUsage(root: string, replacing: string): number {
    let stored = this.#storedUnder.get(root);
    if (stored === undefined) {
      stored = 0;
      for (const file of this.#store.filesFrom({ prefix: root })) stored += file.size;
      this.#storedUnder.set(root, stored);
    }
    let received = 0;
    for (const [name, charge] of this.#charges) if (name.startsWith(root)) received += charge.received;
    return stored - (this.#store.fileRecord(replacing)?.size ?? 0) + received;
  }

  /** Forgets a session: its records, its partial data, its hash state and its charge. */
  async dropSession(session: UploadSessionRecord): Promise<void> {
    await this.#forgetSession(session);
    await this.#bytes.removeUpload(session);
  }

  /** Forgets what this server holds of a session (records, hash state, charge), leaving its data where it is stored. */
  async #forgetSession(session: UploadSessionRecord): Promise<void> {
    this.#forgetHash(session.id);
    await this.#store.dropSession(session);
    this.#removeCharge(session);
  }

  /**
   * Forgets the session of an upload from a stream, which ended without being published: nothing
   * of it can be resumed (it was never saved), so its partial data goes at once.
   */
  dropStreamed(session: UploadSessionRecord): Promise<void> {
    this.#forgetHash(session.id);
    this.#removeCharge(session);
    return this.#bytes.removeUpload(session).catch((error: unknown) => {
      this.#log.warn({ err: error, name: session.name }, 'upload: removing the partial data of a streamed upload failed');
    });
  }

  /**
   * Drops every session untouched for `sessionTtlMs` whose upload is not attached: run while the
   * server runs (start-up recovery does the same before it listens). Returns the names dropped.
   */
  async expireIdle(now = Date.now()): Promise<string[]> {
    const cutoff = now - this.#config.sessionTtlMs;
    const expired = this.#store.sessions().filter((session) => session.touched < cutoff && !this.#active.has(this.#key(session.name)));
    for (const session of expired) {
      // In a shared store, another server may be working on it: the store's own record of when it
      // was last touched decides there (ByteStore.expireAbandoned); here only this server's copy goes.
      if (this.#bytes.keepsProgress) await this.#forgetSession(session);
      else await this.dropSession(session);
    }
    return expired.map((session) => session.name);
  }

  // ---- rules ----

  /**
   * `name` may be created: it is not a stored file (unless replacing it is asked for), and it
   * neither is nor lies under one (a name cannot be both a file and a folder: `a` and `a/b`
   * exclude each other).
   */
  #checkCanCreate(name: string, force: boolean): void {
    const store = this.#store;
    if (store.fileRecord(name) && !force) throw new FerryError('EEXIST', `${name} already exists (use --force to replace it)`);
    if (this.#caseInsensitive) this.#checkFoldedClash(name);
    const segments = name.split('/');
    for (let depth = 1; depth < segments.length; depth += 1) {
      const folder = segments.slice(0, depth).join('/');
      if (store.fileRecord(folder)) throw new FerryError('EEXIST', `${name}: ${folder} is a file, not a folder`);
    }
    if (store.holdsFilesUnder(name + '/')) throw new FerryError('EEXIST', `${name} is a folder of stored files`);
  }

  /**
   * On a case-insensitive file system: `name` is not another stored name's file, nor a folder of
   * another's files, nor under a file of another name (`a` and `A/b` exclude each other there).
   */
  #checkFoldedClash(name: string): void {
    const store = this.#store;
    const folded = foldName(name);
    const other = store.namesFolding(folded).find((stored) => stored !== name);
    if (other !== undefined)
      throw new FerryError('EEXIST', `${name} would be the same file as ${other} on this server's case-insensitive file system`);
    const segments = name.split('/');
    for (let depth = 1; depth < segments.length; depth += 1) {
      const file = store.namesFolding(foldName(segments.slice(0, depth).join('/')))[0];
      if (file !== undefined)
        throw new FerryError('EEXIST', `${name}: ${file} is a file, not a folder, on this server's case-insensitive file system`);
    }
    const inside = store.namesFolding(`${folded}/`, true)[0];
    if (inside !== undefined)
      throw new FerryError('EEXIST', `${name} would be the folder of ${inside} on this server's case-insensitive file system`);
  }

  /**
   * One writer per name: holds `name` for this put, waiting first if the same file (same size and
   * fingerprint) is still attached to another connection and not being finished. That is almost
   * always the same client back after a dropped link its old connection has not noticed yet: the
   * old connection gets `takeoverGraceMs` to read what is still in its socket buffer and notice
   * the end by itself (so those bytes are not sent twice); then it is aborted. Anything else is
   * refused with EBUSY, but for the same file being published: that one is waited for. The hold is taken in the same tick as the check that found the name free,
   * so of several puts racing for a name exactly one gets it.
   */
  async #holdName(request: PutRequest, ownsUpload: (upload: ActiveUpload) => boolean): Promise<PendingClaim> {
    const { name, file } = request;
    for (let active = this.#active.get(this.#key(name)); active; active = this.#active.get(this.#key(name))) {
      if (active instanceof PendingClaim) {
        // Another put of the name is being set up (often this client's own previous attempt, still
        // waiting for a takeover): see what it became.
        await active.settled;
        continue;
      }
      // Only the same file on a stale connection is taken over: not one on this connection, nor one being finished.
      if (ownsUpload(active)) throw new FerryError('EBUSY', `${name} is being uploaded on this connection already`);
      if (active.session.name !== name) {
        throw new FerryError(
          'EBUSY',
          `${active.session.name}, the same file as ${name} on this server's case-insensitive file system, is being uploaded`,
        );
      }
      // A stream is never the same file as anything: its session's fingerprint is empty, which no put sends.
      const sameFile = file !== undefined && active.session.size === file.size && active.session.fingerprint === file.fingerprint;
      if (active.finishing) {
        if (!sameFile) throw new FerryError('EBUSY', `${name} is being verified and published; try again when it is done`);
        // The same file being published: almost always this client's own attempt, whose link
        // dropped after its putEnd. Its outcome decides what this put is (EEXIST once published,
        // the session to resume if not), and it comes soon.
        await active.released;
        continue;
      }
      if (!sameFile) throw new FerryError('EBUSY', `${name} is being uploaded by another client`);
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<'grace over'>((resolve) => {
        timer = setTimeout(() => resolve('grace over'), this.#config.takeoverGraceMs);
      });
      const outcome = await Promise.race([active.released, graceOver]);
      clearTimeout(timer);
      if (outcome === 'grace over') {
        active.abort(new FerryError('EBUSY', `${name}: this upload was taken over by a newer connection`));
        await active.released;
      }
    }
    const pending = new PendingClaim();
    this.#active.set(this.#key(name), pending);
    return pending;
  }

  /**
   * Limits, checked from the declared size before anything is written: the file size limit; the
   * number of unfinished sessions, in all and of this owner (a put that resumes its session adds
   * none, nor does a whole put: it makes no session); and the quota, which the declared size must fit (a file this put replaces, or this
   * name's own earlier session, do not count twice). On success the first reserve is taken in the
   * same tick as the check, so puts racing for the last free bytes cannot all pass; returns it.
   */
  #reserve(request: PutRequest, { sessionless }: { sessionless: boolean }): number {
    const { name, owner } = request;
    // A stream declares nothing: its data is checked against the limits as it arrives.
    const size = request.file?.size ?? 0;
    const config = this.#config;
    if (size > config.maxFileSizeBytes) {
      throw new FerryError('EQUOTA', `${name}: ${size} bytes is over this server's file size limit of ${config.maxFileSizeBytes} bytes`);
    }
    const own = this.#charges.get(name);
    if (!own && !sessionless) {
      if (this.#charges.size >= config.maxSessions) {
        throw new FerryError(
          'EQUOTA',
          `the server holds its limit of ${config.maxSessions} unfinished uploads; finish or let some expire first`,
        );
      }
      let ownerSessions = 0;
      for (const charge of this.#charges.values()) if (charge.owner === owner) ownerSessions += 1;
      if (ownerSessions >= config.maxSessionsPerOwner) {
        throw new FerryError('EQUOTA', `${owner} has ${ownerSessions} unfinished uploads, the most one client may have; finish some first`);
      }
    }
    const used = this.usedBytes - (this.#store.file(name)?.size ?? 0) - (own?.charged ?? 0);
    if (used + size > config.maxStorageBytes) {
      throw new FerryError(
        'EQUOTA',
        `${name}: ${size} more bytes would exceed this server's storage quota (${used} of ${config.maxStorageBytes} bytes in use)`,
      );
    }
    if (request.quota) {
      const { root, bytes: limit } = request.quota;
      const accountUsed = this.#accountUsage(root, name) - (own?.received ?? 0);
      if (accountUsed + size > limit) {
        throw new FerryError('EQUOTA', `${name}: ${size} more bytes would pass your quota (${accountUsed} of ${limit} bytes in use)`);
      }
    }
    const reserve = request.file ? Math.min(size, config.sessionReserveBytes) : config.sessionReserveBytes;
    this.#reservedBytes += reserve;
    return reserve;
  }

  /**
   * Resume rule (docs/design.md, "Resume"): an upload finds its session again by name and matches
   * it on size, fingerprint and chunk size. A session that does not match, or that expired, is
   * dropped with its partial data and the upload starts over.
   */
  async #findOrStartSession(request: PutRequest): Promise<UploadSessionRecord> {
    const { name, file, owner } = request;
    const { chunkSizeBytes, sessionTtlMs, maxFileSizeBytes } = this.#config;
    const now = Date.now();
    const existing = this.#store.session(name);
    if (existing) {
      const matches = existing.size === file?.size && existing.fingerprint === file.fingerprint && existing.chunkSize === chunkSizeBytes;
      const fresh = now - existing.touched < sessionTtlMs;
      if (matches && fresh && (await this.#bytes.uploadExists(existing))) return existing;
      await this.dropSession(existing);
    }
    const session: UploadSessionRecord = {
      id: randomUUID(),
      name,
      // A stream's size is unknown until its putEnd: until then, the most it may become.
      size: file?.size ?? maxFileSizeBytes,
      fingerprint: file?.fingerprint ?? '',
      chunkSize: chunkSizeBytes,
      created: now,
      touched: now,
      owner,
    };
    try {
      await this.#bytes.createUpload(session, file?.size);
    } catch (error) {
      // Whatever was made of it goes; if even that fails, the creation's failure is the one to report.
      await this.#bytes.removeUpload(session).catch(() => undefined);
      throw fromSystemError(error, `creating partial file for ${name}`);
    }
    if (file) await this.#store.saveSession(session);
    this.#addCharge(session, 0);
    return session;
  }

  /** The key a name's upload rules are kept under: the name, or its folded form on a case-insensitive file system. */
  #key(name: string): string {
    return this.#caseInsensitive ? foldName(name) : name;
  }

  #addCharge(session: UploadSessionRecord, received: number): void {
    this.#removeCharge(session);
    const charged = Math.min(session.size, received + this.#config.sessionReserveBytes);
    this.#charges.set(session.name, { id: session.id, size: session.size, owner: session.owner ?? 'unknown', charged, received });
    this.#chargedBytes += charged;
  }

  #removeCharge(session: UploadSessionRecord): void {
    const charge = this.#charges.get(session.name);
    if (!charge || charge.id !== session.id) return;
    this.#charges.delete(session.name);
    this.#chargedBytes -= charge.charged;
  }

  /**
   * The running SHA-256 state of a session: this process's, if it hashed the session from its
   * first chunk; else a new one, broken when chunks were recorded before (after a restart they
   * were never fed: the file is hashed in one pass at the end).
   */
  #hashStateFor(session: UploadSessionRecord, resumedChunks: number): SessionHashState {
    this.#detachedHashes.delete(session.id);
    let state = this.#hashStates.get(session.id);
    if (!state) {
      const sha256: RunningSha256 = runningSha256(session.size, this.#sha256);
      state = { next: 0, broken: resumedChunks > 0, sha256 };
      if (state.broken) sha256.drop();
      this.#hashStates.set(session.id, state);
    }
    return state;
  }

  #forgetHash(sessionId: string): void {
    const state = this.#hashStates.get(sessionId);
    this.#detachedHashes.delete(sessionId);
    if (!state) return;
    this.#hashStates.delete(sessionId);
    if (!state.broken) state.sha256.drop();
    this.#log.debug({ session: sessionId }, 'upload: running hash state dropped');
  }
}
