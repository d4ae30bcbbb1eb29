/**
 * TLS by default: the server's certificate (generated, or the operator's), the client's trust on
 * first use with known_servers, pinning with --fingerprint, verification with --ca, and clear
 * text only when both ends say --no-tls. Every CLI run here has a configuration folder of its own
 * (XDG_CONFIG_HOME), so what it trusts is what the test made it meet.
 */
import { once } from 'node:events';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type TLSSocket, createServer as createTlsServer } from 'node:tls';
import { generate } from 'selfsigned';
import t, { type Test } from 'tap';
import { FerryClient } from '../src/client/client.js';
import { fingerprintOfPem } from '../src/tls/fingerprint.js';
import { certificatePair } from './helpers/certificates.js';
import { assertFailed, ferry, type RunResult } from './helpers/cli.js';
import { tokenFor } from './helpers/accounts.js';
import { startServer } from './helpers/server.js';
import { spawnServer } from './helpers/server-process.js';
import { tempDir } from './helpers/temp-dir.js';

/** A CLI run with its own client configuration folder and (optionally) a token; no test-helper trust. */
function run(args: string[], config: string, token?: string, input?: string): Promise<RunResult> {
  return ferry(args, {
    anonymous: true,
    env: { XDG_CONFIG_HOME: config, ...(token === undefined ? {} : { FERRY_TOKEN: token }) },
    ...(input === undefined ? {} : { input: Buffer.from(input) }),
  });
}

/**
 * A TLS server on `port` that answers nothing and keeps every byte a client sends it after the
 * handshake: a man in the middle, to show what a client would have handed over.
 */
async function recordingServer(t: Test, port: number): Promise<{ received: () => string; fingerprint: string }> {
  const pair = await certificatePair();
  const chunks: Buffer[] = [];
  const sockets = new Set<TLSSocket>();
  const server = createTlsServer(pair, (socket) => {
    sockets.add(socket);
    socket.on('data', (data: Buffer) => {
      chunks.push(data);
      socket.end(); // heard the first request: hang up
    });
    socket.on('error', () => undefined);
  });
  server.on('tlsClientError', () => undefined);
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  return { received: () => Buffer.concat(chunks).toString('latin1'), fingerprint: fingerprintOfPem(pair.cert) };
}

t.test('the server generates its certificate once, keeps its key private and says its fingerprint at every start', async (t) => {
  const dataDir = join(tempDir(t), 'data');
  const first = await spawnServer(t, dataDir);
  const cert = await readFile(join(dataDir, 'tls', 'cert.pem'), 'utf8');
  t.equal((await stat(join(dataDir, 'tls', 'key.pem'))).mode & 0o777, 0o600, 'the key is 0600');
  const config = tempDir(t, 'ferry-config');
  const token = tokenFor(first.port)!;
  const met = await run(['whoami', '--server', `127.0.0.1:${first.port}`], config, token);
  t.equal(met.code, 0, met.stderr);
  t.equal(
    met.stderr,
    `ferry: first connection to 127.0.0.1:${first.port}: its certificate ${fingerprintOfPem(cert)} is trusted from now on (kept in ${join(config, 'ferry', 'known_servers')})\n`,
    'the first connection says which certificate it now trusts',
  );
  t.equal((await stat(join(config, 'ferry', 'known_servers'))).mode & 0o777, 0o600, 'known_servers is 0600');
  const again = await run(['whoami', '--server', `127.0.0.1:${first.port}`], config, token);
  t.match(again, { code: 0, stderr: '' }, 'the next connection meets the same certificate and says nothing');
  const list = await run(['trust', 'list'], config);
  t.equal(list.stdout, `127.0.0.1:${first.port}  ${fingerprintOfPem(cert)}\n`, 'trust list shows it');

  first.child.kill('SIGTERM');
  await first.exited;
  const second = await spawnServer(t, dataDir);
  t.equal(await readFile(join(dataDir, 'tls', 'cert.pem'), 'utf8'), cert, 'a restart keeps the certificate');
  const pinned = await run(['whoami', '--server', `127.0.0.1:${second.port}`, '--fingerprint', fingerprintOfPem(cert)], config, token);
  t.match(pinned, { code: 0, stderr: '' }, '--fingerprint with the logged fingerprint connects, with nothing remembered');
});

t.test('a man in the middle: another certificate on a known address is refused before any credential leaves', async (t) => {
  const running = await startServer(t);
  const config = tempDir(t, 'ferry-config');
  const server = `127.0.0.1:${running.port}`;
  await running.server.accounts.add('dave', 'dave-password');
  const login = await run(['login', '--server', server, '--user', 'dave', '--password-stdin'], config, undefined, 'dave-password\n');
  t.equal(login.code, 0, login.stderr);
  const saved = JSON.parse(await readFile(join(config, 'ferry', 'credentials.json'), 'utf8')) as Record<
    string,
    { token: string; fingerprint: string }
  >;
  t.equal(saved[server]?.fingerprint, running.server.tlsFingerprint, 'the saved login names the certificate it was made with');
  const token = saved[server]!.token;

  await running.server.close();
  const intruder = await recordingServer(t, running.port);
  const refused = await run(['list', '--server', server], config);
  assertFailed(
    t,
    refused,
    'EBADCERT',
    `ferry: the certificate of ${server} changed: it is now ${intruder.fingerprint}, but ${running.server.tlsFingerprint} is remembered for it; refused before anything was sent. Someone may be in between; if the server's certificate was replaced on purpose, run ferry trust forget ${server} and connect again (EBADCERT)`,
  );
  const withPassword = await ferry(['list', '--server', server], {
    anonymous: true,
    env: { XDG_CONFIG_HOME: config, FERRY_USER: 'dave', FERRY_PASSWORD: 'dave-password' },
  });
  t.equal(withPassword.code, 1, 'a password login is refused the same way');
  t.match(withPassword.stderr, /\(EBADCERT\)\n$/u);
  t.equal(intruder.received(), '', 'the intruder got not one byte: no hello, no token, no password');

  const forget = await run(['trust', 'forget', server], config);
  t.match(forget, { code: 0, stdout: `forgot the certificate of ${server}; the next connection to it trusts the one it meets\n` });
  const unknown = await run(['trust', 'forget', server], config);
  assertFailed(t, unknown, 'ENOENT');
  const trusting = await run(['list', '--server', server], config);
  t.equal(trusting.code, 1, 'the intruder is no Ferry server');
  t.match(trusting.stderr, `first connection to ${server}: its certificate ${intruder.fingerprint} is trusted from now on`);
  t.match(intruder.received(), /"op":"hello"/u, 'now trusted, it gets the hello');
  t.notMatch(intruder.received(), token, 'but not the token saved for the other certificate');
});

t.test('--fingerprint pins one certificate; --ca verifies a real one; bad values are usage errors', async (t) => {
  const running = await startServer(t);
  const server = `127.0.0.1:${running.port}`;
  const config = tempDir(t, 'ferry-config');
  const fingerprint = running.server.tlsFingerprint!;
  const hex = Buffer.from(fingerprint.slice('SHA256:'.length), 'base64').toString('hex').toUpperCase().match(/../gu)!.join(':');
  for (const pin of [fingerprint, hex]) {
    const pinned = await run(['whoami', '--server', server, '--fingerprint', pin], config, running.token);
    t.match(pinned, { code: 0, stdout: /^tester /u, stderr: '' }, `pinned as ${pin.slice(0, 12)}...: connects`);
  }
  const other = (await recordingServer(t, 0)).fingerprint;
  const wrong = await run(['whoami', '--server', server, '--fingerprint', other], config, running.token);
  assertFailed(
    t,
    wrong,
    'EBADCERT',
    `ferry: the certificate of ${server} is ${fingerprint}, not the pinned ${other} (--fingerprint): refused before anything was sent (EBADCERT)`,
  );
  t.match(await run(['whoami', '--server', server, '--fingerprint', 'SHA256:nope'], config), {
    code: 2,
    stderr: /--fingerprint: not a SHA-256/u,
  });
  t.match(await run(['whoami', '--server', server, '--no-tls', '--fingerprint', fingerprint], config), {
    code: 2,
    stderr: /cannot go with --no-tls/u,
  });
  await t.rejects(stat(join(config, 'ferry', 'known_servers')), { code: 'ENOENT' }, 'a pinned run remembers nothing');

  // An operator's certificate, signed by a CA of their own.
  const dir = tempDir(t, 'ferry-ca');
  const ca = await generate([{ name: 'commonName', value: 'Test CA' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    ],
  });
  const leaf = await generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    ca: { key: ca.private, cert: ca.cert },
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }] }],
  });
  await writeFile(join(dir, 'ca.pem'), ca.cert);
  await writeFile(join(dir, 'cert.pem'), leaf.cert);
  await writeFile(join(dir, 'key.pem'), leaf.private);
  const operated = await startServer(t, { tlsCertFile: join(dir, 'cert.pem'), tlsKeyFile: join(dir, 'key.pem') });
  t.equal(operated.server.tlsFingerprint, fingerprintOfPem(leaf.cert), 'the server serves the operator certificate');
  const byName = `localhost:${operated.port}`;
  const verified = await run(['whoami', '--server', byName, '--ca', join(dir, 'ca.pem')], config, operated.token);
  t.match(verified, { code: 0, stdout: /^tester /u, stderr: '' }, '--ca: the chain verifies and names the host');
  const notSigned = await run(['whoami', '--server', server, '--ca', join(dir, 'ca.pem')], config, running.token);
  assertFailed(t, notSigned, 'EBADCERT');
  t.match(notSigned.stderr, `the certificate of ${server} does not verify against --ca`);
  const client = new FerryClient({ host: 'localhost', port: operated.port, tls: { ca: ca.cert }, credentials: { token: operated.token } });
  t.teardown(() => client.close());
  t.match(await client.whoami(), { user: 'tester' }, 'the library takes the same trust as options');
  t.equal(client.serverFingerprint, fingerprintOfPem(leaf.cert));
});

t.test('--no-tls on both ends talks clear text; a client without it says what it met', async (t) => {
  const running = await startServer(t, { tls: false });
  t.equal(running.server.tlsFingerprint, undefined);
  const server = `127.0.0.1:${running.port}`;
  const config = tempDir(t, 'ferry-config');
  t.match(await run(['whoami', '--server', server, '--no-tls'], config, running.token), { code: 0, stdout: /^tester /u, stderr: '' });
  const byEnvironment = await ferry(['whoami', '--server', server], {
    anonymous: true,
    env: { XDG_CONFIG_HOME: config, FERRY_TOKEN: running.token, FERRY_NO_TLS: '1' },
  });
  t.match(byEnvironment, { code: 0, stdout: /^tester /u }, 'FERRY_NO_TLS=1 does the same');
  assertFailed(
    t,
    await run(['whoami', '--server', server], config, running.token),
    'EPROTO',
    `ferry: ${server} does not speak TLS (a server started with --no-tls? then connect with --no-tls) (EPROTO)`,
  );
  const tls = await startServer(t);
  const clearToTls = await run(['whoami', '--server', `127.0.0.1:${tls.port}`, '--no-tls'], config, tls.token);
  t.equal(clearToTls.code, 1);
  t.match(clearToTls.stderr, /connect without --no-tls/u, 'clear text to a TLS server says to leave out --no-tls');
  const remote = await run(
    ['login', '--server', '192.0.2.1:8888', '--no-tls', '--user', 'dave', '--password-stdin'],
    config,
    undefined,
    'x\n',
  );
  t.match(
    remote,
    { code: 2, stderr: /refusing to send credentials in clear text to 192\.0\.2\.1 \(--no-tls\)/u },
    'no password to another machine in clear text',
  );
  t.equal(
    (await readFile(join(config, 'ferry', 'known_servers'), 'utf8').catch(() => '')).includes(server),
    false,
    'nothing remembered in clear text',
  );
});

t.test('a client library reconnecting meets the certificate its first connection met', async (t) => {
  const running = await startServer(t);
  const client = new FerryClient({ host: '127.0.0.1', port: running.port, credentials: { token: running.token } });
  t.teardown(() => client.close());
  t.match(await client.whoami(), { user: 'tester' });
  const port = running.port;
  await running.server.close();
  const intruder = await recordingServer(t, port);
  await t.rejects(client.whoami(), { code: 'EBADCERT' }, 'another certificate after a reconnect is refused');
  t.equal(intruder.received(), '', 'and gets nothing');
});
