/** Progress of one transfer, reported as chunks are sent or received. */
export interface TransferProgress {
  name: string;
  /** Bytes of the file accounted for: already on the other side, or sent/received now. */
  done: number;
  /** Undefined while the size is unknown (an upload from standard input). */
  total: number | undefined;
  /** Bytes that crossed the network in this run. */
  transferred: number;
}

export type ProgressListener = (progress: TransferProgress) => void;

/** Where an attempt starts: `from` bytes of `total` are already in place (a resume), before any byte moves. */
export interface TransferStart {
  name: string;
  from: number;
  total: number | undefined;
}

export type StartListener = (start: TransferStart) => void;
