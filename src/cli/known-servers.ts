import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { KnownServers } from '../client/server-trust.js';
import { configDir, writePrivateFile } from './credentials.js';

/** `$XDG_CONFIG_HOME/ferry/known_servers` (default `~/.config/ferry/`). */
export function knownServersFile(env: NodeJS.ProcessEnv): string {
  return join(configDir(env), 'known_servers');
}

/** One remembered server: the address as typed (`host:port`) and its certificate's fingerprint. */
export interface KnownServer {
  address: string;
  fingerprint: string;
}

/**
 * The servers this user's client has met, one per line, `host:port SHA256:...` (as ssh's
 * known_hosts: readable, and editable by hand), in a 0600 file.
 */
export class KnownServersFile implements KnownServers {
  readonly file: string;
  readonly #onRemember: (server: KnownServer, file: string) => void;

  /** `onRemember` is told of each server met for the first time (the CLI says so on stderr). */
  constructor(env: NodeJS.ProcessEnv, onRemember: (server: KnownServer, file: string) => void = () => {}) {
    this.file = knownServersFile(env);
    this.#onRemember = onRemember;
  }

  async list(): Promise<KnownServer[]> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const servers: KnownServer[] = [];
    for (const line of text.split('\n')) {
      const [address, fingerprint] = line.trim().split(/\s+/u);
      if (address && fingerprint && !address.startsWith('#')) servers.push({ address, fingerprint });
    }
    return servers;
  }

  async get(address: string): Promise<string | undefined> {
    return (await this.list()).find((server) => server.address === address)?.fingerprint;
  }

  async remember(address: string, fingerprint: string): Promise<void> {
    const servers = (await this.list()).filter((server) => server.address !== address);
    servers.push({ address, fingerprint });
    await this.#write(servers);
    this.#onRemember({ address, fingerprint }, this.file);
  }

  /** Forgets the certificate remembered for `address`; false when none was. */
  async forget(address: string): Promise<boolean> {
    const servers = await this.list();
    const kept = servers.filter((server) => server.address !== address);
    if (kept.length === servers.length) return false;
    await this.#write(kept);
    return true;
  }

  async #write(servers: KnownServer[]): Promise<void> {
    await writePrivateFile(this.file, servers.map(({ address, fingerprint }) => `${address} ${fingerprint}\n`).join(''));
  }
}
