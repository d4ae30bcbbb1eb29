/**
 * A small hand-written SVG chart of the concurrency sweep: aggregate MiB/s (left panel) and p99
 * latency (right panel) against the number of clients, log2 x axis and log10 y axes, one colour
 * per file size, solid for uploads and dashed for downloads.
 */

export interface ChartSeries {
  label: string;
  /** Index into the palette: series of the same file size share a colour. */
  colour: number;
  dashed: boolean;
  points: { clients: number; value: number }[];
}

export interface ChartPanel {
  title: string;
  unit: string;
  series: ChartSeries[];
}

const palette = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];
const panelWidth = 380;
const panelHeight = 260;
const margin = { left: 62, right: 16, top: 34, bottom: 44 };

function escapeXml(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');
}

function formatTick(value: number): string {
  if (value >= 1000) return `${value / 1000}k`;
  if (value >= 1) return String(value);
  return String(Number(value.toPrecision(1)));
}

/** 1-2-5 ticks covering [low, high] on a log10 axis. */
function logTicks(low: number, high: number): number[] {
  const ticks: number[] = [];
  for (let exponent = Math.floor(Math.log10(low)); exponent <= Math.ceil(Math.log10(high)); exponent += 1) {
    for (const mantissa of [1, 2, 5]) {
      const tick = mantissa * 10 ** exponent;
      if (tick >= low * 0.999 && tick <= high * 1.001) ticks.push(Number(tick.toPrecision(3)));
    }
  }
  return ticks;
}

function panel(p: ChartPanel, offsetX: number, clientCounts: number[]): string {
  const values = p.series.flatMap((s) => s.points.map((pt) => pt.value)).filter((v) => Number.isFinite(v) && v > 0);
  const width = panelWidth - margin.left - margin.right;
  const height = panelHeight - margin.top - margin.bottom;
  const x0 = offsetX + margin.left;
  const y0 = margin.top;
  const out: string[] = [`<text x="${x0 + width / 2}" y="20" text-anchor="middle" font-weight="bold">${escapeXml(p.title)}</text>`];
  out.push(`<rect x="${x0}" y="${y0}" width="${width}" height="${height}" fill="none" stroke="#999"/>`);
  if (values.length === 0) {
    out.push(`<text x="${x0 + width / 2}" y="${y0 + height / 2}" text-anchor="middle">no data</text>`);
    return out.join('\n');
  }
  const low = 10 ** Math.floor(Math.log10(Math.min(...values)));
  const high = 10 ** Math.ceil(Math.log10(Math.max(...values)));
  const minX = Math.log2(Math.min(...clientCounts));
  const maxX = Math.log2(Math.max(...clientCounts));
  const spanX = maxX - minX || 1;
  const xOf = (clients: number): number => x0 + ((Math.log2(clients) - minX) / spanX) * width;
  const yOf = (value: number): number =>
    y0 + height - ((Math.log10(value) - Math.log10(low)) / (Math.log10(high) - Math.log10(low) || 1)) * height;
  for (const tick of logTicks(low, high)) {
    const y = yOf(tick).toFixed(1);
    out.push(`<line x1="${x0}" x2="${x0 + width}" y1="${y}" y2="${y}" stroke="#eee"/>`);
    out.push(`<text x="${x0 - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${formatTick(tick)}</text>`);
  }
  for (const clients of clientCounts) {
    const x = xOf(clients).toFixed(1);
    out.push(`<line x1="${x}" x2="${x}" y1="${y0}" y2="${y0 + height}" stroke="#eee"/>`);
    out.push(`<text x="${x}" y="${y0 + height + 16}" text-anchor="middle">${clients}</text>`);
  }
  out.push(`<text x="${x0 + width / 2}" y="${y0 + height + 34}" text-anchor="middle">clients (log2)</text>`);
  out.push(
    `<text transform="translate(${offsetX + 16} ${y0 + height / 2}) rotate(-90)" text-anchor="middle">${escapeXml(p.unit)} (log10)</text>`,
  );
  for (const s of p.series) {
    const points = s.points.filter((pt) => Number.isFinite(pt.value) && pt.value > 0);
    if (points.length === 0) continue;
    const colour = palette[s.colour % palette.length]!;
    const path = points.map((pt) => `${xOf(pt.clients).toFixed(1)},${yOf(pt.value).toFixed(1)}`).join(' ');
    out.push(`<polyline points="${path}" fill="none" stroke="${colour}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    for (const pt of points)
      out.push(`<circle cx="${xOf(pt.clients).toFixed(1)}" cy="${yOf(pt.value).toFixed(1)}" r="3" fill="${colour}"/>`);
  }
  return out.join('\n');
}

export function concurrencyChart(title: string, panels: [ChartPanel, ChartPanel], clientCounts: number[]): string {
  const counts = [...new Set(clientCounts)].sort((a, b) => a - b);
  const legendSeries = panels[0].series;
  const legendRows = Math.ceil(legendSeries.length / 2);
  const width = panelWidth * 2;
  const height = panelHeight + 30 + legendRows * 18 + 10;
  const legend = legendSeries.map((s, index) => {
    const x = 70 + (index % 2) * 340;
    const y = panelHeight + 30 + Math.floor(index / 2) * 18;
    const colour = palette[s.colour % palette.length]!;
    return (
      `<line x1="${x}" x2="${x + 28}" y1="${y}" y2="${y}" stroke="${colour}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>` +
      `<text x="${x + 36}" y="${y}" dominant-baseline="middle">${escapeXml(s.label)}</text>`
    );
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    panel(panels[0], 0, counts),
    panel(panels[1], panelWidth, counts),
    `<text x="${width / 2}" y="${panelHeight + 12}" text-anchor="middle" fill="#555">${escapeXml(title)}</text>`,
    ...legend,
    '</svg>',
    '',
  ].join('\n');
}
