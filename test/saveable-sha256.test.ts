/**
 * The SHA-256 whose state an upload to a shared store saves: OpenSSL's through the addon
 * native/build.js builds, or hash-wasm's. Either may take up a state the other saved (servers on
 * one bucket need not be built alike), states saved before Ferry had its own form still resume,
 * and whatever the split points, the digest is the one Node (and sha256sum) gives.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createSHA256 } from 'hash-wasm';
import t from 'tap';
import { hashWasmSha256Source, saveableSha256Source } from '../src/hashing/saveable-sha256.js';
import { decodeSha256State, emptySha256State, encodeSha256State, isSha256State } from '../src/hashing/sha256-state.js';

const native = saveableSha256Source();
const sources = [native, hashWasmSha256Source()];

t.test('the addon is used where it was built', (t) => {
  // CI builds with FERRY_NATIVE=required: there the addon must load and agree with Node.
  if (process.env.FERRY_NATIVE === 'required') t.equal(native.implementation, 'openssl', native.whyNotNative ?? 'the addon is in use');
  else if (native.implementation !== 'openssl') t.comment(`the addon is not in use here: ${native.whyNotNative}`);
  t.equal(native.whyNotNative === undefined, native.implementation === 'openssl', 'a reason is given exactly when the addon is not used');
  t.end();
});

t.test('hashing in pieces, saving and taking up the state between them, in every pairing of the two', async (t) => {
  const message = randomBytes(3 * 1024 * 1024 + 77);
  const expected = createHash('sha256').update(message).digest('hex');
  // Cuts at block boundaries, inside blocks, at 0 and at the end.
  const cuts = [0, 1, 63, 64, 65, 1000, 1024 * 1024, 2 * 1024 * 1024 + 5, message.byteLength - 1, message.byteLength];
  for (const first of sources) {
    for (const second of sources) {
      for (const cut of cuts) {
        const before = await first.make();
        before.update(message.subarray(0, cut));
        const saved = encodeSha256State(before.state());
        const after = await second.make(decodeSha256State(saved));
        after.update(message.subarray(cut));
        const got = after.digestHex();
        if (got !== expected) t.fail(`${first.implementation} -> ${second.implementation} cut at ${cut}: ${got}`);
      }
      t.pass(`${first.implementation} then ${second.implementation}: the whole message's digest at each of ${cuts.length} cuts`);
    }
  }
});

t.test("a state hash-wasm's own save() wrote (what uploads saved before this form) is taken up", async (t) => {
  const message = randomBytes(200_000);
  const old = await createSHA256();
  old.init();
  old.update(message.subarray(0, 100_003));
  const legacy = Buffer.from(old.save()).toString('base64');
  for (const source of sources) {
    const resumed = await source.make(decodeSha256State(legacy));
    resumed.update(message.subarray(100_003));
    t.equal(resumed.digestHex(), createHash('sha256').update(message).digest('hex'), `${source.implementation} goes on from it`);
  }
});

t.test('the text form: what goes in comes out; anything else is refused', async (t) => {
  const hash = await native.make();
  hash.update(Buffer.from('x'.repeat(130)));
  const state = hash.state();
  t.equal(state.length, 130);
  t.equal(state.pending.byteLength, 2, 'the unfinished block holds length mod 64 bytes');
  const text = encodeSha256State(state);
  t.match(text, /^sha256\.v1\.[A-Za-z0-9+/=]+$/u);
  t.same(decodeSha256State(text), state);
  t.same(decodeSha256State(encodeSha256State(emptySha256State)), emptySha256State);
  t.ok(isSha256State(text));
  for (const bad of ['', 'sha256.v1.', 'sha256.v1.AAAA', 'not base64 at all', Buffer.alloc(116).toString('base64')]) {
    t.throws(() => decodeSha256State(bad), /not a SHA-256 state/u, JSON.stringify(bad.slice(0, 20)));
    t.notOk(isSha256State(bad));
  }
  const short = Buffer.from(text.slice('sha256.v1.'.length), 'base64').subarray(0, 41);
  t.throws(() => decodeSha256State(`sha256.v1.${short.toString('base64')}`), /not a SHA-256 state/u, 'a pending block cut short');
});
