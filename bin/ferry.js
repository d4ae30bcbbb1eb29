#!/usr/bin/env node
// Entry point of the `ferry` command. The TypeScript sources are compiled to dist/ by `npm install` (prepare).
import { main } from '../dist/src/cli/main.js';

await main(process.argv.slice(2));
