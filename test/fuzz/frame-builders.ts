// Turning plans into bytes: requests framed by hand, then mutated at the JSON or the byte level,
// and chunks of the samples, then mutated in their fields or bytes.
import { encodeChunkHead } from '../../src/protocol/encoder.js';
import { frameHead } from '../helpers/raw-client.js';
import { CONTROL, chunkSize } from './config.js';
import { type Sample, xxh64 } from './material.js';
import type { ByteMutation, ChunkMutation, Fields, Json, JsonMutation } from './plan.js';

export function controlFrame(body: Buffer): Buffer {
  return Buffer.concat([frameHead(body.length + 1, CONTROL), body]);
}

/** JSON text of an object given as entries: keeps duplicate keys and keys like `__proto__` as written. */
function jsonText(entries: [string, Json][]): string {
  return `{${entries.map(([key, value]) => `${JSON.stringify(key)}:${JSON.stringify(value)}`).join(',')}}`;
}

export function applyByteMutation(frame: Buffer, mutation: ByteMutation): Buffer {
  const out = Buffer.from(frame);
  switch (mutation.kind) {
    case 'flipBit':
      if (out.length > 0) out[mutation.at % out.length]! ^= 1 << mutation.bit;
      return out;
    case 'truncate':
      return out.subarray(0, mutation.at % Math.max(out.length, 1));
    case 'setLength':
      if (out.length >= 4) out.writeUInt32BE(mutation.value >>> 0, 0);
      return out;
    case 'shiftLength':
      if (out.length >= 4) out.writeUInt32BE((out.readUInt32BE(0) + mutation.delta) >>> 0, 0);
      return out;
    case 'setType':
      if (out.length >= 5) out[4] = mutation.value;
      return out;
    case 'insert': {
      const at = mutation.at % (out.length + 1);
      return Buffer.concat([out.subarray(0, at), Buffer.from(mutation.bytes), out.subarray(at)]);
    }
    case 'remove': {
      const at = mutation.at % Math.max(out.length, 1);
      return Buffer.concat([out.subarray(0, at), out.subarray(at + mutation.count)]);
    }
    case 'duplicate':
      return Buffer.concat([out, out]);
  }
}

function isByteMutation(mutation: JsonMutation | ByteMutation | ChunkMutation): mutation is ByteMutation {
  return ['flipBit', 'truncate', 'setLength', 'shiftLength', 'setType', 'insert', 'remove', 'duplicate'].includes(mutation.kind);
}

/** A request framed, then mutated at the JSON level or the byte level. */
export function mutatedRequest(id: number, fields: Fields, mutation: JsonMutation | ByteMutation): Buffer {
  const entries = Object.entries({ id, ...fields }) as [string, Json][];
  if (isByteMutation(mutation)) return applyByteMutation(controlFrame(Buffer.from(jsonText(entries))), mutation);
  const at = (index: number): number => index % entries.length;
  switch (mutation.kind) {
    case 'dropField':
      return controlFrame(Buffer.from(jsonText(entries.filter((_, index) => index !== at(mutation.field)))));
    case 'extraField':
      return controlFrame(Buffer.from(jsonText([...entries, [mutation.key, mutation.value]])));
    case 'retype':
      return controlFrame(
        Buffer.from(jsonText(entries.map(([key, value], index) => [key, index === at(mutation.field) ? mutation.value : value]))),
      );
    case 'swap': {
      const swapped = entries.map(([key, value]): [string, Json] => [key, value]);
      const a = swapped[at(mutation.a)]!;
      const b = swapped[at(mutation.b)]!;
      [a[1], b[1]] = [b[1], a[1]];
      return controlFrame(Buffer.from(jsonText(swapped)));
    }
    case 'badUtf8': {
      const body = Buffer.from(jsonText(entries));
      const cut = mutation.at % (body.length + 1);
      return controlFrame(Buffer.concat([body.subarray(0, cut), Buffer.from(mutation.bytes), body.subarray(cut)]));
    }
    case 'body':
      return controlFrame(Buffer.from(mutation.text, 'utf8'));
  }
}

export function chunkCountOf(size: number): number {
  return Math.ceil(size / chunkSize);
}

/** Chunk `index` of a sample as a CHUNK frame (past the end: an empty payload at that offset). */
export function chunkFrame(stream: number, sample: Sample, index: number, xxh64Value?: bigint): Buffer {
  const offset = index * chunkSize;
  const payload = sample.bytes.subarray(Math.min(offset, sample.size), Math.min(offset + chunkSize, sample.size));
  const hash = xxh64Value ?? sample.chunkHashes[index] ?? xxh64(payload);
  return Buffer.concat([encodeChunkHead({ stream: stream % 2 ** 32, offset, xxh64: hash, length: payload.length }), payload]);
}

export function applyChunkMutation(frame: Buffer, mutation: ChunkMutation | ByteMutation): Buffer {
  if (isByteMutation(mutation)) return applyByteMutation(frame, mutation);
  const out = Buffer.from(frame);
  if (mutation.field === 'stream') out.writeUInt32BE(Number(mutation.value % 2n ** 32n), 5);
  else out.writeBigUInt64BE(mutation.value, mutation.field === 'offset' ? 9 : 17);
  return out;
}
