/** Progress of one transfer, reported as chunks are sent or received. */
export interface TransferProgress {
  name: string;
  /** Bytes of the file accounted for: already on the other side, or sent/received now. */
  done: number;
  total: number;
  /** Bytes that crossed the network in this run. */
  transferred: number;
}

export type ProgressListener = (progress: TransferProgress) => void;
