import { type ChunkHeader, FrameType, chunkFieldsBytes, frameHeaderBytes } from './frames.js';

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
 * Encodes the head of a CHUNK frame. The payload (`header.length` bytes) is written right after
 * it by the caller, so a chunk is never copied just to be framed.
 */
export function encodeChunkHead(header: ChunkHeader): Buffer {
  const head = Buffer.allocUnsafe(frameHeaderBytes + chunkFieldsBytes);
  head.writeUInt32BE(1 + chunkFieldsBytes + header.length, 0);
  head.writeUInt8(FrameType.chunk, 4);
  head.writeUInt32BE(header.stream, 5);
  head.writeBigUInt64BE(BigInt(header.offset), 9);
  head.writeBigUInt64BE(header.xxh64, 17);
  return head;
}
