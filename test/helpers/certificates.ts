import { generate } from 'selfsigned';

/** A self-signed EC P-256 pair for localhost, as the server generates its own. */
export async function certificatePair(): Promise<{ cert: string; key: string }> {
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], { keyType: 'ec', curve: 'P-256', algorithm: 'sha256' });
  return { cert: pems.cert, key: pems.private };
}
