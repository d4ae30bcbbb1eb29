/**
 * Summarises V8 CPU profiles (`.cpuprofile`, from `--cpu-prof`): per file (one per thread), the
 * busy and idle time and the functions with the most self time. Usage:
 *
 *   FERRY_BENCH_SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof/server" \
 *   FERRY_BENCH_CLIENT_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof/client" \
 *     npm run bench -- --scenario bulk --runs 1
 *   node dist/bench/profile-summary.js [--top N] /tmp/prof/server/*.cpuprofile
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  startTime: number;
  endTime: number;
}

/** A frame's name as `function file:line`, with the file shortened to its last two segments. */
function frameName({ functionName, url, lineNumber }: ProfileNode['callFrame']): string {
  const file = url.split('/').slice(-2).join('/');
  return `${functionName || '(anonymous)'}${file ? ` ${file}:${lineNumber + 1}` : ''}`;
}

export function summarise(profile: CpuProfile, top: number): { busyMs: number; idleMs: number; selfMs: [string, number][] } {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const msPerSample = (profile.endTime - profile.startTime) / 1000 / Math.max(1, profile.samples.length);
  const self = new Map<string, number>();
  let idle = 0;
  let busy = 0;
  for (const id of profile.samples) {
    const frame = nodes.get(id)!.callFrame;
    // Piscina's idle workers wait in Atomics.wait, which the profiler counts as running JavaScript.
    if (frame.functionName === '(idle)' || frame.functionName === 'atomicsWaitLoop') {
      idle += 1;
      continue;
    }
    busy += 1;
    const name = frameName(frame);
    self.set(name, (self.get(name) ?? 0) + 1);
  }
  const selfMs = [...self]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, samples]): [string, number] => [name, samples * msPerSample]);
  return { busyMs: busy * msPerSample, idleMs: idle * msPerSample, selfMs };
}

function main(args: string[]): void {
  let top = 12;
  const files: string[] = [];
  for (let i = 0; i < args.length; i += 1) {
    if (args[i] === '--top') top = Number(args[++i]);
    else files.push(args[i]!);
  }
  if (files.length === 0 || !Number.isInteger(top) || top < 1) {
    process.stderr.write('usage: node dist/bench/profile-summary.js [--top N] FILE.cpuprofile...\n');
    process.exitCode = 2;
    return;
  }
  for (const file of files) {
    const { busyMs, idleMs, selfMs } = summarise(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, top);
    process.stdout.write(
      `\n### ${basename(file)}: busy ${busyMs.toFixed(0)} ms, idle ${idleMs.toFixed(0)} ms\n\n| self ms | % of busy | function |\n|--:|--:|---|\n`,
    );
    for (const [name, ms] of selfMs)
      process.stdout.write(`| ${ms.toFixed(0)} | ${((100 * ms) / Math.max(1, busyMs)).toFixed(1)} | \`${name}\` |\n`);
  }
}

main(process.argv.slice(2));
