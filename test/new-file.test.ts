/**
 * The server's writer of a new file (a small file sent whole): native/durable-file.c where
 * native/build.js built it, Node's fs calls otherwise. Both must create the file exclusively,
 * hold exactly the bytes (from ordinary or shared memory, at any offset) with the mode asked, and
 * fail as Node's calls do, so the store maps their errors alike.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { type NewFileWriter, fsNewFileWriter, nativeNewFileWriter, newFileWriter } from '../src/server/new-file.js';
import { codeOfSystemError } from '../src/system-errors.js';
import { tempDir } from './helpers/temp-dir.js';

const native = nativeNewFileWriter();

t.test('the native writer is used where it was built', (t) => {
  // CI builds with FERRY_NATIVE=required: there the addon must load.
  if (process.env.FERRY_NATIVE === 'required')
    t.equal(newFileWriter().implementation, 'native', 'whyNot' in native ? native.whyNot : 'in use');
  else if (!('write' in native)) t.comment(`the addon is not in use here: ${native.whyNot}`);
  t.equal(newFileWriter().implementation === 'native', 'write' in native, 'used exactly when it loads');
  t.end();
});

const writers: NewFileWriter[] = ['write' in native ? [native] : [], [fsNewFileWriter]].flat();

for (const writer of writers) {
  t.test(`${writer.implementation}: the file holds exactly the bytes, with the mode asked`, async (t) => {
    const dir = tempDir(t);
    const bytes = randomBytes(300_001);
    const shared = new Uint8Array(new SharedArrayBuffer(bytes.byteLength + 16));
    shared.set(bytes, 5);
    const cases: [string, Uint8Array, number][] = [
      ['a Buffer', bytes, 0o600],
      ['a view of shared memory at an odd offset', shared.subarray(5, 5 + bytes.byteLength), 0o640],
      ['one byte', bytes.subarray(7, 8), 0o600],
      ['nothing', new Uint8Array(0), 0o644],
    ];
    for (const [what, data, mode] of cases) {
      const path = join(dir, what.replaceAll(' ', '-'));
      await writer.write(path, data, mode);
      t.same(readFileSync(path), Buffer.from(data), `${what}: the bytes`);
      t.equal(statSync(path).mode & 0o777, mode & ~process.umask(), `${what}: the mode`);
    }
  });

  t.test(`${writer.implementation}: an existing file is EEXIST and left as it was; a missing folder is ENOENT`, async (t) => {
    const dir = tempDir(t);
    const path = join(dir, 'there.bin');
    writeFileSync(path, 'before');
    const clash = await writer.write(path, randomBytes(10), 0o600).catch((error: unknown) => error);
    t.match(clash, { code: 'EEXIST', syscall: 'open' });
    t.equal(codeOfSystemError(clash), 'EEXIST', 'mapped as any system error');
    t.equal(readFileSync(path, 'utf8'), 'before', 'the file is untouched');
    const missing = await writer.write(join(dir, 'no', 'such.bin'), randomBytes(10), 0o600).catch((error: unknown) => error);
    t.match(missing, { code: 'ENOENT', syscall: 'open', message: /^ENOENT: / });
    t.equal(codeOfSystemError(missing), 'ENOENT');
  });
}
