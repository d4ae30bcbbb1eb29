import { type ChunkHeader, FrameType, chunkFieldsBytes, codecIds, frameHeaderBytes, packedFieldsBytes } from './frames.js';

/** Encodes one CONTROL frame holding `message` as JSON. */
export function encodeControl(message: object): Buffer {
  const json = Buffer.from(JSON.stringify(message), 'utf8');
  const frame = Buffer.allocUnsafe(frameHeaderBytes + json.length);
  frame.writeUInt32BE(1 + json.length, 0);
  frame.writeUInt8(FrameType.control, 4);
  json.copy(frame, frameHeaderBytes);
  return frame;
}

/**
 * Encodes the head of a CHUNK frame, or of a PACKED one when `header.packed` is set. The payload
 * (`header.length` bytes) is written right after it by the caller, so a chunk is never copied
 * just to be framed.
 */
export function encodeChunkHead(header: ChunkHeader): Buffer {
  const { packed } = header;
  const fieldsBytes = packed ? packedFieldsBytes : chunkFieldsBytes;
  const head = Buffer.allocUnsafe(frameHeaderBytes + fieldsBytes);
  head.writeUInt32BE(1 + fieldsBytes + header.length, 0);
  head.writeUInt8(packed ? FrameType.packed : FrameType.chunk, 4);
  head.writeUInt32BE(header.stream, 5);
  head.writeBigUInt64BE(BigInt(header.offset), 9);
  head.writeBigUInt64BE(header.xxh64, 17);
  if (packed) {
    head.writeUInt32BE(packed.rawLength, 25);
    head.writeUInt8(codecIds[packed.codec], 29);
  }
  return head;
}
