import { join } from 'node:path';
import t from 'tap';
import { makeFile, sha256Of } from './helpers/files.js';
import { startServer } from './helpers/server.js';
import { tempDir } from './helpers/temp-dir.js';

const chunkSizeBytes = 64 * 1024;

for (const size of [0, 1, chunkSizeBytes - 1, chunkSizeBytes, 3 * chunkSizeBytes + 17]) {
  t.test(`upload and download a ${size}-byte file`, async (t) => {
    const running = await startServer(t, { chunkSizeBytes, inflightBudgetBytes: 8 * chunkSizeBytes });
    const dir = tempDir(t);
    const local = await makeFile(dir, 'source.bin', size);
    const ferry = running.client();
    const up = await ferry.upload(local.path, { name: 'dir/file.bin' });
    t.equal(up.sha256, local.sha256, 'server sha256 is what sha256sum prints');
    t.equal(up.size, size);
    t.equal(up.bytesSent, size, 'every byte sent once');
    t.equal(up.resumed, false);
    const listed = await ferry.list();
    t.same(
      listed.map((file) => [file.name, file.size, file.sha256]),
      [['dir/file.bin', size, local.sha256]],
    );
    const out = join(dir, 'copy.bin');
    const down = await ferry.download('dir/file.bin', { out });
    t.equal(down.sha256, local.sha256);
    t.equal(down.bytesReceived, size);
    t.equal(await sha256Of(out), local.sha256, 'downloaded bytes are exact');
  });
}
