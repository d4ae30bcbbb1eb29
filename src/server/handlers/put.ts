import { FerryError } from '../../protocol/errors.js';
import { accountOf } from '../account-view.js';
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
  const identity = size === undefined || fingerprint === undefined ? undefined : { size, fingerprint };
  const claim = await ctx.services.uploads
    .claim(
      {
        name,
        file: identity,
        force,
        owner: account.name,
        ...(account.quotaBytes === undefined ? {} : { quota: { root: account.root, bytes: account.quotaBytes } }),
      },
      (upload) => ctx.ownsUpload(upload),
    )
    .catch((error: unknown) => {
      throw account.inOwnNames(error);
    });
  if (ctx.ending) {
    claim.cancel();
    throw new FerryError('ECONNLOST', 'client went away');
  }
  const upload = await ctx.attachUpload(claim, force);
  const { verified } = claim;
  ctx.log.info({ file: name, size: size ?? 'unknown', stream: upload.stream, resumedChunks: verified.size }, 'upload started');
  return {
    result: {
      stream: upload.stream,
      chunkSize: claim.session.chunkSize,
      verified: verifiedRanges(verified.keys()),
      resumed: verified.size > 0,
    },
  };
};
