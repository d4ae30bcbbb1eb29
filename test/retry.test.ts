import t from 'tap';
import { type ErrorCode, FerryError } from '../src/protocol/errors.js';
import { defaultTransferRetries, retryDelays, withRetries } from '../src/client/retry.js';

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

t.test('by default a transfer rides out an outage of two minutes, backing off to at most 10 s', (t) => {
  const delays = retryDelays({ retries: defaultTransferRetries }, 'ECONNECT');
  t.ok(delays.reduce((sum, delay) => sum + delay, 0) >= 120_000, `waits add up to ${delays.reduce((sum, delay) => sum + delay, 0)} ms`);
  t.equal(Math.max(...delays), 10_000, 'no wait is longer than 10 s');
  t.same(delays.slice(0, 3), [500, 1000, 2000], 'starts short');
  t.end();
});

t.test('an attempt that moved the transfer forward starts the count and the backoff over', async (t) => {
  const delays: number[] = [];
  let attempt = 0;
  // Five failures with a single retry allowed: it goes on because each failed attempt made progress.
  const result = await withRetries(() => (++attempt <= 5 ? Promise.reject(new FerryError('ECONNLOST')) : Promise.resolve(attempt)), {
    retries: 1,
    baseDelayMs: 5,
    madeProgress: () => true,
    onRetry: ({ delayMs }) => delays.push(delayMs),
  });
  t.equal(result, 6);
  t.same(delays, [0, 0, 0, 0, 0], 'each loss after progress is retried at once');
  attempt = 0;
  await t.rejects(
    withRetries(() => (++attempt <= 5 ? Promise.reject(new FerryError('ECONNLOST')) : Promise.resolve(attempt)), {
      retries: 1,
      madeProgress: () => false,
    }),
    { code: 'ECONNLOST' },
    'without progress the one retry is all',
  );
});

t.test('a cancel ends the wait between attempts with ECANCELED', async (t) => {
  const controller = new AbortController();
  const started = Date.now();
  await t.rejects(
    withRetries(() => Promise.reject(new FerryError('ECONNECT')), {
      retries: 5,
      baseDelayMs: 60_000,
      signal: controller.signal,
      onRetry: () => controller.abort(),
    }),
    { code: 'ECANCELED' },
  );
  t.ok(Date.now() - started < 30_000, 'did not wait out the backoff');
});
