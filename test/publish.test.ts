import t from 'tap';
import { foldersChangedBy } from '../src/server/sync-directory.js';

// A file published into folders the rename had to make is durable only once each new folder's
// entry in its parent is: every folder whose entries changed must be fsynced before the record.
t.test('publishing into new folders syncs every folder whose entries changed', (t) => {
  t.same(foldersChangedBy(undefined, '/d/files/a'), ['/d/files/a'], 'an existing folder: only the one that gained the file');
  t.same(foldersChangedBy('/d/files/a/b/c', '/d/files/a/b/c'), ['/d/files/a/b/c', '/d/files/a/b'], 'one new folder: it and its parent');
  t.same(
    foldersChangedBy('/d/files/a', '/d/files/a/b/c'),
    ['/d/files/a/b/c', '/d/files/a/b', '/d/files/a', '/d/files'],
    'a new chain: each folder down from the parent of the first made',
  );
  t.end();
});
