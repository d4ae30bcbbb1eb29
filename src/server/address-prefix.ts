import { isIPv4, isIPv6 } from 'node:net';

/**
 * The network a client address belongs to, as per-address limits count it: its /24 for IPv4,
 * its /64 for IPv6 (one host usually holds a whole /64, so counting single IPv6 addresses would
 * let it take any number of places). An IPv4-mapped IPv6 address counts as its IPv4 address.
 * Anything else (no address) is its own group.
 */
export function addressPrefix(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/iu.exec(address)?.[1];
  const ip = mapped ?? address;
  if (isIPv4(ip)) return `${ip.split('.').slice(0, 3).join('.')}.0/24`;
  if (isIPv6(ip)) return `${expandIPv6(ip).slice(0, 4).join(':')}::/64`;
  return address;
}

/** The eight 16-bit groups of an IPv6 address, without leading zeros ("2001:db8::1" -> 2001, db8, 0, ...). */
function expandIPv6(address: string): string[] {
  const [head = '', tail] = address.toLowerCase().split('%')[0]!.split('::');
  const groupsOf = (part: string): string[] => (part === '' ? [] : part.split(':'));
  const front = groupsOf(head);
  const back = tail === undefined ? [] : groupsOf(tail);
  const zeros = Array.from({ length: 8 - front.length - back.length }, () => '0');
  return [...front, ...zeros, ...back].map((group) => group.replace(/^0+(?=.)/u, ''));
}
