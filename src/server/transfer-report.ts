import type { Logger } from 'pino';
import { oneLine } from '../protocol/errors.js';
import type { MetaStore } from '../store/meta-store.js';
import type { TransferLogRecord } from '../store/records.js';
import { formatBytes, formatTransferTime } from '../units.js';

export type TransferEntry = Omit<TransferLogRecord, 'client' | 'user'>;

/** Who a transfer log entry names: the client's address, and the account if there is one. */
export function whoOf(clientAddress: string, account: { readonly name: string } | undefined): Pick<TransferLogRecord, 'client' | 'user'> {
  return account ? { client: clientAddress, user: account.name } : { client: clientAddress };
}

/** The server's console: one line per finished transfer and delete, who, what, how much, how fast, how it ended. */
export function reportTransfer(log: Logger, entry: TransferEntry): void {
  const bytesPerSecond = entry.durationMs > 0 ? Math.round((entry.bytes * 1000) / entry.durationMs) : undefined;
  log.info(
    {
      op: entry.op,
      file: entry.name,
      bytes: entry.bytes,
      durationMs: entry.durationMs,
      bytesPerSecond,
      result: entry.result,
      ...(entry.direct ? { direct: true } : {}),
    },
    transferLine(entry, bytesPerSecond),
  );
}

/** Reports a transfer and adds it to the transfer log: best effort, a transfer never fails for its log entry (a lost one is logged). */
export async function logTransfer(
  store: MetaStore,
  log: Logger,
  who: Pick<TransferLogRecord, 'client' | 'user'>,
  entry: TransferEntry,
): Promise<void> {
  reportTransfer(log, entry);
  const kept = await store.appendLog({ ...entry, ...who });
  if (!kept) log.warn({ op: entry.op, file: entry.name, result: entry.result }, 'transfer log entry lost (the store could not write it)');
}

/** `upload big.iso: 1.5 GiB in 4.2 s (357 MiB/s), ok` (a delete: `delete big.iso: 1.5 GiB, ok`). */
function transferLine(entry: TransferEntry, bytesPerSecond: number | undefined): string {
  const result = entry.result === 'ok' ? 'ok' : `failed: ${entry.result}`;
  if (entry.op === 'delete') return `delete ${oneLine(entry.name)}: ${formatBytes(entry.bytes)}, ${result}`;
  const rate = bytesPerSecond === undefined ? '' : ` (${formatBytes(bytesPerSecond)}/s)`;
  const how = entry.direct ? ', read from the store by the client' : '';
  return `${entry.op} ${oneLine(entry.name)}: ${formatBytes(entry.bytes)} in ${formatTransferTime(entry.durationMs)}${rate}${how}, ${result}`;
}
