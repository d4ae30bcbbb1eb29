// The client library's chunk buffers come from two budgets per process (uploads, downloads):
// however many transfers run at once, and however they end, every buffer goes back.
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { downloadChunkBudget, uploadChunkBudget } from '../src/client/chunk-budget.js';
import { makeFile } from './helpers/files.js';
import { startServer } from './helpers/server.js';
import { tempDir } from './helpers/temp-dir.js';

const KiB = 1024;
const chunkSize = 64 * KiB;

t.test('many uploads and downloads at once, some failing: every buffer is given back', async (t) => {
  const running = await startServer(t, { chunkSizeBytes: chunkSize });
  const dir = tempDir(t);
  const files = await Promise.all(Array.from({ length: 12 }, (_, index) => makeFile(dir, `f${index}.bin`, 5 * chunkSize + index * 1000)));
  const clients = Array.from({ length: 4 }, () => running.client());
  await Promise.all(files.map((file, index) => clients[index % clients.length]!.upload(file.path, { name: `m/${index}.bin` })));
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(uploadChunkBudget.inUseBytes, 0, 'the uploads gave every buffer back');

  // Two stored files damaged on disk: their downloads fail at the bad chunk (the server checks it before sending).
  for (const index of [3, 7]) {
    const handle = await open(join(running.dataDir, 'files', 'm', `${index}.bin`), 'r+');
    await handle.write(Buffer.from('damage'), 0, 6, 3 * chunkSize + 10);
    await handle.close();
  }
  const outcomes = await Promise.allSettled(
    files.map((_, index) => clients[index % clients.length]!.download(`m/${index}.bin`, { out: join(dir, `out-${index}.bin`) })),
  );
  t.same(
    outcomes.map((outcome, index) => (outcome.status === 'rejected' ? index : undefined)).filter((index) => index !== undefined),
    [3, 7],
    'the damaged ones failed, the rest came',
  );
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(downloadChunkBudget.inUseBytes, 0, 'the downloads, failed ones included, gave every buffer back');
});
