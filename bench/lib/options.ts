import { parseArgs } from 'node:util';
import { parseSize } from './units.js';

export const scenarioIds = [
  'bulk',
  'refs',
  'http',
  'tree',
  'compress',
  'link',
  'compress-link',
  'concurrency',
  'processes',
  'resume',
  's3',
  'micro',
] as const;
export type ScenarioId = (typeof scenarioIds)[number];
export const referenceNames = ['socat', 'nc', 'rsync', 'rsync-sha1', 'cp', 'scp', 'sftp', 'rsync-ssh'] as const;

export interface BenchOptions {
  quick: boolean;
  scenarios: ReadonlySet<ScenarioId>;
  /** File size for bulk, refs and resume. */
  sizeBytes: number;
  /** File size over the emulated links (`link`, `compress-link`). */
  linkSizeBytes: number;
  /** Rounds over the 100 Mbit/s link (`compress-link`). */
  slowLinkRounds: number;
  /** Concurrency sweep: client counts and file sizes. */
  clients: readonly number[];
  fileSizes: readonly number[];
  /** Also run the target case (32 clients × 32 MiB) in the sweep. */
  targetCase: boolean;
  /** A sweep step repeats rounds until it has at least this many operations, or this many bytes, per direction. */
  minOpsPerStep: number;
  minBytesPerStep: number;
  /** Operations each way a sweep step's fresh server serves, untimed, before it is timed (0: timed cold). */
  warmupOps: number;
  /** Reference tools to compare with, by name. */
  references: readonly string[];
  /** Ferry/reference pairs per reference (A B A B ...). */
  pairs: number;
  /** Repetitions of the bulk and resume runs (medians are reported). */
  runs: number;
  /** Seconds each micro-benchmark sample runs. */
  microSeconds: number;
}

export const usage = `usage: npm run bench -- [options]

  --quick                 a run under a minute: 128 MiB file, refs socat and rsync, clients 1,4,16
                          with 64 KiB and 8 MiB files, one run each, short micro-benchmarks
  --scenario LIST         comma-separated: ${scenarioIds.join(',')} (default: all)
  --size SIZE             file size for bulk, refs, resume and s3 (default 1GiB; quick 128MiB)
  --link-size SIZE        file size over the emulated links, long and lossy or slow (default 1GiB, as
                          issue 16 says; quick 32MiB)
  --slow-link-rounds N    rounds of compress-link, each 1 GiB transfer 20-90 s (default 1)
  --clients LIST          client counts for the concurrency sweep (default 1,4,16,64,256)
  --sizes LIST            file sizes for the sweep (default 64KiB,16MiB; quick 64KiB,8MiB)
  --refs LIST             references to run: socat,nc,rsync,rsync-sha1,cp,scp,sftp,rsync-ssh (default all; quick socat,rsync)
  --warmup N              uploads and downloads a sweep step's fresh server serves untimed before
                          it is timed, as a server that has been running would have (default 4096;
                          quick 256; 0 times a cold server)
  --pairs N               Ferry/reference pairs per reference, median reported (default 3)
  --runs N                repetitions of bulk and resume runs (default 3; quick 1)
  --help                  this text
`;

function positiveInt(name: string, text: string): number {
  if (!/^\d+$/u.test(text) || Number(text) < 1) throw new Error(`--${name}: not a positive whole number: ${text}`);
  return Number(text);
}

function wholeNumber(name: string, text: string): number {
  if (!/^\d+$/u.test(text)) throw new Error(`--${name}: not a whole number: ${text}`);
  return Number(text);
}

function list(text: string): string[] {
  return text
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
}

/** Parses the command line; throws on anything unknown or malformed. `undefined` means --help. */
export function parseOptions(argv: readonly string[]): BenchOptions | undefined {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      quick: { type: 'boolean', default: false },
      scenario: { type: 'string' },
      size: { type: 'string' },
      'link-size': { type: 'string' },
      'slow-link-rounds': { type: 'string' },
      clients: { type: 'string' },
      sizes: { type: 'string' },
      refs: { type: 'string' },
      pairs: { type: 'string' },
      warmup: { type: 'string' },
      runs: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) return undefined;
  const quick = values.quick ?? false;
  const scenarios = new Set<ScenarioId>();
  for (const item of values.scenario === undefined ? scenarioIds : list(values.scenario)) {
    if (!(scenarioIds as readonly string[]).includes(item))
      throw new Error(`--scenario: unknown scenario ${item} (choose from ${scenarioIds.join(', ')})`);
    scenarios.add(item as ScenarioId);
  }
  const clients =
    values.clients === undefined
      ? quick
        ? [1, 4, 16]
        : [1, 4, 16, 64, 256]
      : list(values.clients).map((item) => positiveInt('clients', item));
  const fileSizes =
    values.sizes === undefined ? (quick ? [64 * 1024, 8 * 1024 ** 2] : [64 * 1024, 16 * 1024 ** 2]) : list(values.sizes).map(parseSize);
  const references = values.refs === undefined ? (quick ? ['socat', 'rsync'] : [...referenceNames]) : list(values.refs);
  for (const name of references) {
    if (!(referenceNames as readonly string[]).includes(name))
      throw new Error(`--refs: unknown reference ${name} (choose from ${referenceNames.join(', ')})`);
  }
  return {
    quick,
    references,
    scenarios,
    sizeBytes: values.size === undefined ? (quick ? 128 * 1024 ** 2 : 1024 ** 3) : parseSize(values.size),
    linkSizeBytes: values['link-size'] === undefined ? (quick ? 32 * 1024 ** 2 : 1024 ** 3) : parseSize(values['link-size']),
    slowLinkRounds: values['slow-link-rounds'] === undefined ? 1 : positiveInt('slow-link-rounds', values['slow-link-rounds']),
    clients,
    fileSizes,
    targetCase: !quick && values.clients === undefined && values.sizes === undefined,
    minOpsPerStep: quick ? 24 : 1024,
    minBytesPerStep: quick ? 16 * 1024 ** 2 : 256 * 1024 ** 2,
    warmupOps: values.warmup === undefined ? (quick ? 256 : 4096) : wholeNumber('warmup', values.warmup),
    pairs: values.pairs === undefined ? 3 : positiveInt('pairs', values.pairs),
    runs: values.runs === undefined ? (quick ? 1 : 3) : positiveInt('runs', values.runs),
    microSeconds: quick ? 0.1 : 1,
  };
}
