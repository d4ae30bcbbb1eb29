// The client's chunk budget: every upload of a process takes its chunk buffers from one budget,
// so their memory is bounded whatever the number of uploads, and buffers are reused.
import t from 'tap';
import { ChunkBudget } from '../src/client/chunk-budget.js';

t.test('buffers are handed out within the budget; the next waits until one comes back, and gets that one', async (t) => {
  const budget = new ChunkBudget(3 * 1024);
  const held = await Promise.all([budget.acquire(1024), budget.acquire(1024), budget.acquire(1024)]);
  let waiterGot: SharedArrayBuffer | undefined;
  const waiter = budget.acquire(1024).then((buffer) => (waiterGot = buffer));
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(waiterGot, undefined, 'a fourth waits while three are out');
  budget.release(held[1]);
  await waiter;
  t.equal(waiterGot, held[1], 'it gets the buffer given back, not a new one');
});

t.test('a buffer of another size is dropped to make room; one larger than the budget is given when nothing else is out', async (t) => {
  const budget = new ChunkBudget(2048);
  const small = await budget.acquire(1024);
  budget.release(small);
  const other = await budget.acquire(2048);
  t.equal(other.byteLength, 2048, 'the free 1 KiB buffer made room for a 2 KiB one');
  budget.release(other);
  const huge = await budget.acquire(4096);
  t.equal(huge.byteLength, 4096, 'alone, a chunk bigger than the budget is not refused');
  let second: SharedArrayBuffer | undefined;
  const waiting = budget.acquire(1024).then((buffer) => (second = buffer));
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(second, undefined, 'but nothing else is given meanwhile');
  budget.release(huge);
  await waiting;
  t.equal(second?.byteLength, 1024);
});

t.test('a budget with nothing in use drops its free buffers once idle for a while; one used meanwhile keeps them', async (t) => {
  const checks: (() => void)[] = [];
  const budget = new ChunkBudget(4096, (callback) => checks.push(callback));
  const first = await budget.acquire(1024);
  const second = await budget.acquire(1024);
  budget.release(first);
  t.equal(checks.length, 0, 'no idle check while a buffer is out');
  budget.release(second);
  t.equal(checks.length, 1, 'all back: an idle check is armed');

  const again = await budget.acquire(1024);
  t.ok(again === first || again === second, 'a free buffer is reused before the check');
  checks.shift()!();
  t.equal(budget.heldBytes, 2048, 'used since the check was armed: nothing dropped');
  t.equal(checks.length, 0, 'and, with a buffer out, no new check yet');
  budget.release(again);
  t.equal(checks.length, 1, 'all back again: a new check');
  const used = await budget.acquire(1024);
  budget.release(used);
  t.equal(checks.length, 1, 'one check at a time');
  checks.shift()!();
  t.equal(budget.heldBytes, 2048, 'used meanwhile, though idle now: kept');
  t.equal(checks.length, 1, 'looked at again later');
  checks.shift()!();
  t.equal(budget.heldBytes, 0, 'idle the whole time: the free buffers are dropped');
  const fresh = await budget.acquire(1024);
  t.ok(fresh !== first && fresh !== second, 'the next acquire makes a new buffer');
  t.equal(budget.heldBytes, 1024);
});

t.test('a discarded buffer gives its room back and is never handed out again', async (t) => {
  const budget = new ChunkBudget(2 * 1024);
  const [kept, discarded] = await Promise.all([budget.acquire(1024), budget.acquire(1024)]);
  let waiterGot: SharedArrayBuffer | undefined;
  const waiter = budget.acquire(1024).then((buffer) => (waiterGot = buffer));
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(waiterGot, undefined, 'a third waits while two are out');
  budget.discard(discarded);
  await waiter;
  t.not(waiterGot, discarded, 'the waiter gets a new buffer in its room');
  t.equal(budget.inUseBytes, 2048, 'the discarded one no longer counts');
  budget.release(kept);
  budget.release(waiterGot!);
  const again = await Promise.all([budget.acquire(1024), budget.acquire(1024)]);
  t.notOk(again.includes(discarded), 'the discarded buffer is not among the ones reused');
  t.equal(budget.heldBytes, 2048, 'the budget holds no more than its room');
});
