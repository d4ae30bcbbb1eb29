// Text for failure messages and comments, as TAP can carry it.

/**
 * Text as TAP can carry it: a raw line separator (U+2028, U+2029, NEL) or another C1 character
 * breaks the TAP stream, and a broken stream can hide a failing test point.
 */
export function tapSafe(text: string): string {
  return text.replace(/[\u007f-\u009f\u2028\u2029]/gu, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A short, single-line, TAP-safe rendering of a value for failure messages. */
export function show(value: unknown, max = 300): string {
  const text = tapSafe(JSON.stringify(value, (_, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v)) ?? String(value));
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
