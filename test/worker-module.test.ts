// Worker threads inherit the process's Node flags (a profiler, a coverage loader) but not those
// about the main script, which would stop every thread from starting.
import t from 'tap';
import { threadFlags } from '../src/worker-module.js';

t.test('flags about the main script are not given to worker threads; the rest are', (t) => {
  t.same(threadFlags(['--input-type=module', '-e', 'await 1', '--cpu-prof']), ['--cpu-prof']);
  t.same(threadFlags(['--input-type', 'module', '--eval', 'x', '--no-warnings']), ['--no-warnings']);
  t.same(threadFlags(['-p', '1', '--print=2', '--eval=3', '--import=file:///loader.mjs']), ['--import=file:///loader.mjs']);
  t.same(threadFlags([]), []);
  t.end();
});
