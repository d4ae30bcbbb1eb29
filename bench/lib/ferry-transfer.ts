import { rm } from 'node:fs/promises';
import { cliDownload, cliUpload } from './ferry-cli.js';
import { type SourceFile, sha256File } from './files.js';
import { type BoxCpu, boxCpuMeter } from './proc.js';
import type { FerryServer } from './server.js';
import { mibPerSecond } from './units.js';

/** One timed, verified transfer by the `ferry` CLI. */
export interface TransferSample {
  bytes: number;
  seconds: number;
  mibPerSecond: number;
  clientCpuSeconds: number;
  clientMaxRssBytes: number;
  /** CPU the server used during this transfer. */
  serverCpuSeconds: number;
  /** Client + server CPU over the wall time, in % of one core. */
  cpuPercent: number;
  /** The whole machine over the same interval (other processes included). */
  box: BoxCpu;
  /** CPU the rest of the machine used meanwhile (box minus client and server), in % of one core. */
  othersPercent: number;
}

/** Uploads `source` as `name` with the CLI; checks the server's SHA-256 against the source's. */
export async function ferryUpload(
  server: FerryServer,
  source: SourceFile,
  name: string,
  scratchDir: string,
  cores: number,
  extra: readonly string[] = [],
): Promise<TransferSample & { wireBytes: number }> {
  const cpuBefore = server.cpuSeconds();
  const stopMeter = boxCpuMeter(cores);
  const run = await cliUpload(source.path, name, server.address, scratchDir, extra);
  const box = stopMeter();
  const serverCpuSeconds = server.cpuSeconds() - cpuBefore;
  if (run.result.sha256 !== source.sha256 || run.result.size !== source.size) {
    throw new Error(
      `upload of ${name}: server reports ${run.result.size} bytes sha256 ${run.result.sha256}, source is ${source.size} bytes ${source.sha256}`,
    );
  }
  return { ...sample(source.size, run, serverCpuSeconds, box), wireBytes: run.result.wireBytes };
}

/**
 * Downloads `name` to `out` with the CLI and checks the SHA-256 it reports (the client renames
 * the file into place only once the bytes it wrote hash to it); with `rehash`, also hashes the
 * written file again (untimed). Removes the file.
 */
export async function ferryDownload(
  server: FerryServer,
  source: SourceFile,
  name: string,
  out: string,
  scratchDir: string,
  cores: number,
  rehash: boolean,
  extra: readonly string[] = [],
): Promise<TransferSample & { wireBytes: number }> {
  const cpuBefore = server.cpuSeconds();
  const stopMeter = boxCpuMeter(cores);
  const run = await cliDownload(name, out, server.address, scratchDir, extra);
  const box = stopMeter();
  const serverCpuSeconds = server.cpuSeconds() - cpuBefore;
  if (run.result.sha256 !== source.sha256 || run.result.size !== source.size) {
    throw new Error(
      `download of ${name}: client reports ${run.result.size} bytes sha256 ${run.result.sha256}, source is ${source.size} bytes ${source.sha256}`,
    );
  }
  const onDisk = rehash ? await sha256File(out) : source.sha256;
  await rm(out, { force: true });
  if (onDisk !== source.sha256) throw new Error(`download of ${name}: the file written has sha256 ${onDisk}, expected ${source.sha256}`);
  return { ...sample(source.size, run, serverCpuSeconds, box), wireBytes: run.result.wireBytes };
}

function sample(
  bytes: number,
  run: { seconds: number; cpuSeconds: number; maxRssBytes: number },
  serverCpuSeconds: number,
  box: BoxCpu,
): TransferSample {
  const cpuPercent = (100 * (run.cpuSeconds + serverCpuSeconds)) / run.seconds;
  return {
    bytes,
    seconds: run.seconds,
    mibPerSecond: mibPerSecond(bytes, run.seconds),
    clientCpuSeconds: run.cpuSeconds,
    clientMaxRssBytes: run.maxRssBytes,
    serverCpuSeconds,
    cpuPercent,
    box,
    othersPercent: Math.max(0, box.busyPercent - cpuPercent),
  };
}
