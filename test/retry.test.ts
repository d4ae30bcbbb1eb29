import t from 'tap';
import { type ErrorCode, FerryError } from '../src/protocol/errors.js';
import { withRetries } from '../src/client/retry.js';

/** Runs withRetries over attempts that fail with `codes` in turn, then succeed; returns the delays it chose. */
async function delaysFor(codes: ErrorCode[], retries = codes.length): Promise<number[]> {
  const delays: number[] = [];
  let attempt = 0;
  await withRetries(
    () => {
      const code = codes[attempt++];
      if (code) return Promise.reject(new FerryError(code, `attempt ${attempt} failed`));
      return Promise.resolve('done');
    },
    { retries, baseDelayMs: 5, maxDelayMs: 20, onRetry: ({ delayMs }) => delays.push(delayMs) },
  );
  return delays;
}

t.test('the first retry after a lost link goes at once; later ones back off, doubling to the cap', async (t) => {
  t.same(await delaysFor(['ECONNLOST', 'ECONNLOST', 'ECONNECT', 'ECONNECT', 'ECONNECT']), [0, 5, 10, 20, 20]);
});

t.test('a first failure that is not a lost link backs off from the start', async (t) => {
  t.same(await delaysFor(['ECONNECT', 'ECONNLOST']), [5, 10], 'server unreachable');
  t.same(await delaysFor(['EBUSY']), [5], 'name busy');
  t.same(await delaysFor(['ETIMEDOUT']), [5], 'stalled link');
});

t.test('a failure that another attempt cannot cure is not retried', async (t) => {
  await t.rejects(delaysFor(['ECHECKSUM']), { code: 'ECHECKSUM' });
  await t.rejects(delaysFor(['ECONNLOST', 'ECONNLOST'], 1), { code: 'ECONNLOST' }, 'nor one past the retries allowed');
});
