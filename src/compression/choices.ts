import { type CodecName, codecNames } from '../protocol/frames.js';

/**
 * What a user asks for: `auto` (compress when it pays), `off`, or one codec for every chunk. Apart
 * from the negotiation so that the CLI can list the choices without loading the codecs (node:zlib).
 */
export type CompressChoice = 'auto' | 'off' | CodecName;

export const compressChoices: readonly CompressChoice[] = ['auto', 'off', ...codecNames];
