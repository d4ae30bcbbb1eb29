import type { SweepStep } from '../scenarios/concurrency.js';
import type { RefResult } from '../scenarios/refs.js';
import type { ResumeRun } from '../scenarios/resume.js';
import { median } from './stats.js';
import type { Table } from './report.js';
import { MiB, formatNumber, formatBytes } from './units.js';

/** What the scenarios measured that the targets refer to; absent when not run. */
export interface Measured {
  sizeBytes: number;
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

export function checkTargets(m: Measured): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const sizeNote = m.sizeBytes === 1024 ** 3 ? '' : ` (this run: ${formatBytes(m.sizeBytes)}, the target is for 1 GiB)`;
  checks.push(ratioTarget(m.refs, 'rsync', 'upload', 1.2, 'rsync daemon' + sizeNote));
  checks.push(ratioTarget(m.refs, 'rsync', 'download', 1.2, 'rsync daemon' + sizeNote));
  checks.push(ratioTarget(m.refs, 'socat', 'upload', 0.5, 'socat to file' + sizeNote));
  checks.push(ratioTarget(m.refs, 'socat', 'download', 0.5, 'socat to file' + sizeNote));
  checks.push(ratioTarget(m.refs, 'sftp', 'upload', 1.5, 'sftp, Ferry over TLS' + sizeNote));
  checks.push(ratioTarget(m.refs, 'sftp', 'download', 1.5, 'sftp, Ferry over TLS' + sizeNote));

  const targetCase = m.steps?.find((s) => s.target);
  const caseLabel = '32 clients × 32 MiB upload';
  if (!targetCase) {
    checks.push(
      notMeasured(
        `${caseLabel}: aggregate ≥ rsync daemon upload`,
        m.steps ? 'target case runs only in a full default sweep' : 'concurrency not run',
      ),
    );
    checks.push(
      notMeasured(
        `${caseLabel}: server peak RSS ≤ 256 MiB`,
        m.steps ? 'target case runs only in a full default sweep' : 'concurrency not run',
      ),
    );
  } else {
    const rsync = m.refs?.find((r) => r.name === 'rsync' && !r.skipped)?.summary.find((s) => s.direction === 'upload');
    checks.push(
      rsync
        ? {
            target: `${caseLabel}: aggregate ≥ rsync daemon upload (same run)`,
            measured: `${formatNumber(targetCase.upload.mibPerSecond)} vs ${formatNumber(rsync.referenceMiBps)} MiB/s`,
            met: targetCase.upload.mibPerSecond >= rsync.referenceMiBps,
          }
        : notMeasured(
            `${caseLabel}: aggregate ≥ rsync daemon upload`,
            `rsync not measured; Ferry did ${formatNumber(targetCase.upload.mibPerSecond)} MiB/s`,
          ),
    );
    checks.push({
      target: `${caseLabel}: server peak RSS ≤ 256 MiB`,
      measured: `${formatNumber(targetCase.serverPeakRssBytes / MiB)} MiB`,
      met: targetCase.serverPeakRssBytes <= rssLimitBytes,
    });
  }

  const at256 = m.steps?.filter((s) => s.clients === 256) ?? [];
  if (at256.length === 0) {
    checks.push(notMeasured('256 clients: 0 errors', 'no 256-client step'));
    checks.push(notMeasured('256 clients: server peak RSS ≤ 256 MiB', 'no 256-client step'));
  } else {
    const errors = at256.reduce((total, s) => total + s.errors, 0);
    const peak = Math.max(...at256.map((s) => s.serverPeakRssBytes));
    checks.push({ target: '256 clients: 0 errors', measured: `${errors} errors`, met: errors === 0 });
    checks.push({
      target: '256 clients: server peak RSS ≤ 256 MiB, any file size',
      measured: at256.map((s) => `${formatNumber(s.serverPeakRssBytes / MiB)} MiB at ${formatBytes(s.fileBytes)}`).join(', '),
      met: peak <= rssLimitBytes,
    });
  }

  const small64 = m.steps?.find((s) => s.clients === 64 && s.fileBytes === 64 * 1024 && !s.target);
  checks.push(
    small64
      ? {
          target: '≥ 2,000 verified 64 KiB uploads/s across 64 clients',
          measured:
            `${formatNumber(small64.upload.operationsPerSecond)} uploads/s` +
            (small64.storeFloorPerSecond === undefined ? '' : ` (disk floor: ${formatNumber(small64.storeFloorPerSecond)} files/s)`),
          met: small64.upload.operationsPerSecond >= 2000,
        }
      : notMeasured('≥ 2,000 verified 64 KiB uploads/s across 64 clients', 'no 64 KiB × 64 clients step'),
  );

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
