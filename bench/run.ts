/**
 * `npm run bench [-- options]`: Ferry's benchmark suite. Markdown on stdout, progress on
 * stderr, a JSON file and an SVG chart per run under bench/results/. See bench/README.md.
 */
import { execFileSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import { killTracked } from './lib/children.js';
import { BenchContext, type Machine, log } from './lib/context.js';
import { removeTempDirsSync } from './lib/files.js';
import { boxCpuMeter } from './lib/proc.js';
import { type BenchOptions, type ScenarioId, parseOptions, usage } from './lib/options.js';
import { repoRoot, resultsDir } from './lib/paths.js';
import { type ScenarioReport, markdownTable, scenarioMarkdown, writeResultFile } from './lib/report.js';
import { type ChartSeries, concurrencyChart } from './lib/svg.js';
import { type Measured, checkTargets, targetsTable } from './lib/targets.js';
import { formatNumber, formatBytes } from './lib/units.js';
import { runBulk } from './scenarios/bulk.js';
import { type SweepStep, runConcurrency } from './scenarios/concurrency.js';
import { runHttp } from './scenarios/http.js';
import { runTree } from './scenarios/tree.js';
import { runCompress, runCompressLink } from './scenarios/compress.js';
import { runMicro } from './scenarios/micro.js';
import { type ProcessesResult, runProcesses } from './scenarios/processes.js';
import { type RefResult, runRefs } from './scenarios/refs.js';
import { type ResumeRun, runResume } from './scenarios/resume.js';
import { runS3 } from './scenarios/s3.js';
import { runLink } from './scenarios/link.js';

const scenarios: Record<ScenarioId, (ctx: BenchContext) => Promise<ScenarioReport>> = {
  bulk: runBulk,
  refs: runRefs,
  http: runHttp,
  tree: runTree,
  compress: runCompress,
  link: runLink,
  'compress-link': runCompressLink,
  concurrency: runConcurrency,
  processes: runProcesses,
  resume: runResume,
  s3: runS3,
  micro: runMicro,
};

/** The commit the engine was built from, and whether src/ or workers/ differ from it (read-only git). */
function engineRevision(): string {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd: repoRoot,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src', 'workers'], {
      cwd: repoRoot,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    return dirty ? `${commit} + uncommitted changes in src/ or workers/` : commit;
  } catch {
    return 'unknown (not a git checkout)';
  }
}

interface Quiet {
  busyPercent: number;
  loadAverage: number[];
}

/** How busy the machine is before the run starts (1 s sample): other work skews wall-clock results. */
async function quietCheck(cores: number): Promise<Quiet> {
  const stop = boxCpuMeter(cores);
  await sleep(1000);
  return { busyPercent: stop().busyPercent, loadAverage: loadavg() };
}

function header(machine: Machine, options: BenchOptions, revision: string, quiet: Quiet): string {
  return [
    `# Ferry benchmark, ${machine.date}`,
    '',
    `- Node ${machine.node}, ${machine.cores} × ${machine.cpuModel}, ${formatBytes(machine.memoryBytes)} RAM, Linux ${machine.kernel}`,
    `- Machine before the run: ${formatNumber(quiet.busyPercent)}% of a core busy (1 s sample), load average ${quiet.loadAverage.map((l) => l.toFixed(2)).join(' ')}`,
    `- Ferry at ${revision}; scenarios: ${[...options.scenarios].join(', ')}${options.quick ? ' (--quick)' : ''}`,
    `- File size for bulk, refs and resume: ${formatBytes(options.sizeBytes)}; sweep: ${options.fileSizes.map(formatBytes).join(' and ')} files × ${options.clients.join(', ')} clients`,
    '- Everything runs on this one machine over loopback (127.0.0.1), and the files sit in the page cache (it cannot be dropped here): client and server share the cores, so the transfers are CPU-bound. Buffer sizes, copies and syscalls decide them, not the network or, mostly, the disk.',
    '',
  ].join('\n');
}

function chart(steps: readonly SweepStep[], runId: string): string {
  const sweep = steps.filter((s) => !s.target);
  const sizes = [...new Set(sweep.map((s) => s.fileBytes))];
  const series = (pick: (s: SweepStep, direction: 'upload' | 'download') => number): ChartSeries[] =>
    sizes.flatMap((size, colour) =>
      (['upload', 'download'] as const).map((direction) => ({
        label: `${formatBytes(size)} ${direction}`,
        colour,
        dashed: direction === 'download',
        points: sweep.filter((s) => s.fileBytes === size).map((s) => ({ clients: s.clients, value: pick(s, direction) })),
      })),
    );
  return concurrencyChart(
    `Ferry concurrency sweep, run ${runId}`,
    [
      { title: 'aggregate throughput', unit: 'MiB/s', series: series((s, d) => s[d].mibPerSecond) },
      { title: 'p99 latency per operation', unit: 'ms', series: series((s, d) => s[d].p99Ms) },
    ],
    sweep.map((s) => s.clients),
  );
}

async function main(): Promise<number> {
  let options: BenchOptions | undefined;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`bench: ${(error as Error).message}\n\n${usage}`);
    return 2;
  }
  if (!options) {
    process.stdout.write(usage);
    return 0;
  }
  const started = performance.now();
  const ctx = await BenchContext.create(options);
  const runId = ctx.machine.date.replaceAll(':', '-').replace(/\.\d+Z$/u, 'Z');
  const revision = engineRevision();
  const quiet = await quietCheck(ctx.machine.cores);
  if (quiet.busyPercent > 20)
    log(`warning: the machine is already ${formatNumber(quiet.busyPercent)}% of a core busy; wall-clock numbers will be low and noisy`);
  process.stdout.write(header(ctx.machine, options, revision, quiet) + '\n');
  const reports: ScenarioReport[] = [];
  const measured: Measured = { sizeBytes: options.sizeBytes };
  try {
    for (const id of Object.keys(scenarios) as ScenarioId[]) {
      if (!options.scenarios.has(id)) continue;
      log(`--- ${id}`);
      const scenarioStarted = performance.now();
      const report = await scenarios[id](ctx);
      log(`--- ${id} done in ${((performance.now() - scenarioStarted) / 1000).toFixed(1)} s`);
      reports.push(report);
      process.stdout.write(scenarioMarkdown(report) + '\n');
      if (id === 'bulk') {
        const fixed = (report.data as { cliFixedCost?: Measured['cliFixedCost'] }).cliFixedCost;
        if (fixed) measured.cliFixedCost = fixed;
      }
      if (id === 'refs') measured.refs = (report.data as { results: RefResult[] }).results;
      if (id === 'concurrency') measured.steps = (report.data as { steps: SweepStep[] }).steps;
      if (id === 'processes') measured.processes = report.data as ProcessesResult;
      if (id === 'resume') measured.resume = (report.data as { runs: ResumeRun[] }).runs;
    }
  } finally {
    await ctx.dispose();
  }
  const checks = checkTargets(measured);
  process.stdout.write(`## Targets (issue 15)\n\n${markdownTable(targetsTable(checks))}\n\n`);
  const seconds = (performance.now() - started) / 1000;
  const outputs: string[] = [];
  const json = {
    runId,
    machine: ctx.machine,
    revision,
    quiet,
    options: { ...options, scenarios: [...options.scenarios] },
    seconds,
    reports,
    targets: checks,
  };
  outputs.push(await writeResultFile(resultsDir, `${runId}.json`, JSON.stringify(json, null, 2) + '\n'));
  if (measured.steps) outputs.push(await writeResultFile(resultsDir, `${runId}-concurrency.svg`, chart(measured.steps, runId)));
  process.stdout.write(
    `Run took ${seconds.toFixed(1)} s. Results: ${outputs.map((path) => path.replace(repoRoot + '/', '')).join(', ')}\n`,
  );
  log(`peak RSS of the bench process itself: ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB (in-process clients)`);
  return 0;
}

function abort(signal: NodeJS.Signals): void {
  process.stderr.write(`bench: ${signal}: stopping the processes it started and removing its temporary files\n`);
  killTracked();
  removeTempDirsSync();
  process.exit(130);
}

process.once('SIGINT', abort).once('SIGTERM', abort);

try {
  process.exitCode = await main();
} catch (error) {
  process.stderr.write(`bench: failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  killTracked();
  removeTempDirsSync();
  process.exitCode = 1;
}
