/**
 * Accounts on the wire: nothing without a login; each account sees only its root and does only
 * what its role allows; a failed login says the same whatever failed and is slowed when repeated;
 * sessions end at logout and with a new password. Real server, real sockets, real LMDB.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { stat as statPath, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import t from 'tap';
import { FerryClient } from '../src/client/client.js';
import { LoginThrottle } from '../src/server/login-throttle.js';
import { pino } from 'pino';
import { testUser } from './helpers/accounts.js';
import { ferry } from './helpers/cli.js';
import { makeFile } from './helpers/files.js';
import { RawClient } from './helpers/raw-client.js';
import { startServer } from './helpers/server.js';
import { ferryBin, spawnServer } from './helpers/server-process.js';
import { tempDir } from './helpers/temp-dir.js';

t.test('an anonymous connection gets EAUTH for every operation but hello, login and ping', async (t) => {
  const running = await startServer(t);
  const requests: [string, Record<string, unknown>][] = [
    ['list', {}],
    ['uploads', {}],
    ['stat', { name: 'x' }],
    ['delete', { name: 'x' }],
    ['info', {}],
    ['log', {}],
    ['hashes', { name: 'x', from: 0, count: 1 }],
    ['put', { name: 'x', size: 1, fingerprint: 'f' }],
    ['putEnd', { stream: 1, sha256: '0'.repeat(64) }],
    ['get', { name: 'x' }],
    ['whoami', {}],
    ['logout', {}],
  ];
  for (const [op, fields] of requests) {
    const raw = await RawClient.connect(t, running.port);
    await raw.hello(true);
    t.match(await raw.call(op, fields), { ok: false, code: 'EAUTH', message: 'authentication required: log in first' }, op);
    t.match(await raw.call('ping'), { ok: true }, `${op}: the connection stays, ping works`);
    raw.destroy();
  }
  const client = running.client({ anonymous: true });
  await t.rejects(client.list(), { code: 'EAUTH' }, 'the typed client without credentials too');
});

t.test('roots and roles: an account sees only its root, and does only what its role allows', async (t) => {
  const running = await startServer(t);
  const { accounts } = running.server;
  await accounts.add('alice', 'alice-password');
  await accounts.add('bob', 'bob-password');
  await accounts.add('reader', 'reader-password', { role: 'read', root: 'alice' });
  const dir = tempDir(t);
  const local = await makeFile(dir, 'notes.txt', 5000);
  const as = (user: string): FerryClient => {
    const client = new FerryClient({ host: '127.0.0.1', port: running.port, credentials: { user, password: `${user}-password` } });
    t.teardown(() => client.close());
    return client;
  };
  const alice = as('alice');
  const bob = as('bob');
  const reader = as('reader');
  const admin = running.client();

  t.match(await alice.whoami(), { user: 'alice', role: 'write', root: 'alice/' });
  t.match(await alice.upload(local.path, { name: 'notes.txt' }), { name: 'notes.txt', sha256: local.sha256 });
  t.match(await bob.upload(local.path, { name: 'notes.txt' }), { name: 'notes.txt' }, 'bob has a notes.txt of his own');
  await t.rejects(
    alice.upload(local.path, { name: 'notes.txt' }),
    { code: 'EEXIST', message: 'notes.txt already exists (use --force to replace it)' },
    'errors speak of her names, not the stored ones',
  );
  t.same(
    (await admin.list()).map((file) => file.name),
    ['alice/notes.txt', 'bob/notes.txt'],
    'stored under each root; the admin sees the whole store',
  );
  t.same(
    (await alice.list()).map((file) => file.name),
    ['notes.txt'],
    'alice lists only hers, named relative to her root',
  );

  await t.rejects(bob.stat('../alice/notes.txt'), { code: 'EBADNAME' }, '../ is refused by the name rule before the root is joined');
  await t.rejects(bob.stat('/alice/notes.txt'), { code: 'EBADNAME' }, 'so is an absolute name');
  await t.rejects(bob.stat('alice/notes.txt'), { code: 'ENOENT' }, "alice's file is not bob's alice/notes.txt");
  await bob.delete('notes.txt');
  t.same(
    (await admin.list()).map((file) => file.name),
    ['alice/notes.txt'],
    "bob's delete removed his file, not alice's",
  );
  const out = join(dir, 'from-alice.txt');
  await reader.download('notes.txt', { out });
  t.equal(await readFile(out, 'utf8'), local.bytes.toString('utf8'), 'a read account with root alice/ downloads her file');
  await t.rejects(reader.upload(local.path, { name: 'mine.txt' }), {
    code: 'EPERM',
    message: /put\w* needs the write role; reader has read/u,
  });
  await t.rejects(reader.delete('notes.txt'), { code: 'EPERM' });
  t.match(await alice.stat('notes.txt'), { sha256: local.sha256 }, 'nothing a read account tried changed her file');

  t.match(await alice.info(), { files: 1, bytes: 5000 }, "info counts what lies under alice's root");
  const aliceLog = await alice.log();
  t.ok(
    aliceLog.every((entry) => entry.user === 'alice'),
    'alice reads the log of her own transfers only',
  );
  t.ok(
    aliceLog.some((entry) => entry.op === 'upload' && entry.name === 'notes.txt'),
    'named relative to her root',
  );
  t.ok(
    (await admin.log()).some((entry) => entry.user === 'bob' && entry.op === 'delete'),
    'the admin reads everyone’s',
  );
});

t.test('an account quota: what lies under its root plus what its unfinished uploads hold', async (t) => {
  const KiB = 10 * 1024; // units of 10 KiB: a quota of 1000 KiB, files of 600 and 500
  const running = await startServer(t, { chunkSizeBytes: 64 * 1024 });
  await running.server.accounts.add('gina', 'gina-password', { quotaBytes: 100 * KiB });
  await running.server.accounts.add('hal', 'hal-password');
  const dir = tempDir(t);
  const gina = new FerryClient({ host: '127.0.0.1', port: running.port, credentials: { user: 'gina', password: 'gina-password' } });
  const hal = new FerryClient({ host: '127.0.0.1', port: running.port, credentials: { user: 'hal', password: 'hal-password' } });
  t.teardown(() => Promise.all([gina.close(), hal.close()]));
  const sixty = await makeFile(dir, 'sixty.bin', 60 * KiB);
  const fifty = await makeFile(dir, 'fifty.bin', 50 * KiB);
  await gina.upload(sixty.path, { name: 'a.bin' });
  await t.rejects(
    gina.upload(fifty.path, { name: 'b.bin' }),
    { code: 'EQUOTA', message: 'b.bin: 512000 more bytes would pass your quota (614400 of 1024000 bytes in use)' },
    'refused up front: 600 KiB held, 500 more would pass 1000',
  );
  t.match(await hal.upload(fifty.path, { name: 'b.bin' }), { size: 50 * KiB }, 'another account is not limited by hers');
  t.match(
    await gina.upload(fifty.path, { name: 'a.bin', force: true }),
    { size: 50 * KiB },
    'replacing a file counts the new size, not both',
  );
  await gina.delete('a.bin');
  t.match(await gina.upload(sixty.path, { name: 'c.bin' }), { size: 60 * KiB }, 'a delete gives its bytes back');
  const stream = await gina
    .uploadStream(Readable.from([Buffer.alloc(30 * KiB, 1), Buffer.alloc(30 * KiB, 2)]), { name: 'piped.bin' })
    .catch((error: unknown) => error);
  t.match(
    stream,
    { code: 'EQUOTA', message: /piped\.bin: your quota is full \(614400 of 1024000 bytes in use\)/u },
    'an upload of unknown size is stopped as it passes it',
  );
  t.match(await gina.info(), { files: 1, bytes: 60 * KiB }, 'nothing of it is kept');
});

t.test('a failed login says the same for an unknown user and a wrong password; repeated failures are slowed', async (t) => {
  const running = await startServer(t);
  const login = async (user: string, password: string): Promise<Record<string, unknown>> => {
    const raw = await RawClient.connect(t, running.port);
    await raw.hello(true);
    const reply = await raw.call('login', { user, password }, 60_000);
    raw.destroy();
    return reply;
  };
  const unknown = await login('nobody', 'whatever-password');
  const wrong = await login(testUser, 'wrong-password');
  t.match(unknown, { ok: false, code: 'EAUTH', message: 'login failed: unknown user or wrong password' });
  t.same(wrong, { ...unknown, id: wrong['id'] }, 'the very same reply for a wrong password');
  for (let attempt = 3; attempt <= 5; attempt += 1) await login(testUser, 'wrong-password');
  const started = Date.now();
  t.match(await login(testUser, 'wrong-password'), { code: 'EAUTH' });
  t.ok(Date.now() - started >= 900, `the sixth failure in a row waited before its check (${Date.now() - started} ms)`);

  // The throttle's arithmetic, with time given: 1 s, doubling, at most 30 s, per address and per name, for 10 minutes.
  const throttle = new LoginThrottle(pino({ level: 'silent' }));
  const now = 1_000_000;
  for (let failure = 1; failure <= 5; failure += 1) {
    t.equal(throttle.delayMs('10.0.0.1', 'eve', now), 0, `no wait before failure ${failure}`);
    throttle.failed('10.0.0.1', 'eve', now);
  }
  t.equal(throttle.delayMs('10.0.0.1', 'someone-else', now), 1000, 'after 5 from one address: 1 s, whatever the name');
  t.equal(throttle.delayMs('10.0.0.2', 'eve', now), 1000, 'after 5 for one name: 1 s, from any address');
  for (let failure = 6; failure <= 12; failure += 1) throttle.failed('10.0.0.1', 'eve', now);
  t.equal(throttle.delayMs('10.0.0.1', 'eve', now), 30_000, 'doubling, at most 30 s');
  t.equal(throttle.delayMs('10.0.0.1', 'eve', now + 10 * 60_000 + 1), 0, 'a new window after 10 minutes');
});

t.test('sessions: a token logs in later connections until logout, a new password, or 30 days unused', async (t) => {
  const running = await startServer(t);
  const { accounts } = running.server;
  await accounts.add('carol', 'carol-password');
  const password = new FerryClient({ host: '127.0.0.1', port: running.port, credentials: { user: 'carol', password: 'carol-password' } });
  t.teardown(() => password.close());
  const session = await password.login();
  t.match(session, { user: 'carol', role: 'write', root: 'carol/', token: /^[A-Za-z0-9_-]{43}$/u, expires: String });
  const raw = await RawClient.connect(t, running.port);
  t.match(await raw.call('hello', { ...raw.helloFields(true), token: session.token }), {
    ok: true,
    result: { account: { user: 'carol', role: 'write', root: 'carol/' } },
  });
  await password.logout();
  const after = await RawClient.connect(t, running.port);
  t.match(
    await after.call('hello', { ...after.helloFields(true), token: session.token }),
    { ok: false, code: 'EAUTH', message: /log in again/u },
    'after logout the token logs nothing in',
  );
  t.match(await after.call('hello', after.helloFields(true)), { ok: true }, 'and the connection may say hello again without it');

  const second = await accounts.issueToken(accounts.get('carol')!);
  await accounts.setPassword('carol', 'carol-new-password');
  t.equal(await accounts.userOfToken(second.token), undefined, 'a new password ends every session of the account');
  const third = await accounts.issueToken(accounts.get('carol')!, Date.now());
  t.ok(await accounts.userOfToken(third.token, Date.now() + 29 * 24 * 3600_000), 'still good after 29 days unused');
  t.equal(await accounts.userOfToken(third.token, Date.now() + 60 * 24 * 3600_000), undefined, 'lapsed after 30 days unused');
});

t.test('the command line: login keeps a session, whoami, logout ends it; anonymous commands say what to do', async (t) => {
  const running = await startServer(t);
  await running.server.accounts.add('dave', 'dave-password');
  const config = tempDir(t, 'ferry-config');
  const server = `127.0.0.1:${running.port}`;
  const env = { XDG_CONFIG_HOME: config };
  const anonymous = await ferry(['list', '--server', server], { env, anonymous: true });
  t.match(anonymous, { code: 1, stderr: `ferry: not logged in to ${server}: run ferry login --server ${server} (EAUTH)\n` });
  const wrong = await ferry(['login', '--server', server, '--user', 'dave', '--password-stdin'], {
    env,
    anonymous: true,
    input: Buffer.from('not-his-password\n'),
  });
  t.match(wrong, { code: 1, stderr: 'ferry: login failed: unknown user or wrong password (EAUTH)\n' });
  const login = await ferry(['login', '--server', server, '--user', 'dave', '--password-stdin'], {
    env,
    anonymous: true,
    input: Buffer.from('dave-password\n'),
  });
  t.equal(login.code, 0, login.stderr);
  t.match(login.stdout, `logged in to ${server} as dave (write, root dave/); session kept in ${join(config, 'ferry', 'credentials.json')}`);
  const file = join(config, 'ferry', 'credentials.json');
  t.equal((await statPath(file)).mode & 0o777, 0o600, 'the credentials file is 0600');
  t.notMatch(await readFile(file, 'utf8'), /dave-password/u, 'it keeps the token, never the password');
  t.match(await ferry(['whoami', '--server', server], { env, anonymous: true }), { code: 0, stdout: 'dave (write, root dave/)\n' });
  t.match(await ferry(['logout', '--server', server], { env, anonymous: true }), { code: 0, stdout: `logged out of ${server} (dave)\n` });
  t.match(await ferry(['whoami', '--server', server], { env, anonymous: true }), { code: 1, stderr: /not logged in to/u });
  const scripted = await ferry(['whoami', '--server', server], {
    env: { ...env, FERRY_USER: 'dave', FERRY_PASSWORD: 'dave-password' },
    anonymous: true,
  });
  t.match(scripted, { code: 0, stdout: 'dave (write, root dave/)\n' }, 'FERRY_USER and FERRY_PASSWORD log in for one run');
  const remote = await ferry(['list', '--no-tls', '--server', '192.0.2.1:8888'], {
    env: { ...env, FERRY_TOKEN: running.token },
    anonymous: true,
  });
  t.match(
    remote,
    { code: 2, stderr: /refusing to send credentials in clear text to 192\.0\.2\.1 \(--no-tls\)/u },
    'credentials never go to another machine in clear text without --insecure',
  );
});

t.test('ferry user: accounts of a data directory, with and without a server running on it', async (t) => {
  const dataDir = join(tempDir(t), 'data');
  const offline = await ferry(['user', 'add', 'erin', '--data', dataDir, '--password-stdin', '--role', 'read'], {
    input: Buffer.from('erin-password\n'),
  });
  t.match(offline, { code: 0, stdout: 'added erin: read, root erin/\n' }, 'no server yet: the directory is made');
  t.match(await ferry(['user', 'add', 'erin', '--data', dataDir, '--password-stdin'], { input: Buffer.from('erin-password\n') }), {
    code: 1,
    stderr: /a user erin already exists \(EEXIST\)/u,
  });
  t.match(await ferry(['user', 'add', 'frank', '--data', dataDir, '--password-stdin'], { input: Buffer.from('short\n') }), {
    code: 2,
    stderr: /at least 8 characters/u,
  });
  const server = await spawnServer(t, dataDir);
  const online = await ferry(['user', 'add', 'frank', '--data', dataDir, '--password-stdin', '--root', 'shared'], {
    input: Buffer.from('frank-password\n'),
  });
  t.match(online, { code: 0, stdout: 'added frank: write, root shared/\n' }, 'beside the running server');
  const frank = new FerryClient({ host: '127.0.0.1', port: server.port, credentials: { user: 'frank', password: 'frank-password' } });
  t.teardown(() => frank.close());
  t.match(await frank.whoami(), { user: 'frank', root: 'shared/' }, 'the running server logs him in at once');
  const listed = await ferry(['user', 'list', '--data', dataDir, '--json']);
  const users = JSON.parse(listed.stdout) as { name: string; role: string; root: string; lastLogin: string | null }[];
  t.same(
    users.map(({ name, role, root }) => ({ name, role, root })),
    [
      { name: 'erin', role: 'read', root: 'erin/' },
      { name: 'frank', role: 'write', root: 'shared/' },
      { name: testUser, role: 'admin', root: '' },
    ],
  );
  t.notMatch(listed.stdout, /scrypt/u, 'no password hash is shown');
  t.match(await ferry(['user', 'set', 'frank', '--role', 'read', '--data', dataDir]), { code: 0, stdout: /^frank +read +shared\//u });
  t.match(await ferry(['user', 'set', 'frank', '--quota', '1MiB', '--data', dataDir]), { code: 0, stdout: /quota 1 MiB/u });
  t.match(await ferry(['user', 'set', 'frank', '--quota', 'lots', '--data', dataDir]), { code: 2, stderr: /--quota: /u });
  t.match(await ferry(['user', 'set', 'frank', '--quota', 'none', '--data', dataDir]), { code: 0, stdout: /no quota/u });
  t.match(await ferry(['user', 'remove', 'erin', '--data', dataDir]), { code: 0, stdout: 'removed erin\n' });
  t.match(await ferry(['user', 'remove', 'erin', '--data', dataDir]), { code: 1, stderr: /no user erin \(ENOENT\)/u });
  server.child.kill('SIGTERM');
  await server.exited;
});

t.test('first start: admin with a random password in <data>/admin-password, removed once it is changed', async (t) => {
  const dataDir = join(tempDir(t), 'data');
  const child = spawn(process.execPath, [ferryBin, 'serve', '--host', '127.0.0.1', '--port', '0', '--http-port', '0', '--data', dataDir], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = once(child, 'exit');
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stderr = '';
  const [port, password] = await new Promise<[number, string]>((resolve) =>
    child.stderr.on('data', (data: Buffer) => {
      stderr += data.toString();
      const match = /on 127\.0\.0\.1:(\d+) over TLS\n.*\n.*password (\S+) \(kept in/u.exec(stderr);
      if (match) resolve([Number(match[1]), match[2]!]);
    }),
  );
  t.match(password, /^[A-Za-z0-9_-]{24}$/u, '144 random bits, printable');
  const file = join(dataDir, 'admin-password');
  t.equal(await readFile(file, 'utf8'), `${password}\n`);
  t.equal((await statPath(file)).mode & 0o777, 0o600);
  const admin = new FerryClient({ host: '127.0.0.1', port, credentials: { user: 'admin', password } });
  t.teardown(() => admin.close());
  t.match(await admin.whoami(), { user: 'admin', role: 'admin', root: '' });
  t.match(await ferry(['user', 'passwd', 'admin', '--data', dataDir, '--password-stdin'], { input: Buffer.from('a-better-password\n') }), {
    code: 0,
  });
  await t.rejects(statPath(file), { code: 'ENOENT' }, 'the file goes once the password is changed');
  child.kill('SIGTERM');
  await exited;
});
