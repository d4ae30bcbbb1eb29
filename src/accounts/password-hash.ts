import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

/** scrypt's cost parameters: N = 2^logN, block size r, parallelism p. */
export interface ScryptCost {
  logN: number;
  r: number;
  p: number;
}

/** What new hashes use: N=2^15, r=8, p=1 (about 150 ms here), a 16-byte salt and a 32-byte key. */
export const defaultScryptCost: ScryptCost = { logN: 15, r: 8, p: 1 };
const saltBytes = 16;
const keyBytes = 32;

/** Runs scrypt on libuv's thread pool (never the main thread); memory bound sized to the cost. */
function derive(password: string, salt: Buffer, cost: ScryptCost, length: number): Promise<Buffer> {
  const N = 2 ** cost.logN;
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFC'), salt, length, { N, r: cost.r, p: cost.p, maxmem: 256 * N * cost.r }, (error, key) =>
      error ? reject(error) : resolve(key),
    );
  });
}

const unpadded = (bytes: Buffer): string => bytes.toString('base64').replace(/=+$/u, '');

/** A new hash of `password` as a PHC string, `$scrypt$ln=15,r=8,p=1$<salt>$<key>`: the parameters travel with it. */
export async function hashPassword(password: string, cost: ScryptCost = defaultScryptCost): Promise<string> {
  const salt = randomBytes(saltBytes);
  const key = await derive(password, salt, cost, keyBytes);
  return `$scrypt$ln=${cost.logN},r=${cost.r},p=${cost.p}$${unpadded(salt)}$${unpadded(key)}`;
}

const phcPattern = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/u;

/** The cost a stored hash was made with (to tell when it is below today's and should be redone). */
export function costOf(hash: string): ScryptCost | undefined {
  const match = phcPattern.exec(hash);
  return match ? { logN: Number(match[1]), r: Number(match[2]), p: Number(match[3]) } : undefined;
}

/**
 * Whether `password` matches `hash`, with the parameters stored in it, compared in constant time.
 * A malformed hash matches nothing (after the same work, so it tells nothing by its timing).
 */
export async function verifyPassword(password: string, hash: string): Promise<boolean> {
  const match = phcPattern.exec(hash);
  const cost = costOf(hash);
  if (!match || !cost || cost.logN > 20 || cost.r > 32 || cost.p > 16) {
    await derive(password, randomBytes(saltBytes), defaultScryptCost, keyBytes);
    return false;
  }
  const expected = Buffer.from(match[5]!, 'base64');
  const key = await derive(password, Buffer.from(match[4]!, 'base64'), cost, expected.length);
  return expected.length > 0 && timingSafeEqual(key, expected);
}
