import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { exitOf, expectSuccess, runCommand, spawnTracked, stopChild } from './children.js';
import { which } from './peers.js';
import { repoRoot } from './paths.js';

/** The network namespace the far end (server, daemon) runs in; its address, and ours on the link. */
const netns = 'ferry-bench-link';
const farHost = '10.99.0.2';
const nearAddress = '10.99.0.1/30';
const farAddress = `${farHost}/30`;

export interface LinkShape {
  /** Each way: the round trip is twice this. */
  delayMs: number;
  /** The share of packets dropped, each way (0.001: 0.1%). */
  loss: number;
  mtu: number;
  /** The bottleneck's rate each way, in megabits per second (absent: none), behind a buffer of 25 ms of it. */
  rateMbit?: number;
}

/** An emulated link (long, lossy, slow) to another network namespace; what runs there is reached at `host`. */
export interface LossyLink {
  readonly shape: LinkShape;
  /** Where to run the far end: `{ host, netns }` for FerryServer.start and startRsyncDaemon. */
  readonly far: { host: string; netns: string };
  close(): Promise<void>;
}

/** Why a lossy link cannot be made here, or undefined if it can. */
export function lossyLinkMissing(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces and TUN devices)';
  if (!existsSync('/dev/net/tun')) return 'no /dev/net/tun';
  if (!which('ip')) return 'no ip (Debian: iproute2)';
  if (!which('cc')) return 'no C compiler (cc) to build bench/lossy-link.c';
  return undefined;
}

async function ip(...args: string[]): Promise<void> {
  expectSuccess(`ip ${args.join(' ')}`, await runCommand('ip', args));
}

/**
 * Makes a network namespace and joins it to this one by a link that delays every packet
 * `shape.delayMs` each way, drops `shape.loss` of them and, with `shape.rateMbit`, sends them no
 * faster than that (bench/lossy-link.c, built here with cc: the netem qdisc's job, done in user
 * space, as this kernel has no sch_netem). Removed by `close`.
 */
export async function startLossyLink(shape: LinkShape): Promise<LossyLink> {
  const buildDir = mkdtempSync(join(tmpdir(), 'ferry-bench-link-'));
  const binary = join(buildDir, 'lossy-link');
  try {
    expectSuccess('cc bench/lossy-link.c', await runCommand('cc', ['-O2', '-o', binary, join(repoRoot, 'bench', 'lossy-link.c')]));
    // Left over from a run that was killed: start clean.
    await runCommand('ip', ['netns', 'del', netns]);
    await ip('netns', 'add', netns);
  } catch (error) {
    rmSync(buildDir, { recursive: true, force: true });
    throw error;
  }
  const bridge = spawnTracked(binary, [netns, String(shape.delayMs), String(shape.loss), String(shape.mtu), String(shape.rateMbit ?? 0)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  bridge.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const close = async (): Promise<void> => {
    bridge.stdin!.end();
    await stopChild(bridge, 'SIGTERM', 2000);
    await runCommand('ip', ['netns', 'del', netns]);
    rmSync(buildDir, { recursive: true, force: true });
  };
  try {
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: bridge.stdout! }).on('line', (line) => {
        if (line === 'ready') resolve();
      });
      exitOf(bridge).then(() => reject(new Error(`bench/lossy-link.c exited before it was ready: ${stderr.trim()}`)), reject);
    });
    const mtu = String(shape.mtu);
    await ip('addr', 'add', nearAddress, 'dev', 'fbl0');
    await ip('link', 'set', 'fbl0', 'mtu', mtu, 'up');
    await ip('-n', netns, 'addr', 'add', farAddress, 'dev', 'fbl1');
    await ip('-n', netns, 'link', 'set', 'fbl1', 'mtu', mtu, 'up');
    await ip('-n', netns, 'link', 'set', 'lo', 'up');
  } catch (error) {
    await close();
    throw error;
  }
  return { shape, far: { host: farHost, netns }, close };
}
