#!/usr/bin/env node
// Entry point of the `ferry` command. `npm install` (prepare) compiles the TypeScript sources to
// dist/src/ and bundles the CLI into dist/cli/ (npm run build:cli): one file to load instead of a
// hundred cuts the start-up that every command pays, and what only some commands need (a transfer,
// the server) is split into chunks loaded when they run. dist/cli/ sits two levels below the
// package as dist/src/ does, so the files found from import.meta.url (package.json, the chunk
// worker in dist/workers/, the web page in dist/page/) resolve from the bundle as they do unbundled.
import { main } from '../dist/cli/ferry.js';

await main(process.argv.slice(2));
