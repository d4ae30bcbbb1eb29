import { FerryError } from './errors.js';

export const maxNameBytes = 1024;
export const maxSegmentBytes = 255;

// Protocol rule for names (docs/protocol.md, "Names"): a name is a relative path with `/`
// separators; each segment is 1-255 bytes of UTF-8, is not `.` or `..`, and holds no NUL or
// control character (U+0000-U+001F, U+007F-U+009F); the whole name is at most 1024 bytes.
// No leading `/` (absolute), no trailing `/`, no empty segment (`a//b`), no backslash
// (a path separator elsewhere). Every client-supplied name passes through this one guard.
// eslint-disable-next-line no-control-regex
const forbiddenCharacters = /[\u0000-\u001f\u007f-\u009f\\]/u;

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
  if (name.startsWith('/')) throw new FerryError('EBADNAME', `name must be relative: ${name}`);
  for (const segment of name.split('/')) {
    if (segment === '') throw new FerryError('EBADNAME', `name has an empty segment: ${name}`);
    if (segment === '.' || segment === '..') throw new FerryError('EBADNAME', `name may not contain "${segment}": ${name}`);
    if (Buffer.byteLength(segment, 'utf8') > maxSegmentBytes) {
      throw new FerryError('EBADNAME', `a segment of the name is longer than ${maxSegmentBytes} bytes`);
    }
  }
  return name;
}
