import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';

/** A fresh directory for this test, removed when it ends (unlike t.testdir(), callable many times). */
export function tempDir(t: Test, label = 'ferry'): string {
  const dir = mkdtempSync(join(tmpdir(), `${label}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
