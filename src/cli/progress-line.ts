import stringWidth from 'string-width';
import { formatBytes, formatElapsed } from './units.js';

/** What one line of a transfer's progress shows. */
export interface ProgressFields {
  name: string;
  /** Shown whole before the name (a tree's `[files done/total]`): the name is what gets shortened. */
  counter?: string | undefined;
  done: number;
  /** Undefined while the size is unknown (standard input): the line then shows bytes and rate only. */
  total: number | undefined;
  /** Bytes per second moved recently; undefined until there is a measure. */
  rate: number | undefined;
}

/** Widest the bar gets, and the narrowest worth drawing. */
const widestBar = 25;
const narrowestBar = 5;
/** A name is shortened in the middle to no fewer than this many characters before the bar shrinks. */
const shortestName = 12;

/** Columns a string takes on a terminal: a CJK character or an emoji takes two. */
export const displayWidth: (text: string) => number = stringWidth;

/** The longest run of `characters` (from the start, or from the end) no wider than `width` columns. */
function within(characters: string[], width: number, fromEnd: boolean): string {
  const taken: string[] = [];
  let used = 0;
  for (let index = 0; index < characters.length; index += 1) {
    const character = characters[fromEnd ? characters.length - 1 - index : index]!;
    const cells = displayWidth(character);
    if (used + cells > width) break;
    used += cells;
    taken.push(character);
  }
  return (fromEnd ? taken.reverse() : taken).join('');
}

/**
 * A name no wider than `width` columns: the middle is replaced by an ellipsis, so the start and
 * the end (often the extension) stay. An empty string when nothing fits.
 */
export function shortenMiddle(name: string, width: number): string {
  if (displayWidth(name) <= width) return name;
  if (width <= 1) return width === 1 ? '…' : '';
  const keep = width - 1;
  const characters = [...name];
  return within(characters, Math.ceil(keep / 2), false) + '…' + within(characters, Math.floor(keep / 2), true);
}

/** "38%", "100%": rounded down, so 100% means done. */
export function percentOf(done: number, total: number): string {
  return `${total === 0 ? 100 : Math.floor((done / total) * 100)}%`;
}

/** Time left at `rate`, or "--" while unknown. */
function etaOf(done: number, total: number, rate: number | undefined): string {
  if (done >= total) return 'ETA 0s';
  if (!rate || rate <= 0) return 'ETA --';
  return `ETA ${formatElapsed(Math.ceil((total - done) / rate))}`;
}

/**
 * One progress line, at most `columns - 1` characters wide (the last column is left free so no
 * terminal wraps it): `name [=====-----] 38%  76.0 MiB/200 MiB  12.3 MiB/s  ETA 10s`. Percent,
 * bytes, rate and ETA always show; the name is shortened in the middle first, then the bar, then
 * the name again, then both go. A `counter` goes before it all, whole, while there is room for it.
 */
export function progressLine(fields: ProgressFields, columns: number): string {
  const { counter } = fields;
  if (counter !== undefined) {
    const rest = progressLine({ ...fields, counter: undefined }, columns - displayWidth(counter) - 1);
    const line = `${counter} ${rest}`;
    return displayWidth(line) <= columns - 1 ? line : progressLine({ ...fields, counter: undefined }, columns);
  }
  const rate = fields.rate === undefined ? '-- B/s' : `${formatBytes(fields.rate)}/s`;
  const { done, total } = fields;
  if (total === undefined) {
    // Nothing to measure against: no bar, percent or ETA; the name gets what the bytes and rate leave.
    const tail = `${formatBytes(done).padStart(8)}  ${rate.padStart(10)}`;
    const name = shortenMiddle(fields.name, columns - 1 - tail.length - 1);
    return name === '' ? tail : `${name} ${tail}`;
  }
  const tail = `${percentOf(done, total).padStart(4)}  ${formatBytes(done).padStart(8)}/${formatBytes(total)}  ${rate.padStart(10)}  ${etaOf(done, total, fields.rate)}`;
  const room = columns - 1 - tail.length;
  const nameWidth = displayWidth(fields.name);
  // Name, space, [bar], space: what is left for the name and the bar together.
  const barCells = (cells: number): number => cells + 3;
  let nameCells = nameWidth;
  let bar = widestBar;
  if (nameCells + 1 + barCells(bar) > room) nameCells = Math.max(Math.min(nameWidth, shortestName), room - 1 - barCells(bar));
  if (nameCells + 1 + barCells(bar) > room) bar = room - nameCells - 1 - 3;
  if (bar < narrowestBar) {
    bar = 0;
    nameCells = Math.min(nameWidth, room - 1);
  }
  const name = nameCells > 0 ? shortenMiddle(fields.name, nameCells) + ' ' : '';
  const filled = total === 0 ? bar : Math.min(bar, Math.floor((done / total) * bar));
  const drawn = bar > 0 ? `[${'='.repeat(filled)}${'-'.repeat(bar - filled)}] ` : '';
  const line = `${name}${drawn}${tail}`;
  return displayWidth(line) <= columns - 1 ? line : tail;
}
