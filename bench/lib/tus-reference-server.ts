/**
 * The tus upload reference: @tus/server with its FileStore (which writes what arrives and checks
 * nothing). Run as `node tus-reference-server.js PORT DIR`; it says "listening" on stdout.
 */
import { createServer } from 'node:http';
import { FileStore } from '@tus/file-store';
import { Server } from '@tus/server';

const [port = '0', directory = ''] = process.argv.slice(2);
const tus = new Server({ path: '/files', datastore: new FileStore({ directory }) });
createServer((request, response) => void tus.handle(request, response)).listen(Number(port), '127.0.0.1', () =>
  process.stdout.write('listening\n'),
);
