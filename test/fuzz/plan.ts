import { protocolVersion } from '../../src/protocol/frames.js';

// What a fuzz scenario is made of: one to three connection plans, each a greeting, a list of
// actions (the steps the driver sends) and an ending. The generators are in arbitraries.ts.

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
/** A request without its id: the id is given when it is sent. */
export type Fields = { op: string } & Record<string, Json>;

export type ByteMutation =
  | { kind: 'flipBit'; at: number; bit: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'setLength'; value: number }
  | { kind: 'shiftLength'; delta: number }
  | { kind: 'setType'; value: number }
  | { kind: 'insert'; at: number; bytes: readonly number[] }
  | { kind: 'remove'; at: number; count: number }
  | { kind: 'duplicate' };
export type JsonMutation =
  | { kind: 'dropField'; field: number }
  | { kind: 'extraField'; key: string; value: Json }
  | { kind: 'retype'; field: number; value: Json }
  | { kind: 'swap'; a: number; b: number }
  | { kind: 'badUtf8'; at: number; bytes: readonly number[] }
  | { kind: 'body'; text: string };
export type ChunkMutation = { kind: 'chunkField'; field: 'stream' | 'offset' | 'xxh64'; value: bigint };
export type ChunkFlaw = 'none' | 'badHash' | ByteMutation;

export type Action =
  | { kind: 'request'; fields: Fields; split: number[] }
  | { kind: 'mutated'; fields: Fields; mutation: JsonMutation | ByteMutation; split: number[] }
  | { kind: 'chunk'; stream: number; sample: number; index: number; mutation: ChunkMutation | ByteMutation | null; split: number[] }
  | { kind: 'random'; seed: number; length: number; type: number | null; split: number[] }
  | { kind: 'flood'; fields: Fields; count: number }
  | { kind: 'burst'; fields: Fields; count: number }
  | {
      kind: 'upload';
      name: string;
      sample: number;
      fingerprint: string;
      force: boolean;
      chunks: 'all' | { index: number; flaw: ChunkFlaw }[];
      end: 'right' | 'wrong' | 'none';
      awaitEnd: boolean;
      split: number[];
    }
  | { kind: 'download'; name: string; sha256: string | null; fromChunk: number | null; readAll: boolean }
  | { kind: 'roundTrip' }
  | { kind: 'stall' };

export type Greeting = 'await' | 'pipelined' | 'none' | { mutation: JsonMutation | ByteMutation };
export type Ending = 'graceful' | { abrupt: { fields: Fields; keep: number } | null };
export interface ConnectionPlan {
  greet: Greeting;
  actions: Action[];
  ending: Ending;
}

/** A good hello; `token` (the test account's, logging the connection in) is filled in once the server under test runs. */
export const helloFields: Fields = { op: 'hello', protocol: protocolVersion, client: 'fuzz/1', capabilities: ['resume'] };
