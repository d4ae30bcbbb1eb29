// The coverage floor `npm test` enforces (run as posttest, after tap has written its json-summary
// report): at least 90% of the lines and of the branches of src/ and workers/, taken together.
// tap itself can only require 100% or nothing (allow-incomplete-coverage in package.json), so the
// floor is checked here. Files left out of the count are listed below with the reason.
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

const floorPercent = { lines: 90, branches: 90 };
/** Files not counted, and why. */
const excluded = new Map([
  // Nothing excluded today.
]);

const summary = JSON.parse(readFileSync(new URL('../.tap/report/coverage-summary.json', import.meta.url), 'utf8'));
const root = new URL('..', import.meta.url).pathname;
const totals = { lines: { covered: 0, total: 0 }, branches: { covered: 0, total: 0 } };
const weakest = [];
for (const [path, counts] of Object.entries(summary)) {
  if (path === 'total') continue;
  const file = relative(root, path);
  if (!/^(src|workers)\//u.test(file) || excluded.has(file)) continue;
  for (const kind of ['lines', 'branches']) {
    totals[kind].covered += counts[kind].covered;
    totals[kind].total += counts[kind].total;
  }
  weakest.push({ file, lines: counts.lines.pct, branches: counts.branches.pct });
}
const percent = (kind) => (totals[kind].total === 0 ? 0 : (100 * totals[kind].covered) / totals[kind].total);
const below = Object.entries(floorPercent).filter(([kind, floor]) => percent(kind) < floor);
const line = Object.keys(floorPercent)
  .map((kind) => `${kind} ${percent(kind).toFixed(2)}% (floor ${floorPercent[kind]}%)`)
  .join(', ');
if (below.length === 0) {
  console.log(`coverage of src/ and workers/: ${line}`);
} else {
  weakest.sort((a, b) => Math.min(a.lines, a.branches) - Math.min(b.lines, b.branches));
  console.error(`coverage of src/ and workers/ is under the floor: ${line}`);
  console.error('least covered files:');
  for (const { file, lines, branches } of weakest.slice(0, 10)) console.error(`  ${file}: lines ${lines}%, branches ${branches}%`);
  process.exitCode = 1;
}
