import { FerryError } from './errors.js';

export const maxNameBytes = 1024;
export const maxSegmentBytes = 255;
export const maxNameSegments = 32;

// Protocol rule for names (docs/protocol.md, "Names"): a name is a relative path with `/`
// separators, at most 32 segments; each segment is 1-255 bytes of UTF-8, is not `.` or `..`, and
// holds no NUL or control character (U+0000-U+001F, U+007F-U+009F); the whole name is at most
// 1024 bytes and in Unicode NFC form. No leading `/` (absolute), no trailing `/`, no empty segment
// (`a//b`), no backslash (a path separator elsewhere). No character that changes how a name looks
// without being seen: bidirectional controls (U+202A-U+202E, U+2066-U+2069, and the marks U+061C,
// U+200E, U+200F), zero-width and invisible characters (U+200B, U+2060-U+2064, U+FEFF, U+180E), and
// the joiners U+200C/U+200D anywhere but between two letters, marks or pictographs (as in an emoji
// sequence or Persian text). Every client-supplied name passes through this one guard.
// eslint-disable-next-line no-control-regex
const forbiddenCharacters = /[\u0000-\u001f\u007f-\u009f\\]/u;
const invisibleCharacters = /[\u061c\u180e\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/u;
const joinedCharacter = String.raw`[\p{L}\p{M}\p{Extended_Pictographic}]`;
const strayJoiner = new RegExp(String.raw`(?<!${joinedCharacter})[\u200c\u200d]|[\u200c\u200d](?!${joinedCharacter})`, 'u');

/** `U+202E`, the way a message names a character. */
function codePointOf(character: string): string {
  return `U+${character.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** Where `name` first differs from its NFC form, as the code points there (for the message). */
function firstUnnormalised(name: string): string {
  const normal = name.normalize('NFC');
  let at = 0;
  while (at < name.length && name[at] === normal[at]) at += 1;
  const start = Math.max(0, at - 1);
  return [...name.slice(start, start + 3)].map(codePointOf).join(' ');
}

/**
 * The key under which two names are the same file on a case-insensitive file system (macOS,
 * Windows, casefold ext4): case folded (upper, then lower case, so ß and SS meet) after NFC.
 */
export function foldName(name: string): string {
  return name.normalize('NFC').toUpperCase().toLowerCase();
}

/** Returns the name unchanged if it is valid; throws FerryError EBADNAME otherwise. */
export function checkName(name: unknown): string {
  if (typeof name !== 'string') throw new FerryError('EBADNAME', 'name must be a string');
  if (name.length === 0) throw new FerryError('EBADNAME', 'name is empty');
  if (Buffer.from(name, 'utf8').toString('utf8') !== name) throw new FerryError('EBADNAME', 'name is not valid UTF-8');
  if (Buffer.byteLength(name, 'utf8') > maxNameBytes) {
    throw new FerryError('EBADNAME', `name is longer than ${maxNameBytes} bytes`);
  }
  if (forbiddenCharacters.test(name)) {
    throw new FerryError('EBADNAME', `name contains a control character or backslash: ${JSON.stringify(name)}`);
  }
  const invisible = invisibleCharacters.exec(name) ?? strayJoiner.exec(name);
  if (invisible) {
    throw new FerryError(
      'EBADNAME',
      `name contains an invisible or text-direction character, ${codePointOf(invisible[0])}, at position ${invisible.index}`,
    );
  }
  if (name.normalize('NFC') !== name) {
    throw new FerryError('EBADNAME', `name is not in Unicode NFC form (at ${firstUnnormalised(name)}); normalise it first`);
  }
  if (name.startsWith('/')) throw new FerryError('EBADNAME', `name must be relative: ${name}`);
  const segments = name.split('/');
  if (segments.length > maxNameSegments)
    throw new FerryError('EBADNAME', `name has ${segments.length} segments; at most ${maxNameSegments} are allowed`);
  for (const segment of segments) {
    if (segment === '') throw new FerryError('EBADNAME', `name has an empty segment: ${name}`);
    if (segment === '.' || segment === '..') throw new FerryError('EBADNAME', `name may not contain "${segment}": ${name}`);
    if (Buffer.byteLength(segment, 'utf8') > maxSegmentBytes) {
      throw new FerryError('EBADNAME', `a segment of the name is longer than ${maxSegmentBytes} bytes`);
    }
  }
  return name;
}
