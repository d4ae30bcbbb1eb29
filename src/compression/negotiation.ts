import { FerryError } from '../protocol/errors.js';
import { type CodecName, codecNames } from '../protocol/frames.js';
import type { CompressChoice } from './choices.js';
import { localCodec, localCodecs } from './codecs.js';
import type { CompressMode } from './packing-policy.js';

export { type CompressChoice, compressChoices } from './choices.js';

/** A server lists each codec it takes and sends as the capability `compress:<codec>`. */
const capabilityPrefix = 'compress:';

/** This process's codecs as capabilities (for a server's `hello` and `info`). */
export function codecCapabilities(): string[] {
  return [...localCodecs().keys()].map((codec) => capabilityPrefix + codec);
}

/** The codecs a peer's capabilities offer. */
export function offeredCodecs(capabilities: readonly string[]): CodecName[] {
  return codecNames.filter((codec) => capabilities.includes(capabilityPrefix + codec));
}

/** `auto` picks the first codec both sides have, in this order: zstd's ratio at brotli's speed, then brotli's ratio, then lz4. */
const autoPreference: readonly CodecName[] = ['zstd', 'brotli', 'lz4'];

/** How a transfer packs its chunks: with which codec, always or when it pays. */
export interface Packing {
  codec: CodecName;
  mode: Exclude<CompressMode, 'off'>;
}

/**
 * How a transfer with a server of these capabilities packs its chunks, for the user's choice:
 * undefined for `off`, or for `auto` when no codec is on both sides (an older server). A codec
 * asked for by name that either side lacks is an error (ECONFIG), not a silent fallback.
 */
export function packingFor(choice: CompressChoice, serverCapabilities: readonly string[]): Packing | undefined {
  if (choice === 'off') return undefined;
  const offered = offeredCodecs(serverCapabilities);
  if (choice === 'auto') {
    // In order, so that a codec after the first both sides have is not even loaded.
    const codec = autoPreference.find((each) => offered.includes(each) && localCodec(each) !== undefined);
    return codec && { codec, mode: 'auto' };
  }
  if (!localCodec(choice)) throw new FerryError('ECONFIG', `this client has no ${choice} codec (${codecAvailability(choice)})`);
  if (!offered.includes(choice)) {
    const others = offered.length > 0 ? `it offers ${offered.join(', ')}` : 'it offers none';
    throw new FerryError('ECONFIG', `the server does not take ${choice}-compressed chunks (${others})`);
  }
  return { codec: choice, mode: 'always' };
}

/** Where a codec comes from, for a message about its absence. */
export function codecAvailability(codec: CodecName): string {
  switch (codec) {
    case 'brotli':
      return "built into Node's zlib";
    case 'zstd':
      return "in Node's zlib from Node 22.15";
    case 'lz4':
      return 'needs the optional lz4-napi package';
  }
}
