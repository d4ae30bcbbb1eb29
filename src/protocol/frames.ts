/**
 * Frame layout (docs/protocol.md, "Framing"). Every frame is
 *
 *   u32 BE  bodyLength   bytes that follow this field (>= 1)
 *   u8      type         FrameType
 *   ...     body         bodyLength - 1 bytes
 *
 * CONTROL body: one UTF-8 JSON object (a request, a reply or an event).
 * CHUNK body:   u32 BE stream, u64 BE offset, u64 BE xxh64 of the payload, then the payload.
 */
export const FrameType = {
  control: 1,
  chunk: 2,
} as const;

export const protocolVersion = 2;

/** Bytes before a frame's body: the length field and the type byte. */
export const frameHeaderBytes = 5;
/** Bytes of a CHUNK body before its payload: stream, offset, xxh64. */
export const chunkFieldsBytes = 4 + 8 + 8;

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
  /** Payload length in bytes. */
  readonly length: number;
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
