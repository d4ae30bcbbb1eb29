/**
 * A client pointed at something that is not a Ferry server says what it found, at once where the
 * other side shows it, and does not retry as if a link had dropped.
 */
import { once } from 'node:events';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { type AddressInfo, type Server, type Socket, createServer } from 'node:net';
import t, { type Test } from 'tap';
import { ClientConnection, foreignProtocol } from '../src/client/connection.js';
import { makeFile } from './helpers/files.js';
import { tempDir } from './helpers/temp-dir.js';
import { assertFailed, ferry } from './helpers/cli.js';

/** Listens on 127.0.0.1 until the test ends; returns the port. */
async function listen(t: Test, server: Server): Promise<number> {
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  return (server.address() as AddressInfo).port;
}

t.test('the first bytes of HTTP, SSH and TLS servers are told apart from a Ferry reply', (t) => {
  t.equal(foreignProtocol(Buffer.from('HTTP/1.1 400 Bad Request\r\n')), 'HTTP');
  t.equal(foreignProtocol(Buffer.from('SSH-2.0-OpenSSH_9.2p1\r\n')), 'SSH');
  t.equal(foreignProtocol(Uint8Array.of(0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46)), 'TLS', 'a TLS alert');
  t.equal(foreignProtocol(Uint8Array.of(0x16, 0x03, 0x01, 0x00, 0x2a)), 'TLS', 'a TLS handshake');
  t.equal(foreignProtocol(Uint8Array.of(0x00, 0x00, 0x00, 0x40, 0x01, 0x7b)), undefined, 'a Ferry control frame');
  t.end();
});

t.test('wrong servers', async (t) => {
  const dir = tempDir(t);
  const local = await makeFile(dir, 'file.bin', 1024);
  const http = await listen(
    t,
    createHttpServer((request, response) => response.end('hello')),
  );
  const ssh = await listen(
    t,
    createServer((socket) => socket.write('SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n')),
  );
  // A throwaway self-signed certificate, for a TLS server to stand in for one of ours behind TLS.
  const keys = tempDir(t, 'ferry-tls');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-subj',
      '/CN=localhost',
      '-days',
      '1',
      '-keyout',
      join(keys, 'key.pem'),
      '-out',
      join(keys, 'cert.pem'),
    ],
    { stdio: 'ignore' },
  );
  const tls = await listen(
    t,
    createTlsServer({ key: readFileSync(join(keys, 'key.pem')), cert: readFileSync(join(keys, 'cert.pem')) }, (socket) => socket.end()),
  );
  const silent = await listen(
    t,
    createServer(() => {}),
  );

  // The silent one takes the whole handshake timeout: all run at once. Over TLS (the default),
  // a server that is not one answers the ClientHello with something that is not TLS; in clear
  // text (--no-tls), its first bytes say what it is.
  const clear = ['--no-tls'];
  const [tlsList, httpList, httpUpload, sshList, silentList, silentUpload, clearTls, clearHttp, clearSsh] = await Promise.all([
    ferry(['list', '--server', `127.0.0.1:${tls}`]),
    ferry(['list', '--server', `127.0.0.1:${http}`]),
    ferry(['upload', local.path, '--retries', '3', '--server', `127.0.0.1:${http}`]),
    ferry(['list', '--server', `127.0.0.1:${ssh}`]),
    ferry(['list', '--server', `127.0.0.1:${silent}`]),
    ferry(['upload', local.path, '--retries', '3', '--server', `127.0.0.1:${silent}`]),
    ferry(['list', ...clear, '--server', `127.0.0.1:${tls}`]),
    ferry(['list', ...clear, '--server', `127.0.0.1:${http}`]),
    ferry(['list', ...clear, '--server', `127.0.0.1:${ssh}`]),
  ]);
  const noTls = (port: number): string =>
    `ferry: 127.0.0.1:${port} does not speak TLS (a server started with --no-tls? then connect with --no-tls) (EPROTO)`;
  assertFailed(t, httpList, 'EPROTO', noTls(http));
  assertFailed(t, httpUpload, 'EPROTO', noTls(http));
  assertFailed(t, sshList, 'EPROTO', noTls(ssh));
  // A TLS server that is not Ferry's: its certificate is met (and, first met, remembered), then it hangs up.
  t.equal(tlsList.code, 1, 'a TLS server that is not Ferry: exit 1');
  t.match(tlsList.stderr, /first connection to 127\.0\.0\.1:\d+: its certificate SHA256:\S+ is trusted from now on/u);
  t.match(tlsList.stderr, /closed the connection without answering the handshake \(not a Ferry server\?\) \(ECONNLOST\)\n$/u);
  assertFailed(t, clearHttp, 'EPROTO', `ferry: 127.0.0.1:${http} speaks HTTP, not the Ferry protocol (wrong port?) (EPROTO)`);
  assertFailed(t, clearSsh, 'EPROTO', `ferry: 127.0.0.1:${ssh} speaks SSH, not the Ferry protocol (wrong port?) (EPROTO)`);
  // A TLS server may answer a plain hello with an alert (told at once), or just hang up.
  assertFailed(
    t,
    clearTls,
    'ECONNLOST',
    `ferry: 127.0.0.1:${tls} closed the connection without answering the handshake: a Ferry server serving TLS does that to clear text (connect without --no-tls), or it is not a Ferry server (ECONNLOST)`,
  );
  const nothing = `ferry: no Ferry server answered at 127.0.0.1:${silent} (it accepted the connection but sent nothing in 10s) (EPROTO)`;
  assertFailed(t, silentList, 'EPROTO', nothing);
  assertFailed(t, silentUpload, 'EPROTO', nothing);
  t.notMatch(httpUpload.stderr + silentUpload.stderr, /reconnecting/u, 'not retried as a lost link');
});

t.test('a handshake left unanswered by a server that answered before is a slow link (retried), not a wrong port', async (t) => {
  const silent = await listen(
    t,
    createServer(() => {}),
  );
  const options = { host: '127.0.0.1', port: silent, connectTimeoutMs: 300, tls: {} };
  await t.rejects(ClientConnection.connect(options), { code: 'EPROTO' }, 'never answered: not a Ferry server');
  await t.rejects(ClientConnection.connect({ ...options, knownServer: true }), { code: 'ETIMEDOUT' }, 'answered before: retried');
  const controller = new AbortController();
  const connecting = ClientConnection.connect({ ...options, connectTimeoutMs: 10_000, signal: controller.signal });
  controller.abort();
  await t.rejects(connecting, { code: 'ECANCELED' }, 'a cancel ends the wait at once');
});
