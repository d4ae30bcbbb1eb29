/**
 * Preloaded into a client process with `node --import <this file>`: when the process exits
 * (the CLI ends with process.exit), writes its own CPU time and peak RSS, all threads included,
 * as JSON to the file named by FERRY_BENCH_CPU_FILE.
 */
import { writeFileSync } from 'node:fs';

export interface CpuReport {
  userSeconds: number;
  systemSeconds: number;
  maxRssBytes: number;
}

const target = process.env['FERRY_BENCH_CPU_FILE'];

if (target) {
  process.once('exit', () => {
    const usage = process.resourceUsage();
    const report: CpuReport = {
      userSeconds: usage.userCPUTime / 1e6,
      systemSeconds: usage.systemCPUTime / 1e6,
      maxRssBytes: usage.maxRSS * 1024,
    };
    writeFileSync(target, JSON.stringify(report));
  });
}
