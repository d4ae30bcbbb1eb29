import { createHash, randomFillSync } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { mkdtemp, open, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SourceFile {
  path: string;
  size: number;
  sha256: string;
}

const pieceBytes = 4 * 1024 * 1024;

/**
 * Writes `size` random bytes to `path` (incompressible, so no layer can cheat) and returns its
 * SHA-256, computed as the bytes are written: the one time the bench hashes its source.
 */
export async function writeRandomFile(path: string, size: number): Promise<SourceFile> {
  const handle = await open(path, 'w');
  const sha256 = createHash('sha256');
  const buffer = Buffer.allocUnsafe(pieceBytes);
  try {
    for (let offset = 0; offset < size; offset += pieceBytes) {
      const piece = buffer.subarray(0, Math.min(pieceBytes, size - offset));
      randomFillSync(piece);
      sha256.update(piece);
      await handle.write(piece, 0, piece.length, offset);
    }
  } finally {
    await handle.close();
  }
  return { path, size, sha256: sha256.digest('hex') };
}

/**
 * Writes `size` bytes of text that compresses as logs do (several times over: timestamps, a few
 * words, counters, each line different) to `path`, and returns its SHA-256.
 */
export async function writeTextFile(path: string, size: number): Promise<SourceFile> {
  const words = ['transfer', 'chunk', 'verified', 'server', 'client', 'resume', 'offset', 'sha256', 'ferry', 'stream', 'worker', 'queue'];
  const handle = await open(path, 'w');
  const sha256 = createHash('sha256');
  let line = 0;
  try {
    for (let offset = 0; offset < size;) {
      const lines: string[] = [];
      for (let length = 0; length < pieceBytes; line += 1) {
        const text = `${new Date(1_700_000_000_000 + line * 37).toISOString()} ${words[line % 12]} ${words[(line * 7) % 12]} id=${(line * 2654435761) % 1_000_003} n=${line}\n`;
        lines.push(text);
        length += text.length;
      }
      const piece = Buffer.from(lines.join('')).subarray(0, Math.min(pieceBytes, size - offset));
      sha256.update(piece);
      await handle.write(piece, 0, piece.length, offset);
      offset += piece.length;
    }
  } finally {
    await handle.close();
  }
  return { path, size, sha256: sha256.digest('hex') };
}

/** SHA-256 of a file, read in 4 MiB pieces. */
export async function sha256File(path: string): Promise<string> {
  const handle = await open(path, 'r');
  const sha256 = createHash('sha256');
  const buffer = Buffer.allocUnsafe(pieceBytes);
  try {
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) break;
      sha256.update(buffer.subarray(0, bytesRead));
    }
  } finally {
    await handle.close();
  }
  return sha256.digest('hex');
}

export async function fileSize(path: string): Promise<number> {
  return (await stat(path)).size;
}

export type Medium = 'disk' | 'tmpfs';

/** /dev/shm, when this machine has it: a RAM file system, so no disk is in the loop at all. */
export function tmpfsAvailable(): boolean {
  return existsSync('/dev/shm');
}

const tempDirs = new Set<string>();

/** A fresh temporary directory on the disk (os.tmpdir()) or on tmpfs (/dev/shm). */
export async function makeTempDir(medium: Medium, label: string): Promise<string> {
  const dir = await mkdtemp(join(medium === 'tmpfs' ? '/dev/shm' : tmpdir(), `ferry-bench-${label}-`));
  tempDirs.add(dir);
  return dir;
}

export async function removeDir(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true });
  tempDirs.delete(path);
}

/** On an aborted run: removes every temporary directory not yet removed. */
export function removeTempDirsSync(): void {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}
