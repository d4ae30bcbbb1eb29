import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { type AddressInfo, createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** A port that was free a moment ago on 127.0.0.1: listen on port 0, read it, close. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * True when the kernel lists a TCP socket in LISTEN state on port `port` (any address): in this
 * network namespace, or in the one of process `pid`.
 */
async function isListening(port: number, pid: number | undefined): Promise<boolean> {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const net = pid === undefined ? '/proc/net' : `/proc/${pid}/net`;
  for (const table of [`${net}/tcp`, `${net}/tcp6`]) {
    let text: string;
    try {
      text = await readFile(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/u);
      if (state === '0A' && local?.endsWith(`:${hexPort}`)) return true;
    }
  }
  return false;
}

/**
 * Waits until something listens on `port`, by polling the kernel's socket table. Not by
 * connecting: socat and nc accept exactly one connection, and a probe would be that one.
 * `alive` is checked each round so a listener that died is reported, not waited for. With
 * `inNamespaceOf` (a PID), in that process's network namespace.
 */
export async function waitForListener(
  port: number,
  what: string,
  alive: () => boolean,
  timeoutMs = 10_000,
  inNamespaceOf: number | undefined = undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await isListening(port, inNamespaceOf))) {
    if (!alive()) throw new Error(`${what} exited before listening on port ${port}`);
    if (Date.now() > deadline) throw new Error(`${what} did not listen on port ${port} within ${timeoutMs} ms`);
    await sleep(2);
  }
}
