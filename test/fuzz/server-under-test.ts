// The server the fuzz runs against, its log, ordinary clients, and what the process does outside the tests.
import { loginAt, provisionTester, rememberServer, testPasswordCost } from '../helpers/accounts.js';
import { helloFields } from './plan.js';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import type { Test } from 'tap';
import { FerryClient } from '../../src/client/client.js';
import { type FerryServer, createServer } from '../../src/server/server.js';
import { sha256Of } from '../helpers/files.js';
import { tempDir } from '../helpers/temp-dir.js';
import { chunkSize, inflightBudgetBytes, maxControlBytes } from './config.js';
import { pseudoRandomBytes, sha256Hex } from './material.js';

export interface ServerUnderTest {
  server: FerryServer;
  port: number;
  /** The data dir's parent, which must never hold anything but `data`. */
  root: string;
  dataDir: string;
  /** Where the ordinary clients keep their local files. */
  work: string;
  /** Error-level server log lines (an EINTERNAL reply logs one): each is a bug the fuzzer found. */
  serverErrors: string[];
  /** Exceptions nobody caught, in the server or here (a monitor: tap still sees them). */
  uncaught: string[];
  /** An ordinary client of the reference library, closed when the tests end at the latest. */
  normalClient(): FerryClient;
}

/** Starts the server on 127.0.0.1 and a free port; it closes, with every ordinary client, when `t` ends. */
export async function startServerUnderTest(t: Test): Promise<ServerUnderTest> {
  // The data dir sits alone in a directory of its own, so "nothing was created outside the data
  // dir" is checkable: that directory must never hold anything but `data`.
  const root = tempDir(t, 'ferry-fuzz');
  const dataDir = join(root, 'data');
  const work = tempDir(t, 'ferry-fuzz-local');
  const serverErrors: string[] = [];
  const server = createServer(
    {
      dataDir,
      workers: 2,
      chunkSizeBytes: chunkSize,
      inflightBudgetBytes,
      maxControlBytes,
      // Puts of the same file from two connections at once wait this long for each other.
      takeoverGraceMs: 200,
      // Fuzzed puts declare sizes up to the 4 TiB file limit, and their sessions count against
      // the storage quota until they expire: without this the final uploads would get EQUOTA.
      maxStorageBytes: Number.MAX_SAFE_INTEGER,
      // In clear text: the fuzz is about the Ferry protocol's frames, which TLS carries unchanged
      // (hostile.test.ts sends garbage inside TLS). Over TLS, both ends' handshakes in this one
      // process add V8 garbage between collections (peak RSS +170-190 MiB against 33-56 in clear
      // text, with the same retained growth), so the RSS backstop in after-checks.ts would measure GC timing,
      // not the server's bounds.
      tls: false,
      ...testPasswordCost,
    },
    { logger: pino({ level: 'error' }, { write: (line: string) => void serverErrors.push(line.trim()) }) },
  );
  const { port } = await server.listen(0, '127.0.0.1');
  const token = await provisionTester(server.accounts);
  helloFields['token'] = token;
  rememberServer(port, { token, fingerprint: server.tlsFingerprint });
  const normalClients: FerryClient[] = [];
  t.teardown(async () => {
    await Promise.all(normalClients.map((client) => client.close()));
    await server.close();
  });
  const uncaught: string[] = [];
  process.on('uncaughtExceptionMonitor', (error) => uncaught.push(error instanceof Error ? (error.stack ?? error.message) : String(error)));
  return {
    server,
    port,
    root,
    dataDir,
    work,
    serverErrors,
    uncaught,
    normalClient() {
      const client = new FerryClient({ host: '127.0.0.1', port, retry: { retries: 0, baseDelayMs: 10 }, ...loginAt(port) });
      normalClients.push(client);
      return client;
    },
  };
}

/** An ordinary client uploads and downloads `size` bytes as `name`, byte-exact. */
export async function roundTrip(target: ServerUnderTest, name: string, size: number, contentSeed: number, force = false): Promise<boolean> {
  const bytes = pseudoRandomBytes(contentSeed, size);
  const path = join(target.work, `local-${contentSeed}.bin`);
  await writeFile(path, bytes);
  const client = target.normalClient();
  try {
    const up = await client.upload(path, { name, force });
    const out = join(target.work, `local-${contentSeed}.out`);
    const down = await client.download(name, { out, force: true });
    return up.sha256 === sha256Hex(bytes) && down.sha256 === up.sha256 && (await sha256Of(out)) === up.sha256;
  } finally {
    await client.close();
  }
}
