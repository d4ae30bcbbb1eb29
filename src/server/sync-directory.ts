import { open } from 'node:fs/promises';

/** fsyncs a directory so a rename or create inside it survives a power cut. */
export async function syncDirectory(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
