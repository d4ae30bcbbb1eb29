import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { expectSuccess, runCommand, startCommand, stopChild } from './children.js';
import { freePort, waitForListener } from './net.js';
import { type Reference, type ReferenceSession, which } from './peers.js';
import { childrenGone, processTreeCpuSeconds } from './proc.js';

/** The cipher every ssh reference uses: the fastest OpenSSH offers on CPUs with AES instructions. */
const cipher = 'aes128-gcm@openssh.com';

/** What one ssh session of the bench has: its own sshd on a free port, and the client options to reach it. */
interface SshServer {
  port: number;
  user: string;
  /** Options for ssh, scp and sftp (each takes -o; the port flag differs: -p for ssh, -P for scp and sftp). */
  options: string[];
  /** CPU seconds of sshd and its exited forks (one per connection). */
  cpuSeconds(): number;
  /** Waits until the connection's forks have exited, so their CPU is counted. */
  settled(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A throwaway sshd on 127.0.0.1 (no system service, nothing of the machine's ssh configuration):
 * its own host key and config under `workDir/ssh`, key authentication for the current user with a
 * key made here, the cipher above only.
 */
async function startSshd(workDir: string): Promise<SshServer> {
  const dir = join(workDir, 'ssh');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  for (const key of ['host_key', 'client_key'])
    expectSuccess('ssh-keygen', await runCommand('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, key)]));
  await rm(join(dir, 'authorized_keys'), { force: true });
  await writeFile(join(dir, 'authorized_keys'), await readFile(join(dir, 'client_key.pub')), { mode: 0o600 });
  // sshd running as root wants its privilege separation folder.
  if (process.getuid?.() === 0) await mkdir('/run/sshd', { recursive: true, mode: 0o755 }).catch(() => undefined);
  const port = await freePort();
  const config = join(dir, 'sshd_config');
  await writeFile(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(dir, 'host_key')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'StrictModes no',
      'UsePAM no',
      `Ciphers ${cipher}`,
      'Compression no',
      'Subsystem sftp internal-sftp',
      '',
    ].join('\n'),
  );
  const sshd = which('sshd') ?? '/usr/sbin/sshd';
  const daemon = startCommand(sshd, ['-D', '-e', '-f', config]);
  const alive = (): boolean => daemon.child.exitCode === null && daemon.child.signalCode === null;
  try {
    await waitForListener(port, 'sshd', alive);
  } catch (error) {
    await stopChild(daemon.child, 'SIGTERM');
    const { stderr } = await daemon.finished;
    throw new Error(`${(error as Error).message}: ${stderr.trim()}`, { cause: error });
  }
  return {
    port,
    user: userInfo().username,
    options: [
      '-i',
      join(dir, 'client_key'),
      '-o',
      'IdentitiesOnly=yes',
      '-o',
      'StrictHostKeyChecking=no',
      '-o',
      'UserKnownHostsFile=/dev/null',
      '-o',
      'BatchMode=yes',
      '-o',
      'LogLevel=ERROR',
      '-o',
      `Ciphers=${cipher}`,
      '-o',
      'Compression=no',
    ],
    cpuSeconds: () => processTreeCpuSeconds(daemon.child.pid!),
    settled: () => childrenGone(daemon.child.pid!),
    stop: async () => {
      await stopChild(daemon.child, 'SIGTERM');
    },
  };
}

/** A session over one sshd: `up` and `down` run `command` with the arguments `plan` makes. */
function sshSession(
  tool: string,
  server: SshServer,
  remoteDir: string,
  plan: { up(source: string, remote: string): Promise<string[]>; down(remote: string, dest: string): Promise<string[]> },
): ReferenceSession {
  const timed = async (args: string[]): Promise<number> => {
    const { seconds } = expectSuccess(tool, await runCommand(tool, args));
    await server.settled(); // its forks' CPU is then counted (untimed)
    return seconds;
  };
  return {
    up: async (source, remoteName) => {
      const remote = join(remoteDir, remoteName);
      await rm(remote, { force: true });
      return timed(await plan.up(source, remote));
    },
    down: async (remoteName, dest) => {
      await rm(dest, { force: true });
      return timed(await plan.down(join(remoteDir, remoteName), dest));
    },
    serviceCpuSeconds: () => server.cpuSeconds(),
    close: () => server.stop(),
  };
}

function missingSsh(binary: string): () => string | undefined {
  return () => {
    for (const needed of [binary, 'sshd', 'ssh-keygen'])
      if (!which(needed) && !(needed === 'sshd' && which('/usr/sbin/sshd')))
        return `${needed} not found on PATH (bash bench/setup-peers.sh installs Debian's openssh-server and openssh-client)`;
    return undefined;
  };
}

export const scp: Reference = {
  name: 'scp',
  how: `scp (OpenSSH, its default SFTP protocol, -c ${cipher}) to a local sshd on 127.0.0.1`,
  secure: true,
  missing: missingSsh('scp'),
  open: async (workDir, remoteDir) => {
    const server = await startSshd(workDir);
    const at = `${server.user}@127.0.0.1`;
    return sshSession('scp', server, remoteDir, {
      up: (source, remote) => Promise.resolve(['-q', '-P', String(server.port), ...server.options, source, `${at}:${remote}`]),
      down: (remote, dest) => Promise.resolve(['-q', '-P', String(server.port), ...server.options, `${at}:${remote}`, dest]),
    });
  },
};

export const sftp: Reference = {
  name: 'sftp',
  how: `sftp -b (OpenSSH, -c ${cipher}) put / get, to a local sshd on 127.0.0.1`,
  secure: true,
  missing: missingSsh('sftp'),
  open: async (workDir, remoteDir) => {
    const server = await startSshd(workDir);
    const batch = join(workDir, 'ssh', 'sftp-batch');
    const args = async (line: string): Promise<string[]> => {
      await writeFile(batch, `${line}\n`);
      return ['-q', '-b', batch, '-P', String(server.port), ...server.options, `${server.user}@127.0.0.1`];
    };
    return sshSession('sftp', server, remoteDir, {
      up: (source, remote) => args(`put ${source} ${remote}`),
      down: (remote, dest) => args(`get ${remote} ${dest}`),
    });
  },
};

export const rsyncSsh: Reference = {
  name: 'rsync-ssh',
  how: `rsync --whole-file over ssh (-c ${cipher}) to a local sshd on 127.0.0.1`,
  secure: true,
  missing: missingSsh('rsync'),
  open: async (workDir, remoteDir) => {
    const server = await startSshd(workDir);
    const shell = ['ssh', '-p', String(server.port), ...server.options].join(' ');
    const at = `${server.user}@127.0.0.1`;
    return sshSession('rsync', server, remoteDir, {
      up: (source, remote) => Promise.resolve(['--whole-file', '-e', shell, source, `${at}:${remote}`]),
      down: (remote, dest) => Promise.resolve(['--whole-file', '-e', shell, `${at}:${remote}`, dest]),
    });
  },
};
