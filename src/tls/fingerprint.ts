import { X509Certificate, createHash } from 'node:crypto';

/**
 * A certificate's fingerprint as ssh prints a host key's: `SHA256:` and the base64 (unpadded) of
 * the SHA-256 of its DER bytes. One spelling everywhere: the server's log, `known_servers`,
 * `--fingerprint`, and the messages that compare two.
 */
export function fingerprintOfDer(der: Uint8Array): string {
  return `SHA256:${createHash('sha256').update(der).digest('base64').replace(/=+$/u, '')}`;
}

/** The fingerprint of a PEM certificate (the first one, when it is a chain). */
export function fingerprintOfPem(pem: string | Buffer): string {
  return fingerprintOfDer(new X509Certificate(pem).raw);
}

/**
 * A fingerprint as a person may give it: ours (`SHA256:` + base64), or the hex that
 * `openssl x509 -fingerprint -sha256` prints (with or without colons). Returns ours, or undefined
 * when it is neither.
 */
export function parseFingerprint(text: string): string | undefined {
  const trimmed = text.trim();
  const ours = /^SHA256:([A-Za-z0-9+/]{43})=?$/iu.exec(trimmed);
  if (ours) {
    const bytes = Buffer.from(ours[1]!, 'base64');
    return bytes.length === 32 ? `SHA256:${bytes.toString('base64').replace(/=+$/u, '')}` : undefined;
  }
  const hex = trimmed.replace(/^(sha256 fingerprint=|sha256:)/iu, '').replace(/:/gu, '');
  if (/^[0-9a-f]{64}$/iu.test(hex)) return `SHA256:${Buffer.from(hex, 'hex').toString('base64').replace(/=+$/u, '')}`;
  return undefined;
}
