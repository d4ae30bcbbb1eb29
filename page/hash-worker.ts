/**
 * The page's SHA-256 of a file, in a Web Worker so the page stays responsive: read in 8 MiB
 * slices and fed to a streaming WebAssembly hasher (hash-wasm; WebCrypto's digest cannot stream,
 * it needs the whole file in memory). Posts `{progress}` as it goes and `{sha256}` at the end.
 */
import { createSHA256 } from 'hash-wasm';

const sliceBytes = 8 * 1024 * 1024;

self.onmessage = async (event: MessageEvent<File>) => {
  const file = event.data;
  try {
    const hasher = await createSHA256();
    hasher.init();
    for (let offset = 0; offset < file.size; offset += sliceBytes) {
      hasher.update(new Uint8Array(await file.slice(offset, offset + sliceBytes).arrayBuffer()));
      self.postMessage({ progress: Math.min(offset + sliceBytes, file.size) });
    }
    self.postMessage({ sha256: hasher.digest('hex') });
  } catch (error) {
    self.postMessage({ error: String(error) });
  }
};
