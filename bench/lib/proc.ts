import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * What the kernel knows about a process or the whole box, read from /proc (Linux only). CPU
 * seconds and peak RSS of a child are read here, just before it is stopped: after it exits
 * the numbers are gone.
 */

let ticksPerSecond: number | undefined;

/** USER_HZ, the unit of /proc/PID/stat times (100 on every Linux seen so far). */
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** utime, stime, cutime, cstime of /proc/PID/stat (fields 14-17), in seconds. */
function cpuTimes(pid: number | 'self'): { own: number; children: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may itself hold spaces:
  // field 14 of the full line is index 11 here.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const [utime, stime, cutime, cstime] = [11, 12, 13, 14].map((index) => Number(fields[index]));
  return { own: (utime! + stime!) / clockTicks(), children: (cutime! + cstime!) / clockTicks() };
}

/** User + system CPU seconds the process (all its threads) has used so far. */
export function processCpuSeconds(pid: number): number {
  return cpuTimes(pid).own;
}

/** CPU seconds of the process plus its children that have exited and been reaped (an rsync daemon's forks). */
export function processTreeCpuSeconds(pid: number): number {
  const times = cpuTimes(pid);
  return times.own + times.children;
}

/**
 * CPU seconds of this process's children that have exited and been reaped so far. The delta
 * over a command's run is that command's CPU time, whatever else runs on the machine.
 */
export function reapedChildrenCpuSeconds(): number {
  return cpuTimes('self').children;
}

/**
 * Resets this process's peak resident set size (VmHWM) to what it holds now (Linux: `5` in
 * /proc/self/clear_refs), so a later reading is the peak of what ran since. False where it cannot.
 */
export function resetOwnPeakRss(): boolean {
  // Garbage first: buffers of what ran before (shared memory is freed only by a collection) must
  // not count as this phase's.
  collectGarbage();
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false; // not Linux, or not allowed: the peak is the process's whole life's
  }
}

/** Runs a full garbage collection (through V8's `gc`, exposed for this). */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/** Peak resident set size (VmHWM) so far, in bytes. */
export function processPeakRssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmHWM:\s+(\d+)\s+kB$/mu.exec(status);
  return match ? Number(match[1]) * 1024 : Number.NaN;
}

interface CpuTicks {
  busy: number;
  iowait: number;
  total: number;
}

function systemCpuTicks(): CpuTicks {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  // cpu  user nice system idle iowait irq softirq steal guest guest_nice
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = line
    .trim()
    .split(/\s+/u)
    .slice(1)
    .map(Number);
  const busy = user + nice + system + irq + softirq + steal;
  return { busy, iowait, total: busy + idle + iowait };
}

export interface BoxCpu {
  /** Busy CPU over the interval, in percent of one core (200 = both cores of a 2-core box). */
  busyPercent: number;
  /** Time spent waiting for the disk, same unit: near 0 means the run was not disk-bound. */
  iowaitPercent: number;
}

/** Starts measuring the whole machine's CPU use; call the result to stop. */
export function boxCpuMeter(cores: number): () => BoxCpu {
  const start = systemCpuTicks();
  return () => {
    const end = systemCpuTicks();
    const total = end.total - start.total;
    if (total <= 0) return { busyPercent: 0, iowaitPercent: 0 };
    return {
      busyPercent: ((end.busy - start.busy) / total) * 100 * cores,
      iowaitPercent: ((end.iowait - start.iowait) / total) * 100 * cores,
    };
  };
}

/** PIDs of the process's live children (its main thread's; /proc/PID/task/PID/children). */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/u).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Waits (polling, bounded) until the process has no children left: a daemon's forks have exited and been reaped. */
export async function childrenGone(pid: number, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (childPids(pid).length > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 2));
}
