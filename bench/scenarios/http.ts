/**
 * The HTTP side (issue 14): a download with curl from Ferry's HTTP side against the same file
 * from a bare Node `http` server piping it and from nginx serving it statically (sendfile); an
 * upload with tus-js-client (in this process) to Ferry against @tus/server with its FileStore.
 * Ferry checks every chunk's XXH64 on the way out and the whole file's SHA-256 on the way in; the
 * references check nothing. Each pair runs them in an order rotated by one from the last pair's.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Upload } from 'tus-js-client';
import { type BenchContext, log } from '../lib/context.js';
import { expectSuccess, runCommand, startCommand, stopChild } from '../lib/children.js';
import { type SourceFile, fileSize, makeTempDir, removeDir, sha256File, tmpfsAvailable } from '../lib/files.js';
import { freePort, waitForListener } from '../lib/net.js';
import { which } from '../lib/peers.js';
import { childPids, processCpuSeconds, reapedChildrenCpuSeconds } from '../lib/proc.js';
import type { ScenarioReport, Table } from '../lib/report.js';
import { FerryServer } from '../lib/server.js';
import { median, roundOrder } from '../lib/stats.js';
import { formatBytes, formatNumber, mibPerSecond } from '../lib/units.js';

const libDir = fileURLToPath(new URL('../lib/', import.meta.url));
const tusReferenceName = '@tus/server FileStore';
const floorName = 'floor: hash + write';

/** One HTTP server the bench measures: how to reach it, and the CPU its processes used so far. */
interface Endpoint {
  name: string;
  how: string;
  cpuSeconds(): number;
  stop(): Promise<void>;
}

interface DownloadEndpoint extends Endpoint {
  /** The URL of the file, and the headers curl sends. */
  url: string;
  headers: string[];
}

interface UploadEndpoint extends Endpoint {
  endpoint: string;
  headers: Record<string, string>;
  metadata: Record<string, string>;
}

export interface HttpSample {
  seconds: number;
  mibPerSecond: number;
  /** CPU seconds of client and server together. */
  cpuSeconds: number;
}

export interface HttpRow {
  tool: string;
  direction: 'download' | 'upload';
  how: string;
  samples: HttpSample[];
  skipped?: string;
}

/** CPU of a process and its live children (nginx's workers live as long as it does). */
function liveTreeCpuSeconds(pid: number): number {
  return processCpuSeconds(pid) + childPids(pid).reduce((total, child) => total + processCpuSeconds(child), 0);
}

async function started(command: string, args: string[], port: number, what: string): Promise<{ stop: () => Promise<void>; pid: number }> {
  const run = startCommand(command, args);
  await waitForListener(port, what, () => run.child.exitCode === null && run.child.signalCode === null);
  return { pid: run.child.pid!, stop: async () => void (await stopChild(run.child)) };
}

async function bareNode(file: string): Promise<DownloadEndpoint> {
  const port = await freePort();
  const server = await started(
    process.execPath,
    [join(libDir, 'bare-http-server.js'), String(port), file],
    port,
    'the bare Node http server',
  );
  return {
    name: 'bare Node http',
    how: 'node:http, fs.createReadStream(file).pipe(response): no checks',
    url: `http://127.0.0.1:${port}/file`,
    headers: [],
    cpuSeconds: () => processCpuSeconds(server.pid),
    stop: () => server.stop(),
  };
}

async function tusFloor(dir: string, sha256: string): Promise<UploadEndpoint> {
  const port = await freePort();
  const server = await started(process.execPath, [join(libDir, 'tus-floor-server.js'), String(port), dir], port, 'the tus floor server');
  return {
    name: floorName,
    how: 'a bare node:http server that only SHA-256s every byte as it arrives and writes it (blocking writes; no per-chunk checks, no syncs, no resume): the least any upload verified end to end costs here',
    endpoint: `http://127.0.0.1:${port}/files`,
    headers: {},
    metadata: { filename: 'source.bin', sha256 },
    cpuSeconds: () => processCpuSeconds(server.pid),
    stop: () => server.stop(),
  };
}

async function nginx(dir: string, work: string): Promise<DownloadEndpoint | string> {
  const binary = which('nginx') ?? (which('/usr/sbin/nginx') ? '/usr/sbin/nginx' : undefined);
  if (!binary) return "nginx not found (bash bench/setup-peers.sh installs Debian's nginx)";
  const port = await freePort();
  const prefix = join(work, 'nginx');
  await rm(prefix, { recursive: true, force: true });
  await runCommand('mkdir', ['-p', join(prefix, 'logs'), join(prefix, 'tmp')]);
  const config = join(prefix, 'nginx.conf');
  await writeFile(
    config,
    [
      'daemon off;',
      'worker_processes 1;',
      // As root, its worker would otherwise run as nobody, who may not read the bench's temp dir.
      ...(process.getuid?.() === 0 ? ['user root;'] : []),
      `pid ${join(prefix, 'nginx.pid')};`,
      `error_log ${join(prefix, 'logs', 'error.log')};`,
      'events { worker_connections 64; }',
      'http {',
      '  access_log off; sendfile on; tcp_nopush on;',
      `  client_body_temp_path ${join(prefix, 'tmp')}; proxy_temp_path ${join(prefix, 'tmp')}; fastcgi_temp_path ${join(prefix, 'tmp')};`,
      `  uwsgi_temp_path ${join(prefix, 'tmp')}; scgi_temp_path ${join(prefix, 'tmp')};`,
      `  server { listen 127.0.0.1:${port}; root ${dir}; }`,
      '}',
      '',
    ].join('\n'),
  );
  const server = await started(binary, ['-c', config, '-p', prefix], port, 'nginx');
  return {
    name: 'nginx',
    how: 'nginx serving the file statically (sendfile on, 1 worker): no checks',
    url: `http://127.0.0.1:${port}/source.bin`,
    headers: [],
    cpuSeconds: () => liveTreeCpuSeconds(server.pid),
    stop: () => server.stop(),
  };
}

async function tusReference(dir: string): Promise<UploadEndpoint> {
  const port = await freePort();
  const server = await started(process.execPath, [join(libDir, 'tus-reference-server.js'), String(port), dir], port, '@tus/server');
  return {
    name: tusReferenceName,
    how: '@tus/server with @tus/file-store: writes what arrives, checks nothing',
    endpoint: `http://127.0.0.1:${port}/files`,
    headers: {},
    metadata: { filename: 'source.bin' },
    cpuSeconds: () => processCpuSeconds(server.pid),
    stop: () => server.stop(),
  };
}

async function curlDownload(endpoint: DownloadEndpoint, dest: string, size: number): Promise<HttpSample> {
  await rm(dest, { force: true });
  const cpu = (): number => reapedChildrenCpuSeconds() + endpoint.cpuSeconds();
  const before = cpu();
  const headerArgs = endpoint.headers.flatMap((header) => ['-H', header]);
  const { seconds } = expectSuccess(
    `curl from ${endpoint.name}`,
    await runCommand('curl', ['-sS', '-f', ...headerArgs, '-o', dest, endpoint.url]),
  );
  const cpuSeconds = cpu() - before;
  const written = await fileSize(dest);
  if (written !== size) throw new Error(`curl from ${endpoint.name}: ${written} bytes, expected ${size}`);
  return { seconds, mibPerSecond: mibPerSecond(size, seconds), cpuSeconds };
}

async function tusUpload(endpoint: UploadEndpoint, bytes: Buffer): Promise<HttpSample> {
  const cpu = (): number => {
    const own = process.cpuUsage();
    return (own.user + own.system) / 1e6 + endpoint.cpuSeconds();
  };
  const before = cpu();
  const startedAt = performance.now();
  await new Promise<void>((resolve, reject) => {
    new Upload(bytes, {
      endpoint: endpoint.endpoint,
      headers: endpoint.headers,
      metadata: endpoint.metadata,
      retryDelays: null,
      onSuccess: () => resolve(),
      onError: reject,
    }).start();
  });
  const seconds = (performance.now() - startedAt) / 1000;
  return { seconds, mibPerSecond: mibPerSecond(bytes.length, seconds), cpuSeconds: cpu() - before };
}

export async function runHttp(ctx: BenchContext): Promise<ScenarioReport> {
  const size = ctx.options.sizeBytes;
  const source: SourceFile = await ctx.source(size);
  const medium = tmpfsAvailable() ? 'tmpfs' : 'disk';
  const work = await makeTempDir(medium, 'http');
  const rows: HttpRow[] = [];
  const endpoints: Endpoint[] = [];
  try {
    // Everything served from and written to the same medium: the file the references serve is a copy there.
    const served = join(work, 'served');
    await runCommand('mkdir', ['-p', served, join(work, 'tus-ref'), join(work, 'tus-floor')]);
    expectSuccess('copying the source', await runCommand('cp', [source.path, join(served, 'source.bin')]));
    const bytes = await readFile(source.path);
    const httpPort = await freePort();
    const ferry = await FerryServer.start(join(work, 'ferry-data'), ['--http-port', String(httpPort)]);
    const auth = { Authorization: `Bearer ${ferry.token}` };
    const ferryCpu = (): number => processCpuSeconds(ferry.pid);
    endpoints.push({ name: 'Ferry', how: '', cpuSeconds: ferryCpu, stop: async () => void (await ferry.stop()) });
    const ferryUploads: UploadEndpoint = {
      name: 'Ferry',
      how: "Ferry's tus endpoint: each chunk's XXH64 computed and checked by the worker that writes it, synced before it is recorded, the whole file's SHA-256 checked before the atomic publish",
      endpoint: `http://127.0.0.1:${httpPort}/tus/`,
      headers: auth,
      metadata: { filename: 'source.bin', sha256: source.sha256, overwrite: '' },
      cpuSeconds: ferryCpu,
      stop: () => Promise.resolve(),
    };
    // The file Ferry serves: uploaded once, untimed, then checked.
    await tusUpload(ferryUploads, bytes);
    const ferryDownloads: DownloadEndpoint = {
      name: 'Ferry',
      how: "Ferry's HTTP side, GET /files/NAME: every chunk read by a worker and checked against its recorded XXH64 before it is sent",
      url: `http://127.0.0.1:${httpPort}/files/source.bin`,
      headers: [`Authorization: Bearer ${ferry.token}`],
      cpuSeconds: ferryCpu,
      stop: () => Promise.resolve(),
    };
    const bare = await bareNode(join(served, 'source.bin'));
    endpoints.push(bare);
    const nginxOrWhy = await nginx(served, work);
    if (typeof nginxOrWhy !== 'string') endpoints.push(nginxOrWhy);
    const tusRef = await tusReference(join(work, 'tus-ref'));
    endpoints.push(tusRef);
    const floor = await tusFloor(join(work, 'tus-floor'), source.sha256);
    endpoints.push(floor);

    const downloads = [ferryDownloads, bare, ...(typeof nginxOrWhy === 'string' ? [] : [nginxOrWhy])];
    const downloadRows = downloads.map((endpoint) => ({
      tool: endpoint.name,
      direction: 'download' as const,
      how: endpoint.how,
      samples: [] as HttpSample[],
    }));
    const uploadEndpoints = [ferryUploads, tusRef, floor];
    const uploadRows = uploadEndpoints.map((endpoint) => ({
      tool: endpoint.name,
      direction: 'upload' as const,
      how: endpoint.how,
      samples: [] as HttpSample[],
    }));
    const dest = join(work, 'download.bin');
    for (let pair = 0; pair < ctx.options.pairs; pair += 1) {
      const order = roundOrder(
        downloads.map((_, index) => index),
        pair,
      );
      for (const index of order) {
        const sample = await curlDownload(downloads[index]!, dest, size);
        downloadRows[index]!.samples.push(sample);
        log(`http pair ${pair + 1}: curl from ${downloads[index]!.name}: ${formatNumber(sample.mibPerSecond)} MiB/s`);
        // Ferry's bytes checked once (untimed): the download is the file.
        if (pair === 0 && index === 0 && (await sha256File(dest)) !== source.sha256)
          throw new Error('curl from Ferry: the SHA-256 differs');
      }
      const uploadOrder = roundOrder(
        uploadEndpoints.map((_, index) => index),
        pair,
      );
      for (const index of uploadOrder) {
        const sample = await tusUpload(uploadEndpoints[index]!, bytes);
        uploadRows[index]!.samples.push(sample);
        log(`http pair ${pair + 1}: tus-js-client to ${uploadEndpoints[index]!.name}: ${formatNumber(sample.mibPerSecond)} MiB/s`);
      }
      for (const dir of ['tus-ref', 'tus-floor']) {
        await rm(join(work, dir), { recursive: true, force: true });
        await runCommand('mkdir', ['-p', join(work, dir)]);
      }
    }
    rows.push(...downloadRows, ...uploadRows);
    if (typeof nginxOrWhy === 'string') rows.push({ tool: 'nginx', direction: 'download', how: '', samples: [], skipped: nginxOrWhy });
  } finally {
    for (const endpoint of endpoints.reverse()) await endpoint.stop().catch(() => undefined);
    await removeDir(work);
  }
  return report(rows, size, medium);
}

function report(rows: HttpRow[], size: number, medium: string): ScenarioReport {
  const medianOf = (row: HttpRow, pick: (sample: HttpSample) => number): number => median(row.samples.map(pick));
  const ferryOf = (direction: string): HttpRow | undefined => rows.find((row) => row.tool === 'Ferry' && row.direction === direction);
  const table: Table = {
    headers: ['direction', 'server', 'MiB/s', 'seconds', 'CPU s (client + server)', 'CPU s per GiB', 'Ferry ÷ this'],
    numeric: [2, 3, 4, 5],
    rows: rows.map((row) => {
      if (row.skipped) return [row.direction, row.tool, '–', '–', '–', '–', `skipped: ${row.skipped}`];
      const ferry = ferryOf(row.direction)!;
      const ratio = medianOf(ferry, (s) => s.mibPerSecond) / medianOf(row, (s) => s.mibPerSecond);
      return [
        row.direction,
        row.tool,
        formatNumber(medianOf(row, (s) => s.mibPerSecond)),
        formatNumber(medianOf(row, (s) => s.seconds)),
        formatNumber(medianOf(row, (s) => s.cpuSeconds)),
        formatNumber(medianOf(row, (s) => s.cpuSeconds) / (size / 1024 ** 3)),
        row.tool === 'Ferry' ? '–' : `**${ratio.toFixed(2)}×**`,
      ];
    }),
  };
  const uploadRate = (tool: string): number | undefined => {
    const row = rows.find((candidate) => candidate.tool === tool && candidate.direction === 'upload' && candidate.samples.length > 0);
    return row && medianOf(row, (s) => s.mibPerSecond);
  };
  const floorRate = uploadRate(floorName);
  const tusRate = uploadRate(tusReferenceName);
  const floorNote =
    floorRate !== undefined && tusRate !== undefined
      ? [
          `This run: the floor is ${(floorRate / tusRate).toFixed(2)}× @tus/server, Ferry ${((uploadRate('Ferry') ?? 0) / floorRate).toFixed(2)}× the floor.`,
        ]
      : [];
  return {
    id: 'http',
    title: `HTTP side: curl downloads and tus-js-client uploads of one ${formatBytes(size)} file`,
    notes: [
      `Medians of the pairs; each pair runs every server once per direction, the order rotated by one from pair to pair. Files on ${medium}.`,
      'Downloads: `curl -sS -f -o FILE URL` (Ferry with a Bearer token). Uploads: tus-js-client in the bench process, the whole file in one PATCH (its default), to a server in its own process.',
      ...rows.filter((row) => row.how).map((row) => `${row.tool} (${row.direction}): ${row.how}.`),
      'CPU s: curl (or the bench process, for tus-js-client) plus the server process, over the transfer.',
      'Targets (issue 14): Ferry ≥ 1.0× the bare Node server for downloads, ≥ 1.5× @tus/server for uploads. The floor row bounds the second: no server that verifies the whole file can beat it here, so Ferry ≥ 1.5× @tus/server needs the floor itself ≥ 1.5× @tus/server.',
      ...floorNote,
    ],
    tables: [table],
    data: { rows },
  };
}
