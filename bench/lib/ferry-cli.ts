import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { CpuReport } from '../hooks/cpu-report.js';
import { expectSuccess, runCommand } from './children.js';
import { cpuReportHook, ferryBin, nodeArgsFrom } from './paths.js';
import { loginEnvOf } from './server.js';
import type { DownloadResult } from '../../src/client/download.js';
import type { UploadResult } from '../../src/client/upload.js';

export interface CliRun<T> {
  /** The command's one JSON object from stdout. */
  result: T;
  /** Wall time from spawn to exit: includes Node's start-up, as a reference tool's includes its own. */
  seconds: number;
  /** CPU seconds of the client process (all threads), from the preloaded cpu-report hook. */
  cpuSeconds: number;
  maxRssBytes: number;
}

let reportSeq = 0;

/**
 * Runs `node --import <cpu-report hook> bin/ferry.js <args> --json` and returns its JSON result,
 * its wall time and its own CPU time. `scratchDir` holds the hook's report file.
 */
export async function runFerryCli<T>(args: readonly string[], scratchDir: string): Promise<CliRun<T>> {
  reportSeq += 1;
  const reportPath = join(scratchDir, `cpu-report-${process.pid}-${reportSeq}.json`);
  const run = expectSuccess(
    `ferry ${args[0] ?? ''}`,
    // FERRY_BENCH_CLIENT_NODE_ARGS: extra Node options for the client, e.g. to profile it (as for the server).
    await runCommand(
      process.execPath,
      [...nodeArgsFrom('FERRY_BENCH_CLIENT_NODE_ARGS'), '--import', cpuReportHook, ferryBin, ...args, '--json'],
      {
        env: { ...process.env, ...loginEnvOf(args), FERRY_BENCH_CPU_FILE: reportPath },
      },
    ),
  );
  const report = JSON.parse(await readFile(reportPath, 'utf8')) as CpuReport;
  await rm(reportPath, { force: true });
  return {
    result: JSON.parse(run.stdout) as T,
    seconds: run.seconds,
    cpuSeconds: report.userSeconds + report.systemSeconds,
    maxRssBytes: report.maxRssBytes,
  };
}

/** What `ferry upload --json` prints: the client library's result without the file record. */
export type UploadJson = Omit<UploadResult, 'file'>;
/** What `ferry download --json` prints. */
export type DownloadJson = DownloadResult;

/** `extra`: more options for the command, e.g. `--compress off`. */
export async function cliUpload(
  path: string,
  name: string,
  server: string,
  scratchDir: string,
  extra: readonly string[] = [],
): Promise<CliRun<UploadJson>> {
  return runFerryCli<UploadJson>(['upload', path, '--as', name, '--server', server, '--retries', '0', '--force', ...extra], scratchDir);
}

export async function cliDownload(
  name: string,
  out: string,
  server: string,
  scratchDir: string,
  extra: readonly string[] = [],
): Promise<CliRun<DownloadJson>> {
  return runFerryCli<DownloadJson>(['download', name, '--out', out, '--server', server, '--retries', '0', '--force', ...extra], scratchDir);
}
