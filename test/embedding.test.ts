// A program that embeds the server (createServer) keeps Node's own rules for its process: the
// library installs no process-wide handler. Only `ferry serve`, at the process's entry, marks
// lmdb-js's stray commit failures handled (lmdb-js issue 368).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { tempDir } from './helpers/temp-dir.js';

const serverModule = pathToFileURL(new URL('../dist/src/server/server.js', import.meta.url).pathname).href;

/** Runs an ES module program in a child Node (without tap's loaders); its exit code and output. */
async function runProgram(source: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', source], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (data: Buffer) => (stdout += data.toString()));
  child.stderr.on('data', (data: Buffer) => (stderr += data.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr };
}

/** A program that starts a server in `dataDir`, then runs `then` (with `server` in scope). */
function embedder(dataDir: string, then: string): string {
  return `
    import { createServer } from ${JSON.stringify(serverModule)};
    const server = createServer({ dataDir: ${JSON.stringify(dataDir)}, workers: 1 });
    await server.listen(0, '127.0.0.1');
    ${then}
  `;
}

t.test("an embedder's unhandled rejection ends its process, as Node's default does", async (t) => {
  const run = await runProgram(embedder(tempDir(t), "Promise.reject(new Error('embedder bug'));"));
  t.equal(run.code, 1, 'exit 1');
  t.match(run.stderr, /embedder bug/u, 'Node reports the rejection');
});

t.test("an embedder's own unhandledRejection handler is respected: the process goes on", async (t) => {
  const run = await runProgram(
    embedder(
      tempDir(t),
      `
      const seen = new Promise((resolve) => process.on('unhandledRejection', (reason) => {
        console.log('handled: ' + reason.message);
        resolve();
      }));
      Promise.reject(new Error('embedder bug'));
      await seen;
      await server.close();
      console.log('closed');
    `,
    ),
  );
  t.equal(run.code, 0, `exit 0 (stderr: ${run.stderr})`);
  t.equal(run.stdout, 'handled: embedder bug\nclosed\n', "the embedder's handler saw it, and the server closed normally");
});
