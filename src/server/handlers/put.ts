import { FerryError } from '../../protocol/errors.js';
import type { PutResult } from '../../protocol/messages.js';
import { type AccountView, accountOf } from '../account-view.js';
import type { ActiveUpload, ClaimedUpload, PutRequest, UploadRegistry } from '../upload-registry.js';
import { UploadTransfer } from '../upload-transfer.js';
import { capability } from '../../protocol/capabilities.js';
import { capabilitiesOf } from './hello.js';
import type { Handler } from './types.js';

/** [start, end) runs of the chunk indexes in `verified`, in order. */
export function verifiedRanges(verified: Iterable<number>): [number, number][] {
  const ranges: [number, number][] = [];
  for (const index of [...verified].sort((a, b) => a - b)) {
    const last = ranges.at(-1);
    if (last && last[1] === index) last[1] = index + 1;
    else ranges.push([index, index + 1]);
  }
  return ranges;
}

/** A put of a stored name as the registry takes it: counted against `account`, within its quota. */
export function putRequestOf(account: AccountView, request: Pick<PutRequest, 'name' | 'file' | 'force'>): PutRequest {
  const put: PutRequest = { ...request, owner: account.name };
  if (account.quotaBytes !== undefined) put.quota = { root: account.root, bytes: account.quotaBytes };
  return put;
}

/**
 * Claims the upload of a stored name for `account` by the registry's rules (a Ferry put, a tus
 * upload): the session counts against the account, within its quota; errors speak of its names.
 */
export function claimFor(
  uploads: UploadRegistry,
  account: AccountView,
  request: Pick<PutRequest, 'name' | 'file' | 'force'>,
  ownsUpload: (upload: ActiveUpload) => boolean,
): Promise<ClaimedUpload> {
  return uploads.claim(putRequestOf(account, request), ownsUpload).catch((error: unknown) => {
    throw account.inOwnNames(error);
  });
}

/** Starts or resumes an upload: the upload rules are the registry's; this attaches the result to the connection. */
export const put: Handler<'put'> = async (request, ctx) => {
  const account = accountOf(ctx);
  const name = account.stored(request.name);
  const force = request.force ?? false;
  const { size, fingerprint } = request;
  if (size !== undefined && fingerprint === undefined)
    throw new FerryError('EPROTO', 'bad put request: a put with a size needs a fingerprint');
  if (size === undefined && fingerprint !== undefined) {
    throw new FerryError('EPROTO', 'bad put request: a put without a size (from a stream) cannot be resumed and takes no fingerprint');
  }
  if (request.joinable && (size === undefined || !capabilitiesOf(ctx.services).includes(capability.putJoin))) {
    throw new FerryError(
      'EPROTO',
      'bad put request: this upload cannot take chunks from other connections (a put from a stream, or a server without put-join)',
    );
  }
  const identity = size === undefined || fingerprint === undefined ? undefined : { size, fingerprint };
  const claim = await claimFor(ctx.services.uploads, account, { name, file: identity, force }, (upload) => ctx.ownsUpload(upload));
  if (ctx.ending) {
    claim.cancel();
    throw new FerryError('ECONNLOST', 'client went away');
  }
  const upload = await ctx.attachUpload(claim, force);
  const { verified } = claim;
  ctx.log.info({ file: name, size: size ?? 'unknown', stream: upload.stream, resumedChunks: verified.size }, 'upload started');
  const result: PutResult = {
    stream: upload.stream,
    chunkSize: claim.session.chunkSize,
    verified: verifiedRanges(verified.keys()),
    resumed: verified.size > 0,
  };
  if (request.joinable) result.joinKey = upload.joinable();
  return { result };
};

/**
 * Another connection of the same account joins an upload (parallel streams): from here on its
 * chunks for the upload come on the stream this returns. The upload stays its own connection's:
 * that one ends it with `putEnd`, and when it goes, the joined streams' chunks are skipped.
 */
export const putJoin: Handler<'putJoin'> = (request, ctx) => {
  const upload = UploadTransfer.joinedBy(ctx.services, request.key, accountOf(ctx).name);
  if (!upload) throw new FerryError('ENOENT', 'no upload to join under that key (it finished, failed or was cut)');
  return { result: { stream: ctx.joinUpload(upload), chunkSize: upload.session.chunkSize } };
};
