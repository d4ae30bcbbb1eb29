/**
 * Frame layout (docs/protocol.md, "Framing"). Every frame is
 *
 *   u32 BE  bodyLength   bytes that follow this field (>= 1)
 *   u8      type         FrameType
 *   ...     body         bodyLength - 1 bytes
 *
 * CONTROL body: one UTF-8 JSON object (a request, a reply or an event).
 * CHUNK body:   u32 BE stream, u64 BE offset, u64 BE xxh64 of the payload, then the payload.
 * PACKED body:  a CHUNK's fields (the xxh64 is of the raw bytes), then u32 BE rawLength and u8
 *               codec, then the payload: the chunk's raw bytes compressed with that codec.
 */
export const FrameType = {
  control: 1,
  chunk: 2,
  packed: 3,
} as const;

/** Codec numbers of PACKED frames, by the name the CLI, `info` and `get` use. */
export const codecIds = {
  lz4: 1,
  zstd: 2,
  brotli: 3,
} as const;

export type CodecName = keyof typeof codecIds;

export const codecNames = Object.keys(codecIds) as CodecName[];

/** The codec a PACKED frame's number stands for, if any. */
export function codecNamed(id: number): CodecName | undefined {
  return codecNames.find((name) => codecIds[name] === id);
}

export const protocolVersion = 2;

/** Bytes before a frame's body: the length field and the type byte. */
export const frameHeaderBytes = 5;
/** Bytes of a CHUNK body before its payload: stream, offset, xxh64. */
export const chunkFieldsBytes = 4 + 8 + 8;
/** Bytes of a PACKED body before its payload: a CHUNK's fields, rawLength and codec. */
export const packedFieldsBytes = chunkFieldsBytes + 4 + 1;

export const defaultMaxControlBytes = 256 * 1024;
/** No chunk payload may exceed this, whatever a server is configured with. */
export const maxChunkBytesCeiling = 64 * 1024 * 1024;

export interface ChunkHeader {
  /** Transfer this chunk belongs to, as assigned by the server in its reply to `put` or `get`. */
  readonly stream: number;
  /** Byte offset of the payload in the file. */
  readonly offset: number;
  /** xxh64 (seed 0) of the payload. */
  readonly xxh64: bigint;
  /** Payload length in bytes: what the frame carries (compressed, for a packed chunk). */
  readonly length: number;
  /** Set for a PACKED frame: the payload is the chunk's `rawLength` bytes compressed with `codec`. */
  readonly packed?: PackedAs | undefined;
}

export interface PackedAs {
  readonly codec: CodecName;
  /** Bytes of file data the payload stands for: the length the xxh64 and the offset speak of. */
  readonly rawLength: number;
}

/** Bytes of file data a chunk stands for, packed or not. */
export function rawLengthOf(header: ChunkHeader): number {
  return header.packed?.rawLength ?? header.length;
}

export interface DecoderLimits {
  readonly maxControlBytes: number;
  readonly maxChunkBytes: number;
}

/** xxh64 values travel in JSON as 16 lowercase hex digits. */
export function xxh64ToHex(value: bigint): string {
  return value.toString(16).padStart(16, '0');
}

export function xxh64FromHex(hex: string): bigint {
  return BigInt('0x' + hex);
}
