// Unit tests for the name guard (src/protocol/names.ts): which client-supplied names are valid.
import t from 'tap';
import { FerryError } from '../src/protocol/errors.js';
import { checkName, maxNameBytes, maxSegmentBytes } from '../src/protocol/names.js';

/** The assertions `rejects` uses; subtests provide them. */
type Asserts = Pick<typeof t, 'type' | 'equal' | 'match'>;

/** Asserts checkName rejects `name` with EBADNAME (and a message matching `message`, if given). */
function rejects(t: Asserts, name: unknown, message?: RegExp): void {
  let caught: unknown;
  let returned: unknown;
  try {
    returned = checkName(name);
  } catch (error) {
    caught = error;
  }
  t.type(caught, FerryError, `rejects ${describe(name)}${caught ? '' : ` (returned ${describe(returned)})`}`);
  t.equal((caught as FerryError | undefined)?.code, 'EBADNAME', `EBADNAME for ${describe(name)}`);
  if (message) t.match((caught as Error | undefined)?.message, message, `reason for ${describe(name)}`);
}

/** A one-line label for a test name (TAP output breaks on raw line separators, U+2028 included). */
function describe(value: unknown): string {
  if (typeof value === 'string') {
    const text = value.length > 40 ? `${JSON.stringify(value.slice(0, 20))}... (${value.length} chars)` : JSON.stringify(value);
    return text.replace(/[\u2028\u2029\u0085]/gu, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  }
  if (typeof value === 'bigint') return `${value}n`;
  return String(value);
}

t.test('limits', (t) => {
  t.equal(maxNameBytes, 1024);
  t.equal(maxSegmentBytes, 255);
  t.end();
});

t.test('valid names are returned unchanged', (t) => {
  const valid = [
    'a',
    'file.txt',
    'dir/file.bin',
    'a/b/c/d/e/f/g.tar.gz',
    'with space.txt',
    ' leading and trailing ',
    'dir with spaces/sub dir/file name',
    'résumé/日本語.txt',
    '🚀/🎉 party.txt',
    'family 👨‍👩‍👧‍👦.png', // ZWJ sequence: joiners between pictographs
    'می‌خواهم.txt', // ZWNJ between Persian letters
    'café', // NFC (U+00E9)
    'Ωmega/ünïcödé/ßtraße',
    '.hidden',
    'dir/.hidden/..dots/...',
    'a.',
    '..a',
    '-dash',
    'name:with;punct!@#$%^&()[]{}=+,~`\'"',
    'x'.repeat(255),
    'é'.repeat(127) + 'a', // 255 bytes
    '日'.repeat(85), // 255 bytes
    '🚀'.repeat(63) + 'abc', // 255 bytes, 129 UTF-16 units
    '\u00a0nbsp', // U+00A0 is just past the C1 range
    '\u2028line separator', // not in the forbidden ranges
  ];
  for (const name of valid) {
    let result: unknown;
    t.doesNotThrow(
      () => {
        result = checkName(name);
      },
      `accepts ${describe(name)}`,
    );
    t.equal(result, name, `returns ${describe(name)} unchanged`);
  }
  t.end();
});

t.test('whole-name length: 1024 bytes is fine, 1025 is not', (t) => {
  const segments = ['a'.repeat(200), 'b'.repeat(200), 'c'.repeat(200), 'd'.repeat(200), 'e'.repeat(220)];
  const exact = segments.join('/');
  t.equal(Buffer.byteLength(exact), 1024);
  t.equal(checkName(exact), exact, 'exactly 1024 bytes, no segment over 255');
  rejects(t, exact + 'f', /longer than 1024 bytes/u);

  // Multi-byte: 1024 bytes are fewer than 1024 characters.
  const multi = ['é'.repeat(127), 'é'.repeat(127), 'é'.repeat(127), 'é'.repeat(127), 'abcd'].join('/'); // 4*254 + 4 slashes + 4 = 1024
  t.equal(Buffer.byteLength(multi), 1024);
  t.ok(multi.length < 1024);
  t.equal(checkName(multi), multi);
  const multiOver = multi + 'é';
  t.ok(multiOver.length < 1024, 'under 1024 characters');
  rejects(t, multiOver, /longer than 1024 bytes/u);
  rejects(t, 'x/'.repeat(600) + 'x', /longer than 1024 bytes/u);
  t.end();
});

t.test('segment length counts bytes, not characters', (t) => {
  rejects(t, 'x'.repeat(256), /segment/u);
  rejects(t, `ok/${'x'.repeat(256)}/ok`, /segment/u);
  rejects(t, 'é'.repeat(128), /segment/u); // 128 chars, 256 bytes
  rejects(t, `dir/${'日'.repeat(86)}`, /segment/u); // 86 chars, 258 bytes
  rejects(t, '🚀'.repeat(64), /segment/u); // 64 code points, 256 bytes
  rejects(t, 'é'.repeat(127) + 'ab', /segment/u); // 256 bytes
  t.end();
});

t.test('invalid names are rejected with EBADNAME', (t) => {
  const invalid: [string, unknown, RegExp?][] = [
    ['empty', '', /empty/u],
    ['absolute', '/abs', /relative/u],
    ['absolute nested', '/a/b', /relative/u],
    ['root', '/'],
    ['parent at start', '../x', /"\.\."/u],
    ['parent in the middle', 'a/../b', /"\.\."/u],
    ['parent at end', 'a/..', /"\.\."/u],
    ['current dir in the middle', 'a/./b', /"\."/u],
    ['current dir at start', './a', /"\."/u],
    ['dot', '.', /"\."/u],
    ['dot dot', '..', /"\.\."/u],
    ['empty segment', 'a//b', /empty segment/u],
    ['trailing slash', 'a/', /empty segment/u],
    ['trailing slash nested', 'a/b/', /empty segment/u],
    ['only slashes', '//'],
    ['backslash', 'a\\b', /backslash/u],
    ['backslash parent', '..\\x', /backslash/u],
    ['NUL', 'a\u0000b', /control/u],
    ['NUL at end', 'a\u0000', /control/u],
    ['newline', 'a\nb', /control/u],
    ['carriage return', 'a\rb', /control/u],
    ['tab', 'a\tb', /control/u],
    ['escape', '\u001b[31mred', /control/u],
    ['unit separator', 'a\u001fb', /control/u],
    ['DEL', 'a\u007fb', /control/u],
    ['C1 first', 'a\u0080b', /control/u],
    ['C1 NEL', 'a\u0085b', /control/u],
    ['C1 last', 'a\u009fb', /control/u],
    ['lone high surrogate', '\ud800', /UTF-8/u],
    ['lone low surrogate', 'a\udc00b', /UTF-8/u],
    ['reversed surrogate pair', 'x\udc00\ud800', /UTF-8/u],
    ['number', 42, /string/u],
    ['undefined', undefined, /string/u],
    ['null', null, /string/u],
    ['object', { name: 'a' }, /string/u],
    ['array', ['a'], /string/u],
    ['String object', new String('a'), /string/u],
    ['bigint', 1n, /string/u],
  ];
  for (const [what, name, message] of invalid) {
    t.test(what, (t) => {
      rejects(t, name, message);
      t.end();
    });
  }
  t.end();
});

t.test('characters that change how a name looks without being seen, and names not in NFC, are refused, saying which', (t) => {
  const invisible: [string, string, string][] = [
    ['right-to-left override', 'invoice\u202Etxt.exe', 'U+202E'],
    ['left-to-right embedding', 'a\u202Ab', 'U+202A'],
    ['right-to-left isolate', 'a\u2067b', 'U+2067'],
    ['pop directional isolate', 'a\u2069b', 'U+2069'],
    ['right-to-left mark', 'a\u200Fb', 'U+200F'],
    ['arabic letter mark', 'a\u061Cb', 'U+061C'],
    ['zero-width space', 'pass\u200Bword.txt', 'U+200B'],
    ['word joiner', 'a\u2060b', 'U+2060'],
    ['byte order mark', '\uFEFFname', 'U+FEFF'],
    ['a joiner at the start', '\u200Dname', 'U+200D'],
    ['a joiner beside a space', 'a \u200C b', 'U+200C'],
    ['a joiner at the end of a segment', 'dir\u200D/file', 'U+200D'],
  ];
  for (const [what, name, character] of invisible) {
    t.test(what, (t) => {
      rejects(t, name, new RegExp(character.replace('+', '\\+'), 'u'));
      t.end();
    });
  }
  rejects(t, 'cafe\u0301', /NFC.*U\+0065 U\+0301/u);
  rejects(t, 'dir/A\u030A.txt', /NFC/u);
  t.end();
});

t.test('at most 32 segments', (t) => {
  const deepest = Array.from({ length: 32 }, (_, index) => `d${index}`).join('/');
  t.equal(checkName(deepest), deepest, '32 segments are fine');
  rejects(t, `${deepest}/x`, /33 segments; at most 32/u);
  rejects(t, 'a/'.repeat(510) + 'a', /longer than 1024 bytes|segments/u);
  t.end();
});

t.test('EBADNAME errors carry the catalogue exit code', (t) => {
  let caught: unknown;
  try {
    checkName('../etc/passwd');
  } catch (error) {
    caught = error;
  }
  t.type(caught, FerryError);
  t.equal((caught as FerryError).exitCode, 1);
  t.end();
});
