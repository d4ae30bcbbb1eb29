/**
 * Two builds' servers side by side, for a change to the server's small-file path:
 *
 *     node dist/bench/ab-servers.js OTHER_CHECKOUT [--clients 64] [--size 64KiB] [--phases 8] [--rounds 16]
 *
 * starts this checkout's `ferry serve` and OTHER_CHECKOUT's (built: its bin/ferry.js), each on a
 * fresh data directory on disk in clear text, connects `--clients` FerryClients (this build's
 * library, in this process) to each, then runs `--phases` phases on each server, alternating which
 * goes first: every client uploads `--rounds` files of `--size` under fresh names. Per phase it
 * prints uploads/s and the server's CPU milliseconds per upload. The first half of the phases warm
 * the servers up (V8 compiles their JavaScript as they go); the medians are over the second half.
 * Both servers run at once on the same machine, so whatever else the machine does lands on both.
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { FerryClient } from '../src/client/client.js';
import { makeTempDir, removeDir } from './lib/files.js';
import { parseSize } from './lib/units.js';
import { FerryServer, loginAt, roomForClients } from './lib/server.js';
import { median } from './lib/stats.js';

interface Phase {
  uploadsPerSecond: number;
  serverCpuMsPerUpload: number;
}

interface Side {
  label: string;
  server: FerryServer;
  clients: FerryClient[];
  phases: Phase[];
}

const { values, positionals } = parseArgs({
  options: {
    clients: { type: 'string', default: '64' },
    size: { type: 'string', default: '64KiB' },
    phases: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '16' },
  },
  allowPositionals: true,
});
const other = positionals[0];
if (other === undefined)
  throw new Error('usage: node dist/bench/ab-servers.js OTHER_CHECKOUT [--clients N] [--size SIZE] [--phases N] [--rounds N]');
const clientCount = Number(values.clients);
const phaseCount = Number(values.phases);
const rounds = Number(values.rounds);

const work = await makeTempDir('disk', 'ab-servers');
const sides: Side[] = [];
try {
  const source = join(work, 'source');
  await writeFile(source, randomBytes(parseSize(values.size)));
  const builds = [
    { label: 'this checkout', bin: undefined },
    { label: resolve(other), bin: join(resolve(other), 'bin', 'ferry.js') },
  ];
  for (const [index, build] of builds.entries()) {
    const args = ['--no-tls', ...roomForClients(clientCount)];
    const server = await FerryServer.start(join(work, `data-${index}`), args, undefined, build.bin);
    const clients = Array.from(
      { length: clientCount },
      () => new FerryClient({ host: '127.0.0.1', port: server.port, retry: { retries: 0 }, ...loginAt(server.port) }),
    );
    sides.push({ label: build.label, server, clients, phases: [] });
    await Promise.all(clients.map((client) => client.connection()));
  }
  for (let phase = 0; phase < phaseCount; phase += 1) {
    for (const side of phase % 2 === 0 ? sides : [...sides].reverse()) {
      const cpuBefore = side.server.cpuSeconds();
      const started = performance.now();
      await Promise.all(
        side.clients.map(async (client, c) => {
          for (let round = 0; round < rounds; round += 1) await client.upload(source, { name: `p${phase}/c${c}/r${round}` });
        }),
      );
      const seconds = (performance.now() - started) / 1000;
      const uploads = clientCount * rounds;
      side.phases.push({
        uploadsPerSecond: uploads / seconds,
        serverCpuMsPerUpload: (1000 * (side.server.cpuSeconds() - cpuBefore)) / uploads,
      });
    }
  }
  for (const side of sides) {
    const warm = side.phases.slice(Math.floor(phaseCount / 2));
    const perPhase = side.phases.map((p) => `${p.uploadsPerSecond.toFixed(0)}/s ${p.serverCpuMsPerUpload.toFixed(3)} ms`).join(', ');
    console.log(`${side.label}: ${perPhase}`);
    console.log(
      `  warm median: ${median(warm.map((p) => p.uploadsPerSecond)).toFixed(0)} uploads/s, ${median(warm.map((p) => p.serverCpuMsPerUpload)).toFixed(3)} server CPU ms per upload`,
    );
  }
} finally {
  for (const side of sides) {
    await Promise.all(side.clients.map((client) => client.close().catch(() => undefined)));
    await side.server.stop().catch(() => undefined);
  }
  await removeDir(work);
}
