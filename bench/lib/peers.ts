import { accessSync, constants } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { type StartedCommand, expectSuccess, runCommand, startCommand, stopChild } from './children.js';
import { freePort, waitForListener } from './net.js';
import { childrenGone, processTreeCpuSeconds } from './proc.js';

/**
 * The reference tools Ferry is compared with, each run the way its users would: a listener (or
 * daemon) on 127.0.0.1 whose "server side" folder is on the same disk as Ferry's data dir.
 */
export interface Reference {
  name: string;
  /** How it is run, for the report. */
  how: string;
  /** Encrypted and authenticated (ssh): compared with Ferry over TLS; the others with Ferry in clear text. */
  secure?: boolean;
  /** Why it cannot run here (binary missing), or undefined. */
  missing(): string | undefined;
  /** Starts what must run for the whole session (the rsync daemon); `remoteDir` is the server side. */
  open(workDir: string, remoteDir: string): Promise<ReferenceSession>;
}

export interface ReferenceSession {
  /** Copies local `source` to `remoteName` on the server side; resolves with wall seconds. */
  up(source: string, remoteName: string): Promise<number>;
  /** Copies `remoteName` from the server side to local `dest`; resolves with wall seconds. */
  down(remoteName: string, dest: string): Promise<number>;
  /** CPU seconds used so far by processes of the session that the bench did not start itself (the rsync daemon's forks). */
  serviceCpuSeconds?(): number;
  close(): Promise<void>;
}

export function which(binary: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, binary);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

function missingBinary(binary: string, debianPackage: string): () => string | undefined {
  return () => (which(binary) ? undefined : `${binary} not found on PATH (bash bench/setup-peers.sh installs Debian's ${debianPackage})`);
}

function isRunning(started: StartedCommand): () => boolean {
  return () => started.child.exitCode === null && started.child.signalCode === null;
}

interface OneShotPlan {
  /** Receiver arguments for a port; it writes to `dest` itself or through stdout. */
  receiver(port: number, dest: string): { args: string[]; stdoutFile?: string };
  sender(port: number, source: string): { args: string[]; stdinFile?: string };
}

/**
 * One transfer through a listener that takes one connection (socat, nc): start the receiver,
 * wait until the kernel lists it as listening, then time from the sender's spawn until both
 * have exited (the receiver exits once the file is written and closed).
 */
async function oneShot(tool: string, plan: OneShotPlan, source: string, dest: string): Promise<number> {
  await rm(dest, { force: true });
  const port = await freePort();
  const spec = plan.receiver(port, dest);
  const receiver = startCommand(tool, spec.args, spec.stdoutFile === undefined ? {} : { stdoutFile: spec.stdoutFile });
  try {
    await waitForListener(port, `${tool} receiver`, isRunning(receiver));
  } catch (error) {
    await stopChild(receiver.child, 'SIGTERM');
    throw error;
  }
  const started = performance.now();
  const send = plan.sender(port, source);
  const sent = await runCommand(tool, send.args, send.stdinFile === undefined ? {} : { stdinFile: send.stdinFile });
  const received = await receiver.finished;
  const seconds = (performance.now() - started) / 1000;
  expectSuccess(`${tool} sender`, sent);
  expectSuccess(`${tool} receiver`, received);
  return seconds;
}

function oneShotSession(tool: string, plan: OneShotPlan, remoteDir: string): ReferenceSession {
  return {
    up: async (source, remoteName) => oneShot(tool, plan, source, join(remoteDir, remoteName)),
    down: async (remoteName, dest) => oneShot(tool, plan, join(remoteDir, remoteName), dest),
    close: async () => {},
  };
}

const socatBufferBytes = 1024 * 1024;

export const socat: Reference = {
  name: 'socat',
  how: `socat -u -b${socatBufferBytes} TCP-LISTEN → OPEN:file (1 MiB buffers)`,
  missing: missingBinary('socat', 'socat'),
  open: (_workDir, remoteDir) =>
    oneShotPeer(
      'socat',
      {
        receiver: (port, dest) => ({
          args: ['-u', `-b${socatBufferBytes}`, `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr`, `OPEN:${dest},creat,trunc`],
        }),
        sender: (port, source) => ({ args: ['-u', `-b${socatBufferBytes}`, `OPEN:${source}`, `TCP:127.0.0.1:${port}`] }),
      },
      remoteDir,
    ),
};

export const nc: Reference = {
  name: 'nc',
  how: 'nc -l 127.0.0.1 P > file; nc -N 127.0.0.1 P < file (netcat-openbsd)',
  missing: missingBinary('nc', 'netcat-openbsd'),
  open: (_workDir, remoteDir) =>
    oneShotPeer(
      'nc',
      {
        receiver: (port, dest) => ({ args: ['-l', '127.0.0.1', String(port)], stdoutFile: dest }),
        sender: (port, source) => ({ args: ['-N', '127.0.0.1', String(port)], stdinFile: source }),
      },
      remoteDir,
    ),
};

/** An rsync daemon on 127.0.0.1 serving `remoteDir` as the module `bench`, run as this user. */
export interface RsyncDaemon {
  /** `rsync://HOST:PORT/bench/NAME` (HOST: 127.0.0.1, or its address in another network namespace). */
  url(name: string): string;
  /** Waits until the daemon's forks for finished transfers have been reaped (so their CPU time counts). */
  settled(): Promise<void>;
  /** CPU seconds of the daemon and its reaped forks so far. */
  cpuSeconds(): number;
  close(): Promise<void>;
}

/** An rsync daemon serving `remoteDir` on 127.0.0.1, or on `at.host` inside the network namespace `at.netns`. */
export async function startRsyncDaemon(workDir: string, remoteDir: string, at?: { host: string; netns: string }): Promise<RsyncDaemon> {
  const config = join(workDir, 'rsyncd.conf');
  // Run as ourselves (a daemon started as root would otherwise switch to "nobody").
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  await writeFile(
    config,
    [
      'use chroot = no',
      `uid = ${uid}`,
      `gid = ${gid}`,
      `log file = ${join(workDir, 'rsyncd.log')}`,
      '',
      '[bench]',
      `path = ${remoteDir}`,
      'read only = no',
      '',
    ].join('\n'),
  );
  const port = await freePort();
  const host = at?.host ?? '127.0.0.1';
  const args = ['--daemon', '--no-detach', '--config', config, '--port', String(port), '--address', host];
  const daemon = at ? startCommand('ip', ['netns', 'exec', at.netns, 'rsync', ...args]) : startCommand('rsync', args);
  try {
    await waitForListener(port, 'rsync daemon', isRunning(daemon), 10_000, at ? daemon.child.pid : undefined);
  } catch (error) {
    await stopChild(daemon.child, 'SIGTERM');
    throw error;
  }
  return {
    url: (name) => `rsync://${host}:${port}/bench/${name}`,
    settled: () => childrenGone(daemon.child.pid!),
    cpuSeconds: () => processTreeCpuSeconds(daemon.child.pid!),
    close: async () => void (await stopChild(daemon.child, 'SIGTERM')),
  };
}

/** rsync --whole-file to and from its daemon, with `extra` options. */
function rsyncReference(name: string, how: string, extra: readonly string[]): Reference {
  return {
    name,
    how,
    missing: missingBinary('rsync', 'rsync'),
    open: (workDir, remoteDir) => openRsync(workDir, remoteDir, extra),
  };
}

export const rsync = rsyncReference('rsync', 'rsync --whole-file to/from an rsync daemon on 127.0.0.1', []);

/** rsync checking what it moved with a cryptographic hash, as Ferry does with SHA-256: like for like. */
export const rsyncSha1 = rsyncReference(
  'rsync-sha1',
  'rsync --whole-file --checksum-choice=sha1 to/from the same daemon (the whole-file check of what was sent is a SHA-1)',
  ['--checksum-choice=sha1'],
);

async function openRsync(workDir: string, remoteDir: string, extra: readonly string[]): Promise<ReferenceSession> {
  const daemon = await startRsyncDaemon(workDir, remoteDir);
  const timed = async (args: string[], dest: string): Promise<number> => {
    await rm(dest, { force: true }); // nothing there, so nothing is skipped
    const { seconds } = expectSuccess('rsync', await runCommand('rsync', ['--whole-file', ...extra, ...args]));
    await daemon.settled(); // so that its fork's CPU time is counted (untimed)
    return seconds;
  };
  return {
    up: async (source, remoteName) => timed([source, daemon.url(remoteName)], join(remoteDir, remoteName)),
    down: async (remoteName, dest) => timed([daemon.url(remoteName), dest], dest),
    serviceCpuSeconds: () => daemon.cpuSeconds(),
    close: () => daemon.close(),
  };
}

export const cp: Reference = {
  name: 'cp',
  how: 'cp --reflink=never (disk and page cache only, no network)',
  missing: missingBinary('cp', 'coreutils'),
  open: (_workDir, remoteDir) => {
    const copy = async (from: string, to: string): Promise<number> => {
      await rm(to, { force: true });
      return expectSuccess('cp', await runCommand('cp', ['--reflink=never', from, to])).seconds;
    };
    return Promise.resolve({
      up: (source, remoteName) => copy(source, join(remoteDir, remoteName)),
      down: (remoteName, dest) => copy(join(remoteDir, remoteName), dest),
      close: () => Promise.resolve(),
    });
  },
};

/** A one-shot peer's session, as `Reference.open` returns it. */
function oneShotPeer(...args: Parameters<typeof oneShotSession>): Promise<ReferenceSession> {
  return Promise.resolve(oneShotSession(...args));
}

/** Makes the server-side folder of a reference session. */
export async function makeRemoteDir(workDir: string): Promise<string> {
  const remoteDir = join(workDir, 'remote');
  await mkdir(remoteDir, { recursive: true });
  return remoteDir;
}
