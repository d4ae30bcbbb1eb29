import { closeSync, constants, fdatasync, open as openCallback, write } from 'node:fs';
import { getSystemErrorName, promisify } from 'node:util';
import { loadNativeAddon } from '../hashing/native-addon.js';

/** Creates a file that must not exist yet, holding given bytes, durable once the promise resolves. */
export interface NewFileWriter {
  readonly implementation: 'native' | 'fs';
  /** Creates `path` (exclusively: EEXIST if it is there) with `mode` and `bytes`, synced. A failure may leave the file for the caller to remove. */
  write(path: string, bytes: Uint8Array, mode: number): Promise<void>;
}

/** The addon built from native/durable-file.c. */
interface DurableFileAddon {
  writeNewFile(path: string, bytes: Uint8Array, mode: number): Promise<void>;
}

export const nativeDurableFileName = 'durable-file.node';

const openFile = promisify(openCallback);
const writeAt = promisify(write);
const fdatasyncOf = promisify(fdatasync);

/**
 * With Node's fs calls: opened with O_DSYNC, so one write through libuv's pool both writes and
 * syncs the data (synced explicitly where the platform has no O_DSYNC, and for an empty file);
 * the create and the write are a hop through the pool each, the close blocks.
 */
export const fsNewFileWriter: NewFileWriter = {
  implementation: 'fs',
  async write(path, bytes, mode) {
    const { O_WRONLY, O_CREAT, O_EXCL, O_DSYNC } = constants;
    const fd = await openFile(path, O_WRONLY | O_CREAT | O_EXCL | (O_DSYNC ?? 0), mode);
    try {
      for (let written = 0; written < bytes.byteLength;)
        written += (await writeAt(fd, bytes, written, bytes.byteLength - written, written)).bytesWritten;
      // An empty file has had no write to sync its inode with.
      if (O_DSYNC === undefined || bytes.byteLength === 0) await fdatasyncOf(fd);
    } finally {
      closeSync(fd);
    }
  },
};

/**
 * With native/durable-file.c: the create, the O_DSYNC writes and the close in one task on
 * libuv's pool (docs/perf-notes.md, "A whole put in one hop"). Its failures are made to look like
 * Node's system errors (`code`, `errno`, `syscall`), so the callers map them alike.
 */
export function nativeNewFileWriter(): NewFileWriter | { whyNot: string } {
  const loaded = loadNativeAddon<DurableFileAddon>(nativeDurableFileName);
  if (!('addon' in loaded)) return loaded;
  const { addon } = loaded;
  return {
    implementation: 'native',
    write: (path, bytes, mode) =>
      addon.writeNewFile(path, bytes, mode).catch((error: unknown) => {
        const { errno, syscall, message } = error as Error & { errno: number; syscall: string };
        const code = getSystemErrorName(-errno);
        throw Object.assign(new Error(`${code}: ${message}, ${syscall}`), { code, errno: -errno, syscall });
      }),
  };
}

let chosen: NewFileWriter | undefined;

/** The native writer where it was built and loads, else the one over Node's fs calls. */
export function newFileWriter(): NewFileWriter {
  if (!chosen) {
    const native = nativeNewFileWriter();
    chosen = 'write' in native ? native : fsNewFileWriter;
  }
  return chosen;
}
