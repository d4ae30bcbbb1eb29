import type { TLSSocket } from 'node:tls';

/** A buffer of at least this many bytes is written to a TLS socket by itself. */
export const largeTlsWriteBytes = 64 * 1024;

type WritevChunks = { chunk: Buffer | string; encoding: BufferEncoding }[];
type WriteCallback = (error?: Error | null) => void;

/**
 * Makes `socket` write each large buffer by itself. Node's TLS layer encrypts a write of one
 * buffer where it lies, but copies a write of several buffers (what a corked socket hands on:
 * a chunk frame's head and its payload, and the frames after it) into one fresh buffer first:
 * for a 4 MiB chunk, an allocation of 4 MiB, its pages faulted in and zeroed, and a copy
 * (docs/perf-notes.md, "Writes of one buffer to a TLS socket"). So a batch of writes goes out as
 * runs: the small buffers between two large ones in one write, as before, each large one alone.
 */
export function writeLargeBuffersAlone(socket: TLSSocket): void {
  const writev = socket._writev?.bind(socket);
  const write = socket._write.bind(socket);
  if (!writev) return;
  socket._writev = (chunks: WritevChunks, callback: WriteCallback): void => {
    if (!chunks.some(({ chunk }) => chunk.length >= largeTlsWriteBytes)) return writev(chunks, callback);
    const runs = runsOf(chunks);
    let next = 0;
    const writeNext = (error?: Error | null): void => {
      const run = runs[next];
      next += 1;
      if (error || !run) return callback(error);
      if (run.length === 1) write(run[0]!.chunk, run[0]!.encoding, writeNext);
      else writev(run, writeNext);
    };
    writeNext();
  };
}

/** `chunks` in order, cut into runs: each large one a run of its own, the small ones between them together. */
function runsOf(chunks: WritevChunks): WritevChunks[] {
  const runs: WritevChunks[] = [];
  let small: WritevChunks = [];
  for (const entry of chunks) {
    if (entry.chunk.length < largeTlsWriteBytes) {
      small.push(entry);
      continue;
    }
    if (small.length > 0) runs.push(small);
    small = [];
    runs.push([entry]);
  }
  if (small.length > 0) runs.push(small);
  return runs;
}
