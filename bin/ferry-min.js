#!/usr/bin/env node
// Entry point of the `ferry` command. `npm install` (prepare) compiles the TypeScript sources to
// dist/src/ and bundles the CLI into dist/cli/ (npm run build:cli): one file to load instead of a
// hundred cuts the start-up that every command pays, and what only some commands need (a transfer,
// the server) is split into chunks loaded when they run. dist/cli/ sits two levels below the
// package as dist/src/ does, so the files found from import.meta.url (package.json, the chunk
// worker in dist/workers/, the web page in dist/page/) resolve from the bundle as they do unbundled.
import module from 'node:module';

// From Node 22.1, V8's compiled code of the modules is kept on disk (Node's default: the OS temp
// directory) and reused, so a start skips compiling them again. Node 20 has no such cache.
module.enableCompileCache?.();
const { main } = await import('../dist/cli-min/ferry.js'); // after the cache is on, so it covers the bundle

await main(process.argv.slice(2));
