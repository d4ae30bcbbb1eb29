import { isIP } from 'node:net';

/**
 * Whether `host` names this machine only (a loopback address or `localhost`): the only place a
 * server may listen, or a client send credentials, in clear text without a warning.
 */
export function isLoopback(host: string): boolean {
  const address = host.replace(/^\[(.*)\]$/u, '$1').replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/iu, '');
  if (address.toLowerCase() === 'localhost') return true;
  if (isIP(address) === 4) return address.startsWith('127.');
  return address === '::1';
}
