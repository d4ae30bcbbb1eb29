/**
 * The HTTP download reference: a bare Node `http` server that pipes one file to every GET, with
 * no checks at all. Run as `node bare-http-server.js PORT FILE`; it says "listening" on stdout.
 */
import { createReadStream, statSync } from 'node:fs';
import { createServer } from 'node:http';

const [port = '0', file = ''] = process.argv.slice(2);
const size = statSync(file).size;
createServer((_request, response) => {
  response.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': size });
  createReadStream(file).pipe(response);
}).listen(Number(port), '127.0.0.1', () => process.stdout.write('listening\n'));
