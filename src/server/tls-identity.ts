import { X509Certificate } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { type SecureContext, type TlsOptions, createSecureContext } from 'node:tls';
import { FerryError } from '../protocol/errors.js';
import { fromSystemError } from '../system-errors.js';
import { fingerprintOfDer } from '../tls/fingerprint.js';

/** The certificate a server presents, its key, and the fingerprint clients pin. */
export interface TlsIdentity {
  readonly context: SecureContext;
  /** The same certificate, key and settings as options of a TLS server (the HTTPS side's). */
  readonly serverOptions: TlsOptions;
  /** `SHA256:...`, as clients show and pin it. */
  readonly fingerprint: string;
  /** Where the certificate came from: generated into the data directory, or the operator's files. */
  readonly certFile: string;
  /** Whether it was generated at this start (the data directory's first). */
  readonly created: boolean;
}

/** Where the certificate and key are: the operator's (`--tls-cert`, `--tls-key`), or generated under `tlsDir`. */
export interface TlsFiles {
  certFile?: string | undefined;
  keyFile?: string | undefined;
  /** The data directory's `tls/`: a certificate is generated there at the first start. */
  tlsDir: string;
  /** Mode of the certificate file written there (the key is always 0600). */
  fileMode: number;
  folderMode: number;
}

/** A generated certificate is checked by its fingerprint, never by a date: it lasts as long as ssh host keys do. */
const generatedValidityDays = 100 * 365;

/**
 * TLS 1.3 only, AES-128-GCM first: our own client speaks it, every current browser does, and on
 * CPUs with AES instructions it is the cheapest of the three suites (ssh users pick
 * aes128-gcm@openssh.com for the same reason).
 */
const tlsSettings = {
  minVersion: 'TLSv1.3',
  ciphers: 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256',
  honorCipherOrder: true,
} as const;

/** Loads the server's certificate and key, generating an EC P-256 self-signed pair at the first start. */
export async function loadTlsIdentity(files: TlsFiles): Promise<TlsIdentity> {
  if ((files.certFile === undefined) !== (files.keyFile === undefined))
    throw new FerryError('ECONFIG', '--tls-cert and --tls-key go together: give both, or neither to use the generated certificate');
  const certFile = files.certFile ?? join(files.tlsDir, 'cert.pem');
  const keyFile = files.keyFile ?? join(files.tlsDir, 'key.pem');
  let pems = await readPair(certFile, keyFile);
  let created = false;
  if (pems === undefined) {
    if (files.certFile !== undefined) throw new FerryError('ECONFIG', `${certFile}: no such certificate file (--tls-cert)`);
    pems = await generatePair(files, certFile, keyFile);
    created = true;
  }
  const serverOptions = { cert: pems.cert, key: pems.key, ...tlsSettings };
  let context: SecureContext;
  let fingerprint: string;
  try {
    context = createSecureContext(serverOptions);
    fingerprint = fingerprintOfDer(new X509Certificate(pems.cert).raw);
  } catch (error) {
    throw new FerryError('ECONFIG', `${certFile} and ${keyFile} are not a usable certificate and key (${(error as Error).message})`, {
      cause: error,
    });
  }
  return { context, serverOptions, fingerprint, certFile, created };
}

interface PemPair {
  cert: string;
  key: string;
}

async function readPair(certFile: string, keyFile: string): Promise<PemPair | undefined> {
  try {
    const [cert, key] = await Promise.all([readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]);
    return { cert, key };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fromSystemError(error, `reading ${certFile} and ${keyFile}`);
  }
}

/** Generates the pair and writes it (each file under a temporary name, then renamed: a crash leaves none or both). */
async function generatePair(files: TlsFiles, certFile: string, keyFile: string): Promise<PemPair> {
  const { generate } = await import('selfsigned');
  const host = hostname();
  const now = Date.now();
  const generatedPems = await generate([{ name: 'commonName', value: `ferry ${host}` }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate: new Date(now - 60_000),
    notAfterDate: new Date(now + generatedValidityDays * 86_400_000),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          ...(host === 'localhost' ? [] : [{ type: 2 as const, value: host }]),
          { type: 7, ip: '127.0.0.1' },
          { type: 7, ip: '::1' },
        ],
      },
    ],
  });
  const pems = { cert: generatedPems.cert, key: generatedPems.private };
  try {
    await mkdir(files.tlsDir, { recursive: true, mode: files.folderMode });
    await writeFile(`${keyFile}.tmp`, pems.key, { mode: 0o600 });
    await writeFile(`${certFile}.tmp`, pems.cert, { mode: files.fileMode });
    await rename(`${keyFile}.tmp`, keyFile);
    await rename(`${certFile}.tmp`, certFile);
  } catch (error) {
    throw fromSystemError(error, `writing the generated certificate to ${files.tlsDir}`);
  }
  return pems;
}
