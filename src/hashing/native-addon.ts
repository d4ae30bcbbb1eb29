import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Where native/build.js puts addon `fileName`: dist/native/, found from this module in
 * dist/src/hashing/ (the build), in dist/cli/ (the bundled CLI) or in src/hashing/ (tests run
 * from the sources).
 */
function addonPath(fileName: string): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let up = 0; up < 4; up += 1) {
    for (const candidate of [join(dir, 'native', fileName), join(dir, 'dist', 'native', fileName)]) {
      if (existsSync(candidate)) return candidate;
    }
    dir = dirname(dir);
  }
  return undefined;
}

/** Addon `fileName` loaded, or why not (not built: `npm run build:native` says why; or it does not load here). */
export function loadNativeAddon<T>(fileName: string): { addon: T } | { whyNot: string } {
  const path = addonPath(fileName);
  if (!path) return { whyNot: `${fileName} was not built (npm run build:native says why)` };
  try {
    return { addon: createRequire(import.meta.url)(path) as T };
  } catch (error) {
    return { whyNot: `${path} does not load: ${(error as Error).message.split('\n')[0]}` };
  }
}
