import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface Table {
  /** One line above the table, if any. */
  caption?: string;
  headers: readonly string[];
  rows: readonly (readonly string[])[];
  /** Columns to right-align (numbers); by index. */
  numeric?: readonly number[];
}

/** What every scenario hands back: its tables and notes for people, its raw data for the JSON. */
export interface ScenarioReport {
  id: string;
  title: string;
  notes: readonly string[];
  tables: readonly Table[];
  data: unknown;
}

function escapeCell(text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('\n', ' ');
}

export function markdownTable(table: Table): string {
  const numeric = new Set(table.numeric ?? []);
  const widths = table.headers.map((header, column) =>
    Math.max(header.length, ...table.rows.map((row) => escapeCell(row[column] ?? '').length), 3),
  );
  const line = (cells: readonly string[]): string =>
    '| ' +
    cells
      .map((cell, column) => {
        const text = escapeCell(cell);
        const width = widths[column]!;
        return numeric.has(column) ? text.padStart(width) : text.padEnd(width);
      })
      .join(' | ') +
    ' |';
  const rule =
    '|' + widths.map((width, column) => (numeric.has(column) ? '-'.repeat(width + 1) + ':' : '-'.repeat(width + 2))).join('|') + '|';
  const lines = [line(table.headers), rule, ...table.rows.map((row) => line(table.headers.map((_, column) => row[column] ?? '')))];
  return (table.caption ? table.caption + '\n\n' : '') + lines.join('\n');
}

export function scenarioMarkdown(report: ScenarioReport): string {
  const parts = [`## ${report.title}`, ...report.tables.map(markdownTable)];
  if (report.notes.length > 0) parts.push(report.notes.map((note) => `- ${note}`).join('\n'));
  return parts.join('\n\n') + '\n';
}

export async function writeResultFile(dir: string, fileName: string, content: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, fileName);
  await writeFile(path, content);
  return path;
}
