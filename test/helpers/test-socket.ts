import { once } from 'node:events';
import { type Socket, connect } from 'node:net';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { fingerprintOfDer } from '../../src/tls/fingerprint.js';
import { serverAt } from './accounts.js';

/**
 * A bare socket to the test server on 127.0.0.1:`port`, for clients that write protocol bytes
 * themselves: over TLS to a server that serves it (its certificate pinned), else in clear text.
 * `onBytes` gets what arrives (in clear text read into one reused buffer, valid only during the
 * call); `connected` settles once the socket (and TLS) is up.
 */
export function openTestSocket(
  port: number,
  onBytes: (bytes: Uint8Array) => void,
  options: { localAddress?: string; readBufferBytes?: number } = {},
): { socket: Socket; connected: Promise<void> } {
  const fingerprint = serverAt(port)?.fingerprint;
  const where = { host: '127.0.0.1', port, ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }) };
  if (fingerprint === undefined) {
    const socket = connect({
      ...where,
      noDelay: true,
      onread: {
        buffer: Buffer.allocUnsafe(options.readBufferBytes ?? 64 * 1024),
        callback: (bytes: number, buffer: Uint8Array) => {
          onBytes(buffer.subarray(0, bytes));
          return true;
        },
      },
    });
    return { socket, connected: once(socket, 'connect').then(() => undefined) };
  }
  const socket: TLSSocket = tlsConnect({ ...where, rejectUnauthorized: false });
  socket.setNoDelay(true);
  socket.on('data', onBytes);
  // Connected, then closed by the server before the TLS handshake ended (a refusal that could not
  // even say why): as in clear text, a connection that the server closed, not a failure to connect.
  let reached = false;
  socket.once('connect', () => (reached = true));
  const connected = new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', () => {
      if (fingerprintOfDer(socket.getPeerCertificate().raw) === fingerprint) return resolve();
      socket.destroy();
      reject(new Error(`127.0.0.1:${port} presented another certificate than its test server's`));
    });
    socket.once('close', () => (reached ? resolve() : reject(new Error(`cannot connect to 127.0.0.1:${port}`))));
  });
  socket.on('error', () => undefined); // the 'close' that follows decides
  return { socket, connected };
}
