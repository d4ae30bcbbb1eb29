import { readFile } from 'node:fs/promises';
import t from 'tap';
import { errorLine } from '../src/cli/output.js';
import { FerryError, errorCatalogue } from '../src/protocol/errors.js';

// The catalogue, the CLI's exit codes and the docs table must agree: one code, one exit status.
t.test('docs/protocol.md lists every catalogue code with its exit status, and nothing else', async (t) => {
  const doc = await readFile(new URL('../docs/protocol.md', import.meta.url), 'utf8');
  const header = doc.indexOf('| code | exit | meaning |');
  t.ok(header >= 0, 'the docs have the error table');
  const rows = doc
    .slice(header)
    .split('\n')
    .slice(2)
    .filter((line) => line.startsWith('| `'));
  const documented = rows.map((row) => {
    const [, code, exit, meaning] = /^\| `([A-Z]+)` \| (\d+) \| (.+) \|$/u.exec(row) ?? [];
    return { code, exit: Number(exit), meaning };
  });
  t.same(
    documented.map(({ code, exit }) => [code, exit]),
    Object.entries(errorCatalogue).map(([code, { exitCode }]) => [code, exitCode]),
    'same codes, same order, same exit statuses',
  );
  for (const { code, meaning } of documented) {
    const entry = errorCatalogue[code as keyof typeof errorCatalogue];
    t.ok(meaning?.startsWith(entry.message), `${code}: the docs start with the catalogue's message`);
  }
});

t.test('a failure prints one line naming the cause and the code', (t) => {
  for (const code of Object.keys(errorCatalogue) as (keyof typeof errorCatalogue)[]) {
    const error = new FerryError(code, `big.bin: ${errorCatalogue[code].message}`);
    const line = errorLine(error);
    t.equal(line, `ferry: big.bin: ${errorCatalogue[code].message} (${code})`);
    t.notMatch(line, /\n/u, 'one line');
    t.equal(error.exitCode, code === 'EUSAGE' ? 2 : code === 'ECANCELED' ? 130 : 1, `${code} exits with ${error.exitCode}`);
  }
  t.equal(errorLine(new Error('boom')), 'ferry: boom (EINTERNAL)', 'an unexpected error still gets a code');
  t.end();
});
