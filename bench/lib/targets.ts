import type { SweepStep } from '../scenarios/concurrency.js';
import type { RefResult } from '../scenarios/refs.js';
import type { ResumeRun } from '../scenarios/resume.js';
import type { ProcessesResult } from '../scenarios/processes.js';
import { median } from './stats.js';
import type { Table } from './report.js';
import { MiB, formatNumber, formatBytes } from './units.js';

/** What the scenarios measured that the targets refer to; absent when not run. */
export interface Measured {
  sizeBytes: number;
  processes?: ProcessesResult;
  /** `ferry info`'s wall and CPU time (from bulk). */
  cliFixedCost?: { seconds: number; cpuSeconds: number; versionSeconds?: number; nodeSeconds?: number };
  refs?: RefResult[];
  steps?: SweepStep[];
  resume?: ResumeRun[];
}

export interface TargetCheck {
  target: string;
  measured: string;
  /** undefined: not measured in this run. */
  met: boolean | undefined;
}

const rssLimitBytes = 256 * MiB;

function notMeasured(target: string, why: string): TargetCheck {
  return { target, measured: `not measured (${why})`, met: undefined };
}

function ratioTarget(
  refs: RefResult[] | undefined,
  reference: string,
  direction: 'upload' | 'download',
  minimum: number,
  label: string,
): TargetCheck {
  const target = `bulk ${direction} ≥ ${minimum}× ${label}`;
  if (!refs) return notMeasured(target, 'refs not run');
  const result = refs.find((r) => r.name === reference);
  if (!result || result.skipped) return notMeasured(target, result?.skipped ?? `${reference} not run`);
  const summary = result.summary.find((s) => s.direction === direction)!;
  return {
    target,
    measured: `${summary.medianRatio.toFixed(2)}× (${formatNumber(summary.ferryMiBps)} vs ${formatNumber(summary.referenceMiBps)} MiB/s)`,
    met: summary.medianRatio >= minimum,
  };
}

/** Median CPU seconds per GiB (client + server) of Ferry's transfers beside `reference`, one direction. */
function ferryCpuPerGiB(refs: RefResult[] | undefined, reference: string, direction: 'upload' | 'download'): number | undefined {
  const result = refs?.find((r) => r.name === reference && !r.skipped);
  const pairs = result?.pairs.filter((pair) => pair.direction === direction) ?? [];
  if (pairs.length === 0) return undefined;
  return median(pairs.map((pair) => (pair.ferry.clientCpuSeconds + pair.ferry.serverCpuSeconds) / (pair.ferry.bytes / 1024 ** 3)));
}

function cpuTarget(refs: RefResult[] | undefined, direction: 'upload' | 'download', limit: number): TargetCheck {
  const target = `bulk ${direction}: CPU s per GiB, client + server ≤ ${limit}`;
  const perGiB = ferryCpuPerGiB(refs, 'rsync', direction);
  if (perGiB === undefined) return notMeasured(target, refs ? 'rsync not run' : 'refs not run');
  return { target, measured: `${perGiB.toFixed(2)} (beside rsync)`, met: perGiB <= limit };
}

/** The speed issue's targets (issue 15), in its order, next to what this run measured. */
export function checkTargets(m: Measured): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const sizeNote = m.sizeBytes === 1024 ** 3 ? '' : ` (this run: ${formatBytes(m.sizeBytes)}, the target is for 1 GiB)`;
  checks.push(ratioTarget(m.refs, 'rsync', 'upload', 0.8, 'rsync daemon' + sizeNote));
  checks.push(ratioTarget(m.refs, 'rsync-sha1', 'upload', 1.0, 'rsync --checksum-choice=sha1' + sizeNote));
  checks.push(cpuTarget(m.refs, 'upload', 3.3));
  checks.push(ratioTarget(m.refs, 'rsync', 'download', 1.0, 'rsync daemon' + sizeNote));
  checks.push(cpuTarget(m.refs, 'download', 2.3));
  checks.push(ratioTarget(m.refs, 'sftp', 'upload', 1.5, 'sftp, Ferry over TLS' + sizeNote));
  checks.push(ratioTarget(m.refs, 'sftp', 'download', 1.5, 'sftp, Ferry over TLS' + sizeNote));

  const small64 = m.steps?.find((s) => s.clients === 64 && s.fileBytes === 64 * 1024 && !s.target);
  for (const [direction, minimum] of [
    ['upload', 2000],
    ['download', 3000],
  ] as const) {
    const target = `≥ ${formatNumber(minimum)} verified 64 KiB ${direction}s/s across 64 clients`;
    if (!small64) {
      checks.push(notMeasured(target, 'no 64 KiB × 64 clients step'));
      continue;
    }
    const floor = direction === 'upload' ? small64.storeFloorPerSecond : undefined;
    checks.push({
      target,
      measured:
        `${formatNumber(small64[direction].operationsPerSecond)} ${direction}s/s` +
        (floor === undefined ? '' : ` (disk floor: ${formatNumber(floor)} files/s)`),
      met: small64[direction].operationsPerSecond >= minimum,
    });
  }

  const processesTarget = '32 `ferry upload` processes × 32 MiB: aggregate ≥ 32 rsync processes';
  const processes = m.processes;
  if (!processes) checks.push(notMeasured(processesTarget, 'processes not run'));
  else if (processes.ratios.length === 0) checks.push(notMeasured(processesTarget, processes.skipped ?? 'rsync not run'));
  else {
    const ratio = median(processes.ratios);
    const size =
      processes.processes === 32 && processes.fileBytes === 32 * MiB
        ? ''
        : ` (this run: ${processes.processes} × ${formatBytes(processes.fileBytes)})`;
    checks.push({ target: processesTarget + size, measured: `${ratio.toFixed(2)}×`, met: ratio >= 1 });
  }
  const cliTarget = 'CLI fixed cost (`ferry info` against a running server, and `ferry --version`, wall) ≤ 80 ms';
  const fixed = m.cliFixedCost;
  if (!fixed) checks.push(notMeasured(cliTarget, 'bulk not run'));
  else {
    const beside = [
      fixed.versionSeconds === undefined ? undefined : `\`--version\` ${formatNumber(fixed.versionSeconds * 1000)} ms`,
      fixed.nodeSeconds === undefined ? undefined : `\`node -e 0\` ${formatNumber(fixed.nodeSeconds * 1000)} ms`,
    ].filter((part) => part !== undefined);
    checks.push({
      target: cliTarget,
      measured: `${formatNumber(fixed.seconds * 1000)} ms` + (beside.length > 0 ? ` (${beside.join('; ')})` : ''),
      met: fixed.seconds <= 0.08 && (fixed.versionSeconds ?? 0) <= 0.08,
    });
  }

  const at256 = m.steps?.filter((s) => s.clients === 256) ?? [];
  if (at256.length === 0) {
    checks.push(notMeasured('256 clients: server peak RSS ≤ 256 MiB, any file size', 'no 256-client step'));
    checks.push(notMeasured('256 concurrent uploads in one client process: ≤ 512 MiB RSS', 'no 256-client step'));
  } else {
    const peak = Math.max(...at256.map((s) => s.serverPeakRssBytes));
    checks.push({
      target: '256 clients: server peak RSS ≤ 256 MiB, any file size',
      measured: at256.map((s) => `${formatNumber(s.serverPeakRssBytes / MiB)} MiB at ${formatBytes(s.fileBytes)}`).join(', '),
      met: peak <= rssLimitBytes,
    });
    // Judged on the uploads alone in a process of their own where the step measured them; else the bench process's own peak.
    const clientPeaks = at256
      .map((s) => ({
        file: s.fileBytes,
        bytes: s.uploadMemory?.peakRssBytes ?? s.clientUploadPeakRssBytes,
        alone: s.uploadMemory !== undefined,
      }))
      .filter((peak) => !Number.isNaN(peak.bytes));
    checks.push(
      clientPeaks.length === 0
        ? notMeasured('256 concurrent uploads in one client process: ≤ 512 MiB RSS', 'the peak could not be read apart')
        : {
            target: '256 concurrent uploads in one client process: ≤ 512 MiB RSS',
            measured: clientPeaks
              .map(
                (peak) =>
                  `${formatNumber(peak.bytes / MiB)} MiB at ${formatBytes(peak.file)}${peak.alone ? '' : ' (in the bench process)'}`,
              )
              .join(', '),
            met: Math.max(...clientPeaks.map((peak) => peak.bytes)) <= 512 * MiB,
          },
    );
  }

  if (m.steps) {
    const errors = m.steps.reduce((total, s) => total + s.errors, 0);
    checks.push({ target: 'concurrency sweep: 0 errors', measured: `${errors} errors`, met: errors === 0 });
  }

  const resumeTarget = `resume after a cut at 90%: ≤ 15% of a fresh upload's time${sizeNote}`;
  if (!m.resume || m.resume.length === 0) checks.push(notMeasured(resumeTarget, 'resume not run'));
  else {
    const percent = median(m.resume.map((r) => r.timePercent));
    const newClient = median(m.resume.map((r) => r.newClientTimePercent));
    checks.push({
      target: resumeTarget,
      measured: `${formatNumber(percent)}% (the client's retry; a new client: ${formatNumber(newClient)}%)`,
      met: percent <= 15,
    });
  }
  return checks;
}

export function targetsTable(checks: readonly TargetCheck[]): Table {
  return {
    headers: ['target', 'measured', 'met?'],
    rows: checks.map((c) => [c.target, c.measured, c.met === undefined ? '–' : c.met ? 'yes' : '**no**']),
  };
}
