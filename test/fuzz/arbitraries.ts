// What fast-check generates: valid requests, mutations at the JSON and the byte level, chunks,
// random bytes, floods, bursts, uploads, downloads and stalls, aimed at the server's limits.
import fc from 'fast-check';
import { CHUNK, CONTROL, chunkSize, maxControlBytes } from './config.js';
import { namePool, oddBodies, oddNames, sampleSizes, samples } from './material.js';
import type { Action, ByteMutation, ChunkFlaw, ChunkMutation, ConnectionPlan, Fields, Json, JsonMutation } from './plan.js';

const position = fc.nat();
const split = fc.array(fc.nat(), { maxLength: 3 });
const sampleIndex = fc.nat({ max: samples.length - 1 });
const poolName = fc.constantFrom(...namePool);
const oddName = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...oddNames) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 24 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', minLength: 100, maxLength: 300 }) },
);
const nameArb = fc.oneof({ weight: 5, arbitrary: poolName }, { weight: 2, arbitrary: oddName });
const streamArb = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 1, max: 4 }) },
  { weight: 1, arbitrary: fc.constantFrom(0, 0xffffffff, 2 ** 32) },
);
const sha256Arb = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...samples.map((sample) => sample.sha256)) },
  { weight: 1, arbitrary: fc.constantFrom('0'.repeat(64), 'A'.repeat(64)) },
);
const sizeArb = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...sampleSizes) },
  { weight: 1, arbitrary: fc.constantFrom(2 ** 40, 4 * 1024 ** 4, 4 * 1024 ** 4 + 1, 2 ** 53 - 1, -1, 0.5) },
);
const fingerprintArb = fc.oneof(fc.constantFrom(...samples.map((sample) => sample.fingerprint)), fc.constantFrom('fz-1', 'fz-2'));
const fromArb = fc.oneof(fc.nat(3), fc.constant(2 ** 53 - 1));
const countArb = fc.oneof(fc.integer({ min: 1, max: 4 }), fc.constant(4096));

const asFields = (arbitrary: fc.Arbitrary<object>): fc.Arbitrary<Fields> => arbitrary as fc.Arbitrary<Fields>;
const requestFields: fc.Arbitrary<Fields> = fc.oneof(
  asFields(
    fc.record({
      op: fc.constant('hello'),
      protocol: fc.oneof({ weight: 4, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.nat(3) }),
      client: fc.string({ maxLength: 30 }),
      capabilities: fc.array(fc.constantFrom('resume', 'xxh64', 'sha256', 'list-paging', 'zstd', ''), { maxLength: 4 }),
    }),
  ),
  asFields(
    fc.record(
      {
        op: fc.constant('list'),
        prefix: fc.constantFrom('fuzz/', 'fuzz/d', '', 'zz'),
        after: poolName,
        limit: fc.integer({ min: 1, max: 1000 }),
      },
      { requiredKeys: ['op'] },
    ),
  ),
  asFields(fc.record({ op: fc.constant('stat'), name: nameArb })),
  asFields(fc.record({ op: fc.constant('delete'), name: nameArb })),
  asFields(fc.record({ op: fc.constantFrom('info', 'ping') })),
  asFields(fc.record({ op: fc.constant('log'), limit: fc.integer({ min: 1, max: 1000 }) }, { requiredKeys: ['op'] })),
  asFields(fc.record({ op: fc.constant('hashes'), name: nameArb, from: fromArb, count: countArb })),
  asFields(fc.record({ op: fc.constant('hashes'), stream: streamArb, from: fromArb, count: countArb })),
  asFields(
    fc.record(
      { op: fc.constant('put'), name: nameArb, size: sizeArb, fingerprint: fingerprintArb, force: fc.boolean() },
      { requiredKeys: ['op', 'name', 'size', 'fingerprint'] },
    ),
  ),
  asFields(fc.record({ op: fc.constant('putEnd'), stream: streamArb, sha256: sha256Arb })),
  asFields(fc.record({ op: fc.constant('get'), name: nameArb, sha256: sha256Arb, fromChunk: fc.nat(3) }, { requiredKeys: ['op', 'name'] })),
);

/** Requests a client may well send many of at once. */
const floodFields: fc.Arbitrary<Fields> = fc.oneof(
  asFields(fc.record({ op: fc.constantFrom('info', 'ping') })),
  asFields(fc.record({ op: fc.constant('stat'), name: poolName })),
  asFields(fc.record({ op: fc.constant('log'), limit: fc.constant(1000) })),
  asFields(fc.record({ op: fc.constant('list') })),
  asFields(fc.record({ op: fc.constant('hashes'), name: poolName, from: fc.constant(0), count: fc.constant(4096) })),
);

const byteMutation: fc.Arbitrary<ByteMutation> = fc.oneof(
  fc.record({ kind: fc.constant('flipBit' as const), at: position, bit: fc.nat(7) }),
  fc.record({ kind: fc.constant('truncate' as const), at: position }),
  fc.record({
    kind: fc.constant('setLength' as const),
    value: fc.constantFrom(
      0,
      1,
      2,
      20,
      21,
      maxControlBytes,
      maxControlBytes + 1,
      maxControlBytes + 2,
      21 + chunkSize,
      22 + chunkSize,
      0x7fffffff,
      0xffffffff,
    ),
  }),
  fc.record({ kind: fc.constant('shiftLength' as const), delta: fc.integer({ min: -8, max: 8 }) }),
  fc.record({ kind: fc.constant('setType' as const), value: fc.nat(255) }),
  fc.record({ kind: fc.constant('insert' as const), at: position, bytes: fc.array(fc.nat(255), { minLength: 1, maxLength: 4 }) }),
  fc.record({ kind: fc.constant('remove' as const), at: position, count: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ kind: fc.constant('duplicate' as const) }),
);
const oddValue: fc.Arbitrary<Json> = fc.oneof(
  fc.constantFrom<Json>(
    null,
    true,
    false,
    -1,
    0,
    1.5,
    -0.5,
    2 ** 31,
    2 ** 32,
    2 ** 53,
    2 ** 53 + 2,
    2 ** 64,
    1e308,
    -1e308,
    '',
    '1',
    'a'.repeat(300),
    [],
    {},
    [1, 2],
    { a: { b: [] } },
  ),
  oddName,
  fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>,
);
const jsonMutation: fc.Arbitrary<JsonMutation> = fc.oneof(
  fc.record({ kind: fc.constant('dropField' as const), field: fc.nat(6) }),
  fc.record({
    kind: fc.constant('extraField' as const),
    key: fc.oneof(fc.constantFrom('extra', '__proto__', 'constructor', 'id', 'op', 'name', 'stream', ''), fc.string({ maxLength: 8 })),
    value: oddValue,
  }),
  fc.record({ kind: fc.constant('retype' as const), field: fc.nat(6), value: oddValue }),
  fc.record({ kind: fc.constant('swap' as const), a: fc.nat(6), b: fc.nat(6) }),
  fc.record({
    kind: fc.constant('badUtf8' as const),
    at: position,
    bytes: fc.constantFrom<number[]>([0xff], [0xc3, 0x28], [0xe2, 0x82], [0xf0, 0x9f, 0x98], [0xed, 0xa0, 0x80], [0xc0, 0xaf], [0x80]),
  }),
  fc.record({
    kind: fc.constant('body' as const),
    text: fc.oneof(fc.constantFrom(...oddBodies), fc.json({ maxDepth: 3 }), fc.string({ unit: 'binary', maxLength: 60 })),
  }),
);
const chunkMutation: fc.Arbitrary<ChunkMutation> = fc.record({
  kind: fc.constant('chunkField' as const),
  field: fc.constantFrom('stream' as const, 'offset' as const, 'xxh64' as const),
  value: fc.oneof(
    fc.constantFrom(0n, 1n, 2n, 5n, 65535n, 65536n, 65537n, 131072n, 2n ** 32n - 1n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 64n - 1n),
    fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  ),
});
const chunkFlaw: fc.Arbitrary<ChunkFlaw> = fc.oneof(
  { weight: 6, arbitrary: fc.constant('none' as const) },
  { weight: 1, arbitrary: fc.constant('badHash' as const) },
  { weight: 1, arbitrary: byteMutation },
);

const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 10, arbitrary: fc.record({ kind: fc.constant('request' as const), fields: requestFields, split }) },
  {
    weight: 10,
    arbitrary: fc.record({
      kind: fc.constant('mutated' as const),
      fields: requestFields,
      mutation: fc.oneof(jsonMutation, byteMutation),
      split,
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('chunk' as const),
      stream: streamArb,
      sample: sampleIndex,
      index: fc.nat(3),
      mutation: fc.option(fc.oneof(chunkMutation, byteMutation), { freq: 2 }),
      split,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('random' as const),
      seed: fc.nat(),
      length: fc.oneof(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 65, max: 4096 }), fc.integer({ min: 60_000, max: 70_000 })),
      type: fc.option(fc.constantFrom(CONTROL, CHUNK)),
      split,
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('flood' as const), fields: floodFields, count: fc.integer({ min: 2, max: 64 }) }) },
  // A good part of what one 64 KiB read of the server holds, from a client that then never reads.
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('burst' as const), fields: floodFields, count: fc.integer({ min: 200, max: 400 }) }),
  },
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant('upload' as const),
      name: fc.oneof({ weight: 6, arbitrary: poolName }, { weight: 1, arbitrary: oddName }),
      sample: sampleIndex,
      fingerprint: fc.constantFrom('reference', 'reference', 'fz-1', 'fz-2'),
      force: fc.boolean(),
      chunks: fc.oneof(
        { weight: 3, arbitrary: fc.constant('all' as const) },
        { weight: 2, arbitrary: fc.array(fc.record({ index: fc.nat(3), flaw: chunkFlaw }), { maxLength: 5 }) },
      ),
      end: fc.constantFrom('right' as const, 'right' as const, 'wrong' as const, 'none' as const),
      awaitEnd: fc.boolean(),
      split,
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('download' as const),
      name: fc.oneof({ weight: 8, arbitrary: poolName }, { weight: 1, arbitrary: oddName }),
      sha256: fc.option(sha256Arb),
      fromChunk: fc.option(fc.nat(3)),
      readAll: fc.boolean(),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('roundTrip' as const) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('stall' as const) }) },
);

const connectionPlan: fc.Arbitrary<ConnectionPlan> = fc.record({
  greet: fc.oneof(
    { weight: 12, arbitrary: fc.constant('await' as const) },
    { weight: 2, arbitrary: fc.constant('pipelined' as const) },
    { weight: 1, arbitrary: fc.constant('none' as const) },
    { weight: 1, arbitrary: fc.record({ mutation: fc.oneof(jsonMutation, byteMutation) }) },
  ),
  actions: fc.array(action, { maxLength: 8 }),
  ending: fc.oneof(
    { weight: 4, arbitrary: fc.constant('graceful' as const) },
    { weight: 1, arbitrary: fc.record({ abrupt: fc.option(fc.record({ fields: requestFields, keep: fc.nat() })) }) },
  ),
});
/** A scenario: one to three connections that run at once. */
export const scenario = fc.array(connectionPlan, { minLength: 1, maxLength: 3 });
