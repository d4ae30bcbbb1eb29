// Where `ferry download NAME --out PATH` writes, as cp and scp decide it: an existing directory
// (or a path ending in /) means "inside it, under the file's own name"; a directory that does
// not exist is named in a one-line error, and nothing is left behind.
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { assertFailed, ferry, jsonOf } from './helpers/cli.js';
import { makeFile, sha256Of } from './helpers/files.js';
import { startServer } from './helpers/server.js';
import { tempDir } from './helpers/temp-dir.js';

t.test('download --out and directories', async (t) => {
  const running = await startServer(t);
  const server = ['--server', `127.0.0.1:${running.port}`];
  const source = await makeFile(tempDir(t), 'report.pdf', 300 * 1024);
  jsonOf(t, await ferry(['upload', source.path, '--as', 'docs/report.pdf', ...server, '--json']));

  t.test('an existing directory: the file goes inside it, under its own name', async (t) => {
    const work = tempDir(t);
    const into = join(work, 'into');
    await mkdir(into);
    const result = jsonOf<{ path: string }>(t, await ferry(['download', 'docs/report.pdf', '--out', into, ...server, '--json']));
    t.equal(result.path, join(into, 'report.pdf'), 'the result names the file written');
    t.equal(await sha256Of(join(into, 'report.pdf')), source.sha256, 'the file is exact');
    t.same(await readdir(work), ['into'], 'nothing beside the directory (no into.ferry-part)');
    t.same(await readdir(into), ['report.pdf']);

    assertFailed(t, await ferry(['download', 'docs/report.pdf', '--out', into, ...server]), 'EEXIST');
    jsonOf(t, await ferry(['download', 'docs/report.pdf', '--out', into, '--force', ...server, '--json']));
    t.same(await readdir(into), ['report.pdf'], 'with --force the file inside is replaced, nothing else made');
  });

  t.test('a trailing slash: inside an existing directory; a missing one is an error that says so', async (t) => {
    const work = tempDir(t);
    await mkdir(join(work, 'here'));
    jsonOf(t, await ferry(['download', 'docs/report.pdf', '--out', 'here/', ...server, '--json'], { cwd: work }));
    t.equal(await sha256Of(join(work, 'here', 'report.pdf')), source.sha256);

    const missing = await ferry(['download', 'docs/report.pdf', '--out', 'newdir/', ...server], { cwd: work });
    assertFailed(t, missing, 'ENOENT');
    t.match(missing.stderr, /newdir\/: no such local directory/u, 'the directory is named');
    await writeFile(join(work, 'plain'), 'x');
    const notDir = await ferry(['download', 'docs/report.pdf', '--out', 'plain/', ...server], { cwd: work });
    assertFailed(t, notDir, 'ENOENT');
    t.match(notDir.stderr, /plain\/: no such local directory \(it is a file\)/u);
    t.same((await readdir(work)).sort(), ['here', 'plain'], 'no file named newdir, no partial files');
  });

  t.test('a missing parent directory is named, never the partial file', async (t) => {
    const work = tempDir(t);
    const result = await ferry(['download', 'docs/report.pdf', '--out', join(work, 'no', 'such', 'copy.pdf'), ...server]);
    assertFailed(t, result, 'ENOENT');
    t.match(result.stderr, `${join(work, 'no', 'such')}: no such local directory`);
    t.notMatch(result.stderr, /ferry-part/u, 'the internal .ferry-part path is not shown');
    t.same(await readdir(work), [], 'nothing was created');
  });

  t.test('a name the server does not have: ENOENT, and nothing is left where the file would go', async (t) => {
    const work = tempDir(t);
    const result = await ferry(['download', 'docs/missing.pdf', '--out', join(work, 'copy.pdf'), ...server]);
    assertFailed(t, result, 'ENOENT');
    t.same(await readdir(work), [], 'no file, no partial file');
  });
});
