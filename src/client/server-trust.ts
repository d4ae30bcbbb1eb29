import type { TLSSocket } from 'node:tls';
import { FerryError } from '../protocol/errors.js';
import { fingerprintOfDer } from '../tls/fingerprint.js';

/**
 * The certificates a client has met, by server address (`host:port`), as ssh's `known_hosts`:
 * the CLI keeps them in a file, a program may keep them anywhere.
 */
export interface KnownServers {
  /** The fingerprint remembered for `address`, if it was met before. */
  get(address: string): Promise<string | undefined>;
  /** Remembers the fingerprint of a server met for the first time. */
  remember(address: string, fingerprint: string): Promise<void>;
}

/** Known servers for the life of one client: its reconnects must meet the certificate its first connection met. */
export class MemoryKnownServers implements KnownServers {
  readonly #fingerprints = new Map<string, string>();

  get(address: string): Promise<string | undefined> {
    return Promise.resolve(this.#fingerprints.get(address));
  }

  remember(address: string, fingerprint: string): Promise<void> {
    this.#fingerprints.set(address, fingerprint);
    return Promise.resolve();
  }
}

/**
 * How a client decides whether a server's certificate is the right one, checked before any byte
 * of ours (a token, a password) is sent. `ca`: the certificate must chain to it and name the host
 * (for real certificates). `fingerprint`: it must be this one. Neither: trust on first use, as ssh
 * does: the first certificate met at an address is remembered in `knownServers`, and another one
 * there later is refused (EBADCERT).
 */
export interface ClientTls {
  ca?: string | Buffer;
  /** `SHA256:...` (see parseFingerprint for the spellings a person may give). */
  fingerprint?: string;
  knownServers?: KnownServers;
}

/** Node's codes for a certificate chain that does not verify or does not name the host. */
const certificateErrorCodes = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** A failed TLS handshake, said as what it most likely means. */
export function tlsHandshakeError(error: unknown, address: string): FerryError {
  const code = (error as NodeJS.ErrnoException).code ?? '';
  const detail = (error as Error).message;
  if (certificateErrorCodes.has(code))
    return new FerryError('EBADCERT', `the certificate of ${address} does not verify against --ca: ${detail}`, { cause: error });
  if (/WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|UNEXPECTED_MESSAGE|RECORD_LAYER_FAILURE/u.test(code)) {
    return new FerryError('EPROTO', `${address} does not speak TLS (a server started with --no-tls? then connect with --no-tls)`, {
      cause: error,
    });
  }
  return new FerryError('ECONNECT', `TLS handshake with ${address} failed (${code || detail})`, { cause: error });
}

/**
 * Checks the certificate a just-secured socket presents, by the rules of `tls`; resolves with its
 * fingerprint, or rejects with EBADCERT before anything has been sent.
 */
export async function checkServerCertificate(socket: TLSSocket, address: string, tls: ClientTls): Promise<string> {
  const certificate = socket.getPeerCertificate();
  if (!certificate.raw) throw new FerryError('EBADCERT', `${address} presented no certificate`);
  const fingerprint = fingerprintOfDer(certificate.raw);
  if (tls.fingerprint !== undefined) {
    if (fingerprint === tls.fingerprint) return fingerprint;
    throw new FerryError(
      'EBADCERT',
      `the certificate of ${address} is ${fingerprint}, not the pinned ${tls.fingerprint} (--fingerprint): refused before anything was sent`,
    );
  }
  if (tls.ca !== undefined || !tls.knownServers) return fingerprint; // the chain was verified by the handshake
  const remembered = await tls.knownServers.get(address);
  if (remembered === undefined) {
    await tls.knownServers.remember(address, fingerprint);
    return fingerprint;
  }
  if (remembered === fingerprint) return fingerprint;
  throw new FerryError(
    'EBADCERT',
    `the certificate of ${address} changed: it is now ${fingerprint}, but ${remembered} is remembered for it; refused before anything was sent. Someone may be in between; if the server's certificate was replaced on purpose, run ferry trust forget ${address} and connect again`,
  );
}
