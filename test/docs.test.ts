import { readFile } from 'node:fs/promises';
import t from 'tap';
import { errorCatalogue } from '../src/protocol/errors.js';
import { requestSchema } from '../src/protocol/messages.js';

// docs/protocol.md is the wire protocol's spec, written from the code. These checks fail when the
// code gains (or loses) an operation or an error code that the doc does not follow.
const doc = await readFile(new URL('../docs/protocol.md', import.meta.url), 'utf8');
const ops: string[] = requestSchema.options.map((option) => option.shape.op.value);
const codes = Object.keys(errorCatalogue);

/** The text of the `## title` section, up to the next `## ` heading. */
function section(title: string): string {
  const start = doc.indexOf(`\n## ${title}\n`);
  if (start < 0) return '';
  const end = doc.indexOf('\n## ', start + 1);
  return doc.slice(start, end < 0 ? undefined : end);
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens. */
function anchorOf(heading: string): string {
  return heading
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /gu, '-');
}

t.test('the request schema lists the operations', (t) => {
  t.ok(ops.length >= 10, `${ops.length} operations`);
  t.ok(ops.includes('hello') && ops.includes('ping'), 'hello and ping among them');
  t.end();
});

t.test('every operation has its own "### <op>" section under "## Operations", and nothing else has one', (t) => {
  const operations = section('Operations');
  t.ok(operations.length > 0, 'the docs have the Operations section');
  const headings = [...operations.matchAll(/^### (.+)$/gmu)].map((match) => match[1]!.trim());
  for (const op of ops) t.ok(headings.includes(op), `### ${op}`);
  t.same([...headings].sort(), [...ops].sort(), 'the sections are exactly the operations');
  t.end();
});

t.test('the list of operations in "Requests" names exactly the operations', (t) => {
  const line = /^- `op` is one of (.+)$/mu.exec(doc)?.[1];
  t.ok(line, 'the docs list the operations');
  const listed = [...(line ?? '').matchAll(/`([A-Za-z]+)`/gu)].map((match) => match[1]);
  t.same([...listed].sort(), [...ops].sort());
  t.end();
});

t.test('every error code of the catalogue appears in the docs, and the docs name no other', (t) => {
  for (const code of codes) t.ok(new RegExp(`\\b${code}\\b`, 'u').test(doc), code);
  const named = new Set([...doc.matchAll(/`(E[A-Z]{2,})`/gu)].map((match) => match[1]!));
  t.same(
    [...named].filter((code) => !codes.includes(code)),
    [],
    'no code in backticks that the catalogue lacks',
  );
  t.end();
});

t.test('every link within the docs leads to a heading', (t) => {
  const anchors = new Set([...doc.matchAll(/^#+ (.+)$/gmu)].map((match) => anchorOf(match[1]!.trim())));
  const links = [...doc.matchAll(/\]\(#([^)]+)\)/gu)].map((match) => match[1]!);
  t.ok(links.length > 0, 'the docs link within themselves');
  for (const link of new Set(links)) t.ok(anchors.has(link), `#${link}`);
  t.end();
});
