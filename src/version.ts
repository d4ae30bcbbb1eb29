import { readFileSync } from 'node:fs';

/** Ferry's version, read from the package.json above this module (in src/ or in dist/src/). */
function readVersion(): string {
  for (let url = new URL('../package.json', import.meta.url), depth = 0; depth < 4; depth += 1) {
    try {
      const pkg = JSON.parse(readFileSync(url, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'ferry' && pkg.version) return pkg.version;
    } catch {
      // not at this level: look one directory up
    }
    url = new URL('../package.json', new URL('.', url));
  }
  return '0.0.0';
}

export const ferryVersion = readVersion();
